"""Console provider: prints each message and pretends it was sent (the default in development)."""

import logging
import sys
import uuid

from django.conf import settings

from config.logging import mask_confirmation_links, mask_phone

from .base import OutgoingMessage, Provider, SendResult

logger = logging.getLogger("consent.console_provider")


class ConsoleProvider(Provider):
    """Writes messages to the log and standard output; never fails."""

    name = "console"

    def __init__(self, channel: str):
        self.channel = channel

    def send(self, message: OutgoingMessage) -> SendResult:
        message_id = f"console-{uuid.uuid4().hex}"
        content = message.body if message.template is None else f"[template {message.template.get('name')}] {message.body}"
        # Whoever reads the console is staff, not the person: the link's token is masked (reply YES instead).
        content = mask_confirmation_links(content)
        if settings.DEBUG:
            # Development: this stands in for the person's handset, so the number is shown whole.
            print(f"\n----- outgoing [{self.channel} to {message.to}] {content}\n", file=sys.__stdout__, flush=True)
            return SendResult(provider_message_id=message_id, status="sent")
        # Elsewhere the number is masked as in every log line.
        line = f"[{self.channel} to {mask_phone(message.to)}] {content}"
        logger.info("console provider: %s", line)
        print(f"\n----- outgoing {line}\n", file=sys.stdout, flush=True)
        return SendResult(provider_message_id=message_id, status="sent")

"""Console provider: prints each message and pretends it was sent (the default in development)."""

import logging
import sys
import uuid

from config.logging import mask_phone

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
        # The number is masked here as in every log line; the body stays readable so that a
        # developer can follow the confirmation link (the log filter masks its token).
        line = f"[{self.channel} to {mask_phone(message.to)}] {content}"
        logger.info("console provider: %s", line)
        print(f"\n----- outgoing {line}\n", file=sys.stdout, flush=True)
        return SendResult(provider_message_id=message_id, status="sent")

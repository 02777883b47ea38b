"""Confirmation tokens for tests: they exist only in what the provider was handed, so tests read them there.

- `deliver_prompts()`: hand every queued confirmation prompt to the (console) provider, as the
  worker does after commit, and return the tokens the provider got, in order.
- `token_in(outgoing)`: the token of one OutgoingMessage (body or WhatsApp template), or None.
- The `outbox` fixture (tests/plugins/providers.py) records every message the console provider
  is handed during a test, for prompts sent by on-commit callbacks.
"""

from __future__ import annotations

import json
import re
from unittest import mock

from messaging.providers.console import ConsoleProvider

TOKEN_IN_LINK = re.compile(r"/optin/confirm/([^/\s\"'?#]+)/")


def token_in(outgoing) -> str | None:
    """The confirmation token in what a provider was handed (an OutgoingMessage or a stand-in record)."""
    if isinstance(outgoing, dict):
        text = json.dumps(outgoing)
    else:
        text = f"{outgoing.body} {json.dumps(outgoing.template or {})}"
    found = TOKEN_IN_LINK.search(text)
    return found.group(1) if found else None


class Outbox:
    """What the console provider was handed."""

    def __init__(self):
        self.sent = []

    def record(self):
        original = ConsoleProvider.send
        outbox = self

        def send(provider, message):
            outbox.sent.append(message)
            return original(provider, message)

        return mock.patch.object(ConsoleProvider, "send", send)

    def tokens(self) -> list[str]:
        return [t for t in map(token_in, self.sent) if t]

    def token_for(self, phone: str) -> str:
        """The token of the last prompt handed over for `phone`."""
        tokens = [t for t in (token_in(m) for m in list(self.sent) if m.to == phone) if t]
        assert tokens, f"no confirmation prompt was handed to the provider for {phone}"
        return tokens[-1]

    def token(self) -> str:
        """The token of the last prompt handed over."""
        tokens = self.tokens()
        assert tokens, "no confirmation prompt was handed to the provider"
        return tokens[-1]


def deliver_prompts(**filters) -> list[str]:
    """Hand every queued confirmation prompt (of `filters`: contact, topic, channel) to the provider now;
    the tokens it got, in order."""
    from consent.messaging import message_deliver
    from consent.models import Message

    outbox = Outbox()
    queued = (Message.objects.filter(direction=Message.Direction.OUTBOUND, status=Message.Status.QUEUED,
                                     kind=Message.Kind.CONFIRMATION_PROMPT, **filters)
              .order_by("id").values_list("id", flat=True))
    with outbox.record():
        for message_id in list(queued):
            message_deliver(message_id=message_id)
    return outbox.tokens()


def delivered_token() -> str:
    """Deliver the queued prompts and return the token of the last one."""
    tokens = deliver_prompts()
    assert tokens, "no queued confirmation prompt"
    return tokens[-1]

"""The apps that send messages of their own (broadcast deliveries) and learn of their provider statuses.

An app registers one `StatusHandler` at app ready. For a status callback (Twilio) or status record
(WhatsApp Cloud), inside the webhook's transaction: when it is not about one of our transactional
Messages, each handler's `find(update)` is asked in turn for the OutboundRecord it owns (found by the
provider id, or by our reference while no provider id is recorded: see references.py, locked, the
provider id recorded), so that opt-out and invalid-number errors act on that contact (rule 10) and
only on consents given before it was sent. Then, after those took effect, every handler's
`apply(provider=, update=, contact=, message=)` runs. Both must be idempotent: providers redeliver and
reorder callbacks. An exception rolls the callback back and the provider is asked to retry (503).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from consent.models import Contact, Message


@dataclass(frozen=True)
class OutboundRecord:
    """A message another app sent, as its handler found it."""

    contact: Contact
    sent_at: datetime | None  # when it was handed to the provider (None: unknown)
    evidence: dict = field(default_factory=dict)  # what names it in a ledger event, e.g. {"delivery_id": 7}


@dataclass(frozen=True)
class StatusHandler:
    """What one app does with provider statuses: find its record for an update, apply the update."""

    find: Callable[..., OutboundRecord | None]
    apply: Callable[..., None]


_handlers: dict[str, StatusHandler] = {}


def status_handler_register(name: str, handler: StatusHandler) -> None:
    """Register (or replace) the handler called `name`, e.g. "broadcasts"."""
    _handlers[name] = handler


def status_handler_unregister(name: str) -> None:
    _handlers.pop(name, None)


def outbound_record_for(update) -> OutboundRecord | None:
    """The record a registered app owns for this update, if any."""
    for handler in list(_handlers.values()):
        record = handler.find(update)
        if record is not None:
            return record
    return None


def status_apply(*, provider: str, update, contact: Contact | None, message: Message | None) -> None:
    """Let every registered app apply the update (`message`: our transactional Message it was about, or None)."""
    for handler in list(_handlers.values()):
        handler.apply(provider=provider, update=update, contact=contact, message=message)

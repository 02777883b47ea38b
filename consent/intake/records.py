"""The intake record: what a verified inbound message is recorded as before the 200 (pure, no ORM).

Its JSON form (`IntakeRecord.to_json` / `from_json`) is the one shape a record takes outside the
database too (a fallback store): everything the applier needs to apply the message later.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from .. import keywords as kw
from .. import revocation
from ..phones import InvalidPhoneNumber, phone_e164
from ..webhooks.parsers import InboundMessage

SHAPE_VERSION = 1
_MESSAGE_FIELDS = tuple(f.name for f in fields(InboundMessage))


@dataclass(frozen=True)
class IntakeRecord:
    """A verified inbound message, as recorded at intake."""

    channel: str
    provider: str
    provider_message_id: str
    sender: str  # E.164 as Contact.phone stores it, or the raw sender when it is no phone number
    intent: str  # keywords.KINDS, read without topic keywords (they need the database)
    revokes: bool  # a STOP (bare or of a topic) or a clear revocation in other words: the gate counts it at once
    message: dict  # message_to_json(InboundMessage)
    received_at: datetime

    def inbound_message(self) -> InboundMessage:
        return message_from_json(self.message)

    def to_json(self) -> dict:
        # Flat (the message is a dict of plain values already): asdict() copied it recursively, 0.18 ms.
        return {"v": SHAPE_VERSION, **record_fields(self), "received_at": self.received_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict) -> IntakeRecord:
        values = {f.name: data[f.name] for f in fields(cls)}
        values["received_at"] = datetime.fromisoformat(data["received_at"])
        return cls(**values)


def message_to_json(message: InboundMessage) -> dict:
    data = {name: getattr(message, name) for name in _MESSAGE_FIELDS}  # flat: no recursive asdict
    data["received_at"] = message.received_at.isoformat() if message.received_at else None
    return data


def message_from_json(data: dict) -> InboundMessage:
    values = {name: data[name] for name in _MESSAGE_FIELDS if name in data}
    if values.get("received_at"):
        values["received_at"] = datetime.fromisoformat(values["received_at"])
    return InboundMessage(**values)


def sender_of(message: InboundMessage, default_region: str | None = None) -> str:
    """The sender as Contact.phone stores it (E.164), or as the provider gave it when it is no number."""
    try:
        return phone_e164(message.sender, default_region=default_region)
    except InvalidPhoneNumber:
        return message.sender


def is_number(sender: str) -> bool:
    """Whether a recorded sender is a phone number (the applier ignores a message from anything else)."""
    try:
        return phone_e164(sender) == sender
    except InvalidPhoneNumber:
        return False


def intent_of(message: InboundMessage) -> tuple[str, bool]:
    """(keyword kind, revokes) of a message, read without the database.

    `revokes`: a stop keyword (with or without a topic, in the payload or the text), Twilio's own
    opt-out, or a typed text that clearly asks to stop (rule 11). The applier decides the rest.
    """
    intent = kw.NO_INTENT
    for text in message.keyword_texts:
        intent = kw.parse_inbound(text)
        if intent.is_keyword:
            break
    revokes = intent.kind == kw.STOP or message.provider_opt_out == "STOP"
    if not revokes and intent.kind == kw.NONE:
        revokes = any(kw.asks_to_stop(text) for text in message.keyword_texts)
        if not revokes and message.kind == "text" and message.text:
            revokes = revocation.classify(message.text).kind == revocation.REVOCATION
    return intent.kind, revokes


def record_of(message: InboundMessage, *, provider: str, received_at: datetime,
              default_region: str | None = None) -> IntakeRecord:
    """The intake record of a verified, parsed message."""
    intent, revokes = intent_of(message)
    return IntakeRecord(
        channel=message.channel,
        provider=provider,
        provider_message_id=message.provider_message_id,
        sender=sender_of(message, default_region),
        intent=intent,
        revokes=revokes,
        message=message_to_json(message),
        received_at=received_at,
    )


def record_fields(record: IntakeRecord) -> dict[str, Any]:
    """The record as the columns of an InboundReceipt row."""
    return {f.name: getattr(record, f.name) for f in fields(IntakeRecord)}

"""Provider webhook payloads turned into small dataclasses (pure, no ORM).

Validation happens here, at the edge: a payload either yields well-formed records or
raises PayloadError (the view answers 400). Unknown kinds of WhatsApp changes or message
types are not errors: they come back as records the caller may ignore, since Meta adds new
ones over time and retries anything not answered with 200.

Twilio posts one form per event (inbound message or status callback); WhatsApp Cloud posts a
JSON batch (`entry[].changes[].value`) that may mix messages, statuses and preference updates.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from messaging.providers import twilio, whatsapp

from .references import Reference, parse_reference

SMS = "sms"
WHATSAPP = "whatsapp"

# Caps: above these a payload is refused before or while parsing.
MAX_BODY_BYTES = 256 * 1024  # a whole webhook request body
MAX_TEXT_CHARS = 4096  # an inbound text (WhatsApp allows 4096; SMS concatenates to 1600)
MAX_ID_CHARS = 128  # a provider message id
MAX_ITEMS = 1000  # records in one WhatsApp batch

# Provider error codes (strings, kept in each provider's module) and what they mean to the consent rules.
OPT_OUT_ERROR_CODES = twilio.OPT_OUT_CODES | whatsapp.OPT_OUT_CODES  # the person opted out at the provider
INVALID_NUMBER_ERROR_CODES = twilio.INVALID_RECIPIENT_CODES | whatsapp.INVALID_RECIPIENT_CODES

# Twilio's MessageStatus and WhatsApp's status, in the vocabulary of our records.
STATUS_MAP = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
    "canceled": "canceled",
    "cancelled": "canceled",
    "partially_delivered": "delivered",
    "deleted": "deleted",
    "warning": "warning",
    "receiving": "received",
    "received": "received",
}

_PHONE = re.compile(r"^\+?[0-9]{5,17}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class PayloadError(ValueError):
    """The payload is not what the provider sends; the message says what is wrong."""


@dataclass(frozen=True)
class InboundMessage:
    """A message a person sent us."""

    channel: str
    provider_message_id: str
    sender: str  # E.164 with "+", as the provider gave it (not yet validated as a number)
    recipient: str = ""  # our number or phone number id
    text: str = ""  # what the person wrote or the label of the button they pressed
    payload: str = ""  # the developer payload / id of a pressed button
    kind: str = "text"  # text | button | interactive | media | location | reaction | system | other
    received_at: datetime | None = None
    profile_name: str = ""
    provider_opt_out: str = ""  # Twilio Advanced Opt-Out: STOP | START | HELP when it matched
    num_media: int = 0

    @property
    def keyword_texts(self) -> tuple[str, ...]:
        """Texts to try, in order, to find a keyword: a button's payload first, then its label."""
        return tuple(value for value in (self.payload, self.text) if value)


@dataclass(frozen=True)
class StatusUpdate:
    """What happened to a message we sent."""

    channel: str
    provider_message_id: str
    status: str  # normalised with STATUS_MAP ("queued", "sent", "delivered", "read", "failed", ...)
    raw_status: str = ""
    recipient: str = ""
    error_code: str = ""
    error_message: str = ""
    occurred_at: datetime | None = None
    callback_data: str = ""  # WhatsApp biz_opaque_callback_data we attached when sending
    # Our own reference for the message, when the callback brought back one of ours (Twilio: `ref`
    # on the StatusCallback URL; WhatsApp: the callback data): finds a message whose provider id we
    # have not recorded yet (see consent/webhooks/references.py).
    reference: Reference | None = None

    @property
    def is_opt_out(self) -> bool:
        return self.error_code in OPT_OUT_ERROR_CODES

    @property
    def is_invalid_number(self) -> bool:
        return self.error_code in INVALID_NUMBER_ERROR_CODES


@dataclass(frozen=True)
class PreferenceUpdate:
    """A WhatsApp user stopped or resumed marketing messages from the business (user_preferences)."""

    sender: str
    category: str  # "marketing_messages"
    value: str  # "stop" | "resume"
    detail: str = ""
    occurred_at: datetime | None = None

    @property
    def is_stop(self) -> bool:
        return self.category == "marketing_messages" and self.value == "stop"


@dataclass(frozen=True)
class WhatsAppBatch:
    """Everything one WhatsApp Cloud webhook POST carried."""

    messages: tuple[InboundMessage, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()
    preferences: tuple[PreferenceUpdate, ...] = ()
    ignored: tuple[str, ...] = field(default=())  # fields / types we do not handle, for logs


# helpers ---------------------------------------------------------------------------------


def _text(value: Any, limit: int = MAX_TEXT_CHARS) -> str:
    """A clean text: str only, control characters removed (keeping newlines and tabs), capped."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise PayloadError(f"expected text, got {type(value).__name__}")
    return _CONTROL.sub("", value)[:limit]


def _message_id(value: Any, what: str) -> str:
    text = _text(value, MAX_ID_CHARS + 1).strip()
    if not text:
        raise PayloadError(f"{what} is missing")
    if len(text) > MAX_ID_CHARS or any(c.isspace() for c in text):
        raise PayloadError(f"{what} is not a message id")
    return text


def _address(value: Any, what: str) -> tuple[str, str]:
    """(channel, phone) from a Twilio address such as "+1415..." or "whatsapp:+1415..."."""
    text = _text(value, 64).strip()
    channel = SMS
    if text.lower().startswith("whatsapp:"):
        channel, text = WHATSAPP, text[len("whatsapp:"):].strip()
    if not text:
        raise PayloadError(f"{what} is missing")
    return channel, text


def _phone(value: str, what: str) -> str:
    digits = value.replace(" ", "")
    if not _PHONE.match(digits):
        raise PayloadError(f"{what} is not a phone number")
    return digits if digits.startswith("+") else "+" + digits


def _epoch(value: Any) -> datetime | None:
    try:
        seconds = int(value)
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _field(form: Mapping[str, Any], name: str) -> Any:
    """The value of a form field. Twilio never repeats a field: a repeated one is ambiguous (which
    Body, which From?) and refused rather than resolved to the last value as Django would."""
    getlist = getattr(form, "getlist", None)
    if getlist is not None and len(getlist(name)) > 1:
        raise PayloadError(f"{name} is repeated")
    return form.get(name)


# Twilio ----------------------------------------------------------------------------------


def parse_twilio_inbound(form: Mapping[str, Any]) -> InboundMessage:
    """An inbound Twilio message form (SMS, or WhatsApp through Twilio) as an InboundMessage."""
    message_id = _message_id(
        _field(form, "MessageSid") or _field(form, "SmsMessageSid") or _field(form, "SmsSid"), "MessageSid"
    )
    channel, sender = _address(_field(form, "From"), "From")
    sender = _phone(sender, "From")
    recipient = _address(_field(form, "To"), "To")[1] if _field(form, "To") else ""
    try:
        num_media = max(0, min(int(_field(form, "NumMedia") or 0), 100))
    except (TypeError, ValueError):
        num_media = 0
    text = _text(_field(form, "Body"))
    payload = _text(_field(form, "ButtonPayload"), 256)
    kind = "button" if payload or _field(form, "ButtonText") else ("media" if num_media and not text.strip() else "text")
    if kind == "button" and not text:
        text = _text(_field(form, "ButtonText"), 256)
    opt_out = _text(_field(form, "OptOutType"), 16).upper()
    return InboundMessage(
        channel=channel,
        provider_message_id=message_id,
        sender=sender,
        recipient=recipient,
        text=text,
        payload=payload,
        kind=kind,
        profile_name=_text(_field(form, "ProfileName"), 256),
        provider_opt_out=opt_out if opt_out in {"STOP", "START", "HELP"} else "",
        num_media=num_media,
    )


def parse_twilio_status(form: Mapping[str, Any], *, reference: str = "") -> StatusUpdate:
    """A Twilio status callback form as a StatusUpdate; `reference` is the callback URL's `ref`, if any."""
    message_id = _message_id(_field(form, "MessageSid") or _field(form, "SmsSid"), "MessageSid")
    raw_status = _text(_field(form, "MessageStatus") or _field(form, "SmsStatus"), 32).strip().lower()
    if not raw_status:
        raise PayloadError("MessageStatus is missing")
    if raw_status not in STATUS_MAP:
        raise PayloadError(f"MessageStatus {raw_status!r} is not a Twilio status")
    channel, recipient = (SMS, "")
    if _field(form, "To"):
        channel, recipient = _address(_field(form, "To"), "To")
    error_code = _text(_field(form, "ErrorCode"), 16).strip()
    if error_code and not error_code.isdigit():
        raise PayloadError("ErrorCode is not a number")
    return StatusUpdate(
        channel=channel,
        provider_message_id=message_id,
        status=STATUS_MAP[raw_status],
        raw_status=raw_status,
        recipient=recipient,
        error_code=error_code,
        error_message=_text(_field(form, "ErrorMessage"), 512),
        reference=parse_reference(reference),
    )


# WhatsApp Cloud --------------------------------------------------------------------------


def parse_whatsapp_body(body: bytes) -> WhatsAppBatch:
    """Decode and parse a raw WhatsApp Cloud webhook body (size-capped)."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadError(f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    except RecursionError:  # "[[[[…" nested deeper than the decoder's stack: a hostile body, not a 500
        raise PayloadError("body is nested too deeply") from None
    return parse_whatsapp(payload)


def _dict(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise PayloadError(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{what} is not a list")
    return value


def parse_whatsapp(payload: Any) -> WhatsAppBatch:
    """Parse a decoded WhatsApp Cloud webhook (object "whatsapp_business_account")."""
    payload = _dict(payload, "the body")
    if payload.get("object") != "whatsapp_business_account":
        raise PayloadError("object is not whatsapp_business_account")
    messages: list[InboundMessage] = []
    statuses: list[StatusUpdate] = []
    preferences: list[PreferenceUpdate] = []
    ignored: list[str] = []
    count = 0
    for entry in _list(payload.get("entry"), "entry"):
        for change in _list(_dict(entry, "entry[]").get("changes"), "changes"):
            change = _dict(change, "changes[]")
            name = change.get("field")
            value = _dict(change["value"] if change.get("value") is not None else {}, "value")
            if name not in ("messages", "user_preferences"):
                ignored.append(f"field:{name}")
                continue
            recipient = _text(_dict(value.get("metadata") or {}, "metadata").get("phone_number_id"), 64)
            names = {}
            for contact in _list(value.get("contacts"), "contacts"):
                contact = _dict(contact, "contacts[]")
                profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
                names[_text(contact.get("wa_id"), 32)] = _text(profile.get("name"), 256)
            items = (
                [("message", m) for m in _list(value.get("messages"), "messages")]
                + [("status", s) for s in _list(value.get("statuses"), "statuses")]
                + [("preference", p) for p in _list(value.get("user_preferences"), "user_preferences")]
            )
            count += len(items)
            if count > MAX_ITEMS:
                raise PayloadError(f"more than {MAX_ITEMS} records in one webhook")
            for kind, item in items:
                # One bad record does not sink the batch: the others are still applied, and
                # answering 200 stops Meta from redelivering the bad one for days.
                try:
                    item = _dict(item, f"{kind} record")
                    if kind == "message":
                        message = _whatsapp_message(item, recipient, names)
                        if message is None:
                            ignored.append(f"message:{_text(item.get('type'), 32)}")
                        else:
                            messages.append(message)
                    elif kind == "status":
                        statuses.append(_whatsapp_status(item))
                    else:
                        preferences.append(_whatsapp_preference(item))
                except PayloadError as exc:
                    ignored.append(f"invalid {kind}: {exc}")
    return WhatsAppBatch(tuple(messages), tuple(statuses), tuple(preferences), tuple(ignored))


def _whatsapp_message(item: dict, recipient: str, names: dict) -> InboundMessage | None:
    message_type = _text(item.get("type"), 32)
    wa_id = _text(item.get("from"), 32)
    sender = _phone(wa_id, "from")
    text, payload, kind = "", "", "other"
    if message_type == "text":
        text, kind = _text(_dict(item.get("text") or {}, "text").get("body")), "text"
    elif message_type == "button":  # quick-reply button of a template
        button = _dict(item.get("button") or {}, "button")
        text, payload, kind = _text(button.get("text"), 256), _text(button.get("payload"), 256), "button"
    elif message_type == "interactive":
        interactive = _dict(item.get("interactive") or {}, "interactive")
        reply_type = _text(interactive.get("type"), 32)
        reply = interactive.get(reply_type)
        if isinstance(reply, dict) and reply_type in ("button_reply", "list_reply"):
            text, payload, kind = _text(reply.get("title"), 256), _text(reply.get("id"), 256), "interactive"
        else:
            kind = "interactive"
    elif message_type in ("image", "video", "audio", "document", "sticker"):
        media = item.get(message_type) if isinstance(item.get(message_type), dict) else {}
        text, kind = _text(media.get("caption")), "media"
    elif message_type in ("location", "contacts", "reaction", "order"):
        kind = message_type.rstrip("s") if message_type == "contacts" else message_type
    elif message_type == "system":
        return None  # e.g. the user changed number: not something the person wrote
    return InboundMessage(
        channel=WHATSAPP,
        provider_message_id=_message_id(item.get("id"), "message id"),
        sender=sender,
        recipient=recipient,
        text=text,
        payload=payload,
        kind=kind,
        received_at=_epoch(item.get("timestamp")),
        profile_name=names.get(wa_id, ""),
    )


def _whatsapp_status(item: dict) -> StatusUpdate:
    raw_status = _text(item.get("status"), 32).lower()
    if raw_status not in STATUS_MAP:
        raise PayloadError(f"status {raw_status!r} is not a WhatsApp status")
    error_code, error_message = "", ""
    errors = _list(item.get("errors"), "errors")
    if errors:
        error = _dict(errors[0], "errors[]")
        error_code = _text(error.get("code"), 16)
        details = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
        error_message = _text(error.get("message") or error.get("title") or details.get("details"), 512)
    recipient = _text(item.get("recipient_id"), 32)
    callback_data = _text(item.get("biz_opaque_callback_data"), 512)
    return StatusUpdate(
        channel=WHATSAPP,
        provider_message_id=_message_id(item.get("id"), "status id"),
        status=STATUS_MAP[raw_status],
        raw_status=raw_status,
        recipient=_phone(recipient, "recipient_id") if recipient else "",
        error_code=error_code,
        error_message=error_message,
        occurred_at=_epoch(item.get("timestamp")),
        callback_data=callback_data,
        reference=parse_reference(callback_data),
    )


def _whatsapp_preference(item: dict) -> PreferenceUpdate:
    value = _text(item.get("value"), 32).lower()
    if value not in ("stop", "resume"):
        raise PayloadError(f"user preference value {value!r} is neither stop nor resume")
    return PreferenceUpdate(
        sender=_phone(_text(item.get("wa_id"), 32), "wa_id"),
        category=_text(item.get("category"), 64),
        value=value,
        detail=_text(item.get("detail"), 256),
        occurred_at=_epoch(item.get("timestamp")),
    )

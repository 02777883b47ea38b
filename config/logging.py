"""Log hygiene: no full phone number, API token, Authorization header or provider secret in a log line.

`PersonalDataFilter` is attached to every handler in settings.LOGGING (and to Celery's handlers,
see config/celery.py). It rewrites each record in place: the formatted message, the formatted
traceback and the stack are masked once, so every handler after it sees only masked text.

Phone numbers keep their last digits (enough to tell two people apart in a support ticket,
not enough to call them). Secrets are replaced whole.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings

MASK = "[masked]"

# Secrets by shape.
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S)
_AUTH_SCHEME = re.compile(r"\b(Token|Bearer|Basic|Digest)(\s+)[A-Za-z0-9._~+/=:-]{6,}", re.I)
_AUTH_HEADER = re.compile(
    r"""((?:HTTP_)?AUTHORIZATION|X-Twilio-Signature|HTTP_X_TWILIO_SIGNATURE|X-Hub-Signature(?:-256)?|HTTP_X_HUB_SIGNATURE(?:_256)?)"""
    r"""(["']?\s*[:=]\s*["']?)([^"'\r\n,}]+)""",
    re.I,
)
_SECRET_FIELD = re.compile(
    r"""\b([A-Za-z_]*(?:password|passwd|secret|auth_?token|access_?token|verify_?token|api_?key|signing_?key|"""
    r"""token|signature|hub\.verify_token|sig))(["']?\s*[:=]\s*["']?)([^\s"'&,;}\]]+)""",
    re.I,
)
_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@", re.I)
# Confirmation links and preference-centre links (whoever holds one may change that person's consents).
_CONFIRM_LINK = re.compile(r"(/optin/confirm/|/preferences/)[^/\s\"'?#]+")
_DRF_TOKEN = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{40}(?![0-9A-Za-z])")
_META_ACCESS_TOKEN = re.compile(r"\bEAA[A-Za-z0-9]{20,}")

# Phone numbers: "+33612345678", "+33 6 12 34 56 78", "%2B33612345678", "whatsapp:+1...", and the
# bare digits WhatsApp uses for wa_id ("33612345678"). Bare runs of 8-15 digits are masked too:
# a timestamp masked by mistake costs nothing, a number left in clear is a leak.
_PHONE_PLUS = re.compile(r"(\+|%2B|\b00)(\d[\d \-().]{5,22}\d)", re.I)
_PHONE_BARE = re.compile(r"(?<![\w.:-])\d{8,15}(?![\w]|\.\d)")


def _mask_digits(digits: str) -> str:
    keep = 4 if len(digits) >= 10 else 2
    return "*" * (len(digits) - keep) + digits[-keep:]


def _mask_plus(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(2))
    if len(digits) < 7 or len(digits) > 15:
        return match.group(0)
    return match.group(1) + _mask_digits(digits)


def _configured_secrets() -> list[str]:
    """The secret values in settings, longest first, so that a value is masked wherever it appears."""
    try:
        if not settings.configured:
            return []
        names = ("SECRET_KEY", "TWILIO_AUTH_TOKEN", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET",
                 "WHATSAPP_VERIFY_TOKEN", "CONSENT_PSEUDONYM_KEY", "AUDIT_SIGNING_KEY")
        values = {str(getattr(settings, name, "") or "") for name in names}
    except Exception:  # logging must never fail because settings are half-loaded
        return []
    return sorted((v for v in values if len(v) >= 6), key=len, reverse=True)


def mask(text: str) -> str:
    """`text` with phone numbers, tokens, auth headers and configured secrets masked."""
    if not text:
        return text
    for secret in _configured_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    text = _PEM.sub(MASK, text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    text = _AUTH_SCHEME.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    text = mask_confirmation_links(text)
    text = _META_ACCESS_TOKEN.sub(MASK, text)
    text = _DRF_TOKEN.sub(MASK, text)
    text = _PHONE_PLUS.sub(_mask_plus, text)
    text = _PHONE_BARE.sub(lambda m: _mask_digits(m.group(0)), text)
    return text


class PersonalDataFilter(logging.Filter):
    """Masks personal data and secrets in a record's message, traceback and stack; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_personal_data_masked", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what can be shown
            message = f"{record.msg!r} {record.args!r}"
        record.msg = mask(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        record._personal_data_masked = True
        return True


class DemoteToDebug(logging.Filter):
    """INFO records that mention one of `names` become DEBUG, shown only where DEBUG is on.

    On celery's beat and worker loggers: the broadcast tick runs every few seconds and its three
    lines ("Sending due task", "received", "succeeded") were a third of the console.
    """

    def __init__(self, names=()):
        super().__init__()
        self.names = tuple(names)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not self.names:
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True
        if not any(name in message for name in self.names):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def install_on_handlers(handlers) -> None:
    """Attach the filter to handlers that lack it (used for Celery's own logging set-up)."""
    for handler in handlers:
        if not any(isinstance(f, PersonalDataFilter) for f in handler.filters):
            handler.addFilter(PersonalDataFilter())


def mask_confirmation_links(text: str) -> str:
    """`text` with the token of every confirmation link masked: only the person may hold one."""
    return _CONFIRM_LINK.sub(lambda m: m.group(1) + MASK, text) if text else text


def mask_phone(phone: str) -> str:
    """A phone number with all but its last digits masked: "+33612345678" -> "+*******5678"."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) < 4:
        return "*" * len(digits)
    prefix = "+" if str(phone).lstrip().startswith("+") or "+" in str(phone) else ""
    return prefix + _mask_digits(digits)

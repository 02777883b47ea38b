"""Recorded provider payloads (under fixtures/) for the webhook tests."""

import json
from pathlib import Path

from django.http import QueryDict

FIXTURES = Path(__file__).parent / "fixtures"


def twilio_form(name: str, **changes) -> QueryDict:
    """A recorded Twilio form post as Django parses it, with some fields replaced (None: removed)."""
    form = QueryDict((FIXTURES / name).read_text().strip(), mutable=True)
    for key, value in changes.items():
        if value is None:
            form.pop(key, None)
        else:
            form.setlist(key, value if isinstance(value, list) else [value])  # a list: the field repeated
    return form


def whatsapp_json(name: str) -> dict:
    """A recorded WhatsApp Cloud webhook body, decoded."""
    return json.loads((FIXTURES / name).read_text())


def whatsapp_body(name: str) -> bytes:
    """A recorded WhatsApp Cloud webhook body, raw bytes as Meta posts them."""
    return (FIXTURES / name).read_bytes()

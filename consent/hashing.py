"""Hash chaining and pseudonyms for the consent ledger (pure, no ORM).

Each event's hash is SHA-256 over the previous hash and a canonical serialisation of
the event: JSON with sorted keys, no insignificant white space, UTF-8, times in UTC
ISO 8601 with microseconds. Anyone can recompute it from an export.
"""

import hashlib
import hmac
import json
from datetime import datetime, timezone

GENESIS_HASH = "0" * 64

# The fields that the hash covers, in the order they appear in exports.
CHAINED_FIELDS = (
    "seq",
    "uuid",
    "occurred_at",
    "recorded_at",
    "kind",
    "subject",
    "topic",
    "channel",
    "source",
    "actor",
    "text_version",
    "text_sha256",
    "evidence",
)


def phone_pseudonym(e164: str, key: str) -> str:
    """A keyed pseudonym of a phone number: stable for one key, meaningless without it."""
    return hmac.new(key.encode(), e164.encode(), hashlib.sha256).hexdigest()


def format_instant(value: datetime) -> str:
    """UTC ISO 8601 with microseconds and a Z, the only time format the chain knows."""
    if value.tzinfo is None:
        raise ValueError("naive datetime in the ledger")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(fields: dict) -> bytes:
    """The canonical serialisation of an event's chained fields."""
    missing = set(CHAINED_FIELDS) - set(fields)
    if missing:
        raise ValueError(f"event is missing chained fields: {sorted(missing)}")
    payload = {name: fields[name] for name in CHAINED_FIELDS}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_hash(prev_hash: str, fields: dict) -> str:
    """SHA-256 over the previous hash and the canonical event."""
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_bytes(fields))
    return digest.hexdigest()


def topic_texts_sha256(consent_text: str, confirmation_message: str, help_message: str, welcome_message: str = "") -> str:
    """SHA-256 of one version of a topic's texts; the welcome message counts only when there is one,
    so that the versions made before topics had one keep their hash."""
    return text_sha256(consent_text, confirmation_message, help_message, *([welcome_message] if welcome_message else []))


def text_sha256(*parts: str) -> str:
    """SHA-256 of a topic's texts, each part length-prefixed so that boundaries count."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8")
        digest.update(f"{len(encoded)}:".encode())
        digest.update(encoded)
    return digest.hexdigest()

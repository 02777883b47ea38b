"""The Ed25519 key that signs ledger checkpoints, export manifests and proofs.

The private key comes from AUDIT_SIGNING_KEY (PEM, or the base64 of the 32 raw bytes) and only
the signer process holds it; every other process has AUDIT_PUBLIC_KEY and can verify, not sign.
In development, when both are unset, a key is generated once under the ignored data folder
(AUDIT_SIGNING_KEY_FILE); production settings refuse to start with neither.
"""

import base64
import hashlib
import json
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from config import keys
from config.datadir import development_secret

ALGORITHM = "Ed25519"


def canonical_json(payload: dict) -> bytes:
    """The bytes a signature covers: JSON, sorted keys, no white space, UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _new_private_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption())


@lru_cache(maxsize=4)
def _key_for(configured: str, path: str) -> Ed25519PrivateKey:
    if configured:
        return keys.parse_private_key(configured)
    return keys.parse_private_key(development_secret(path, _new_private_key_pem).decode("ascii"))


class SigningKeyMissing(ImproperlyConfigured):
    """This process verifies with AUDIT_PUBLIC_KEY only; signing happens in the signer process."""


def has_private_key() -> bool:
    """Whether this process can sign: it holds AUDIT_SIGNING_KEY, or it is a development set-up with neither key."""
    return bool(settings.AUDIT_SIGNING_KEY or not _configured_public_key())


def _configured_public_key() -> str:
    return getattr(settings, "AUDIT_PUBLIC_KEY", "") or ""


def private_key() -> Ed25519PrivateKey:
    if not has_private_key():
        raise SigningKeyMissing(
            "This process has AUDIT_PUBLIC_KEY but no AUDIT_SIGNING_KEY, so it cannot sign: only the signer does "
            "(celery -A config worker -Q audit-signer). Run signing commands where AUDIT_SIGNING_KEY is set.")
    return _key_for(settings.AUDIT_SIGNING_KEY or "", str(settings.AUDIT_SIGNING_KEY_FILE))


@lru_cache(maxsize=4)
def parse_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key (AUDIT_PUBLIC_KEY) from PEM or base64 raw bytes."""
    return keys.parse_public_key(text)


def public_key() -> Ed25519PublicKey:
    """The key signatures are checked with: the signing key's own, else AUDIT_PUBLIC_KEY."""
    if settings.AUDIT_SIGNING_KEY or not _configured_public_key():
        return private_key().public_key()
    return parse_public_key(_configured_public_key())


def public_key_pem(key: Ed25519PublicKey | None = None) -> str:
    return keys.public_key_pem(key or public_key())


def key_id(key: Ed25519PublicKey | None = None) -> str:
    """A short fingerprint of a public key: SHA-256 of its raw 32 bytes, first 16 hex digits."""
    key = key or public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@lru_cache(maxsize=4)
def _previous_keys(configured: str) -> tuple[Ed25519PublicKey, ...]:
    return tuple(keys.parse_public_key(item, setting="An item of AUDIT_PREVIOUS_PUBLIC_KEYS")
                 for item in configured.split(",") if item.strip())


def previous_public_keys() -> tuple[Ed25519PublicKey, ...]:
    """Keys that signed before a rotation (AUDIT_PREVIOUS_PUBLIC_KEYS: PEMs or raw base64, comma-separated)."""
    return _previous_keys(getattr(settings, "AUDIT_PREVIOUS_PUBLIC_KEYS", "") or "")


def trusted_public_keys() -> tuple[Ed25519PublicKey, ...]:
    """The current key first, then the retired ones whose old signatures still count."""
    return (public_key(), *previous_public_keys())


def sign(payload: dict) -> str:
    """Base64 Ed25519 signature over the canonical JSON of `payload`; SigningKeyMissing without the private key."""
    return base64.b64encode(private_key().sign(canonical_json(payload))).decode("ascii")


def signature_valid(payload: dict, signature: str, key: Ed25519PublicKey | None = None) -> bool:
    """Whether `signature` is the current (or given) key's signature over `payload`."""
    key = key or public_key()
    try:
        key.verify(base64.b64decode(signature, validate=True), canonical_json(payload))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True

"""Ed25519 keys from settings text: PEM (newlines may be written as \\n) or the base64 of the 32 raw bytes.

Pure parsing with `cryptography`, so that the production settings can refuse a bad key at start-up
without importing an app; the audit signer loads its keys through the same functions.
"""

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.core.exceptions import ImproperlyConfigured


def _parse_key(text: str, *, load_pem, from_raw, kind: type, invalid: str, wrong_kind: str):
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem(text.replace("\\n", "\n").encode())
        else:
            key = from_raw(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{invalid}: {exc}") from None
    if not isinstance(key, kind):
        raise ImproperlyConfigured(wrong_kind)
    return key


def parse_private_key(text: str, *, setting: str = "AUDIT_SIGNING_KEY") -> Ed25519PrivateKey:
    """An Ed25519 private key; ImproperlyConfigured naming `setting` when the text is not one."""
    return _parse_key(text, load_pem=lambda pem: serialization.load_pem_private_key(pem, password=None),
                      from_raw=Ed25519PrivateKey.from_private_bytes, kind=Ed25519PrivateKey,
                      invalid=f"{setting} is not an Ed25519 private key",
                      wrong_kind=f"{setting} must be an Ed25519 private key.")


def parse_public_key(text: str, *, setting: str = "AUDIT_PUBLIC_KEY") -> Ed25519PublicKey:
    """An Ed25519 public key; ImproperlyConfigured naming `setting` when the text is not one."""
    return _parse_key(text, load_pem=serialization.load_pem_public_key, from_raw=Ed25519PublicKey.from_public_bytes,
                      kind=Ed25519PublicKey, invalid=f"{setting} is not an Ed25519 public key",
                      wrong_kind=f"{setting} must be an Ed25519 public key.")


def public_key_pem(key: Ed25519PublicKey) -> str:
    """The SubjectPublicKeyInfo PEM of `key`."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

"""The audit signing key: from the setting (PEM or raw base64), or generated once for development."""

import base64
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured

from consent.audit import signing


def test_development_key_is_generated_once_and_private(signing_key):
    assert not signing_key.exists()
    first = signing.public_key_pem()
    assert signing_key.exists()
    assert stat.S_IMODE(os.stat(signing_key).st_mode) == 0o600
    signing._key_for.cache_clear()
    assert signing.public_key_pem() == first


def test_key_from_setting_pem_and_raw(settings):
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    raw = base64.b64encode(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                             serialization.NoEncryption())).decode()
    expected = signing.public_key_pem(key.public_key())
    for configured in (pem, pem.replace("\n", "\\n"), raw):
        settings.AUDIT_SIGNING_KEY = configured
        assert signing.public_key_pem() == expected
    signature = signing.sign({"b": 1, "a": "é"})
    assert signing.signature_valid({"a": "é", "b": 1}, signature)
    assert not signing.signature_valid({"a": "e", "b": 1}, signature)
    assert not signing.signature_valid({"a": "é", "b": 1}, "not base64!")


@pytest.mark.parametrize("configured", ["garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"])
def test_unusable_key_is_a_configuration_error(settings, configured):
    settings.AUDIT_SIGNING_KEY = configured
    with pytest.raises(ImproperlyConfigured):
        signing.private_key()


def test_other_key_types_are_refused(settings):
    from cryptography.hazmat.primitives.asymmetric import ec

    settings.AUDIT_SIGNING_KEY = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with pytest.raises(ImproperlyConfigured, match="Ed25519"):
        signing.private_key()

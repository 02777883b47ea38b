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


def _public_key_text(key, pem: bool) -> str:
    public = key.public_key()
    if pem:
        return signing.public_key_pem(public)
    return base64.b64encode(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


@pytest.mark.parametrize("pem", [True, False], ids=["pem", "raw"])
def test_a_process_with_the_public_key_only_verifies_and_cannot_sign(settings, signing_key, pem):
    key = Ed25519PrivateKey.generate()
    settings.AUDIT_SIGNING_KEY = ""
    settings.AUDIT_PUBLIC_KEY = _public_key_text(key, pem)
    assert not signing.has_private_key()
    assert signing.public_key_pem() == signing.public_key_pem(key.public_key())
    signature = base64.b64encode(key.sign(signing.canonical_json({"a": 1}))).decode()
    assert signing.signature_valid({"a": 1}, signature)
    with pytest.raises(signing.SigningKeyMissing, match="audit-signer"):
        signing.sign({"a": 1})
    assert not signing_key.exists()  # no development key is generated behind its back


def test_the_signer_holds_the_private_key(settings):
    key = Ed25519PrivateKey.generate()
    settings.AUDIT_SIGNING_KEY = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()).decode()
    settings.AUDIT_PUBLIC_KEY = _public_key_text(key, True)
    assert signing.has_private_key()
    assert signing.signature_valid({"a": 1}, signing.sign({"a": 1}))


def test_checkpoint_and_export_refuse_outside_the_signer(settings, ledger, tmp_path):
    from django.core.management import CommandError, call_command

    from consent.audit.checkpoints import checkpoint_create
    from consent.models import LedgerCheckpoint

    public = signing.public_key_pem()  # the development key that signed so far
    settings.AUDIT_PUBLIC_KEY = public
    with pytest.raises(signing.SigningKeyMissing):
        checkpoint_create()
    assert not LedgerCheckpoint.objects.exists()
    with pytest.raises(CommandError, match="signer"):
        call_command("export_consent_log", "--format", "csv", "--output", str(tmp_path / "out.csv"))
    assert not (tmp_path / "out.csv").exists()


def test_proofs_go_out_unsigned_outside_the_signer(settings, ledger, auditor_client):
    settings.AUDIT_PUBLIC_KEY = signing.public_key_pem()
    response = auditor_client.get("/api/v1/contacts/+14155550123/proof/")
    assert response.status_code == 200 and response.json()["signature"] is None
    page = auditor_client.get("/api/v1/contacts/+14155550123/proof/?format=html")
    assert page.status_code == 200 and b"Not signed" in page.content


def test_the_checkpoint_task_goes_to_the_signer_queue(settings):
    from config.celery import app

    assert settings.CELERY_TASK_ROUTES["consent.audit.tasks.ledger_checkpoint_task"] == {"queue": "audit-signer"}
    route = app.amqp.router.route({}, "consent.audit.tasks.ledger_checkpoint_task")
    assert route["queue"].name == "audit-signer"
    assert app.amqp.router.route({}, "consent.audit.tasks.ledger_verify_task")["queue"].name != "audit-signer"

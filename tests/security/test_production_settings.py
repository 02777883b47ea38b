"""Production settings refuse to start without their secrets, and turn the security headers on.

Each case imports config.settings.production in a fresh interpreter with a controlled
environment, as gunicorn, the worker and beat would.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "k3J9x-Qp2vLm8sT4wZr6Yb1Nc7Hd5Fg0Ae"  # 34 characters, many distinct
GOOD_ENV = {
    "DJANGO_SECRET_KEY": GOOD_SECRET,
    "CONSENT_PSEUDONYM_KEY": "pX7-c2Qm9vRt4LzK8sWn1Yb6Hd3Fg5Ja0Ue",
    # An Ed25519 private key (base64 of its 32 raw bytes); production parses it at start-up.
    "AUDIT_SIGNING_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "PUBLIC_BASE_URL": "https://consent.example.com",
    "DJANGO_ALLOWED_HOSTS": "consent.example.com,testserver",
}
# The public key (raw base64) of another Ed25519 private key than GOOD_ENV's (32 bytes of 7).
OTHER_PUBLIC_KEY = "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw="
# Variables of the outer environment that would change the outcome.
_SCRUB = ("DJANGO_", "AUDIT_", "CONSENT_", "PUBLIC_BASE_URL", "TWILIO_", "WHATSAPP_", "SMS_PROVIDER", "DATABASE_URL",
          "CELERY_", "REDIS_URL")


def _run(env_overrides, code):
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.production", "PYTHONPATH": str(ROOT)})
    env.update({k: v for k, v in env_overrides.items() if v is not None})
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def _load(env_overrides):
    return _run(env_overrides, "import config.settings.production")


def _without(name):
    return {k: v for k, v in GOOD_ENV.items() if k != name}


REFUSED = [
    ("debug on", {**GOOD_ENV, "DJANGO_DEBUG": "true"}, "DJANGO_DEBUG"),
    ("debug on (1)", {**GOOD_ENV, "DJANGO_DEBUG": "1"}, "DJANGO_DEBUG"),
    ("no secret key", _without("DJANGO_SECRET_KEY"), "DJANGO_SECRET_KEY"),
    ("development default key", {**GOOD_ENV, "DJANGO_SECRET_KEY": "insecure-development-key-change-me"}, "DJANGO_SECRET_KEY"),
    ("django startproject key", {**GOOD_ENV, "DJANGO_SECRET_KEY": "django-insecure-" + "x7!k2@p9#q4$w8%e1^r6&t3*y5(u0)i"},
     "DJANGO_SECRET_KEY"),
    ("short key", {**GOOD_ENV, "DJANGO_SECRET_KEY": "S3cr3t-but-short"}, "DJANGO_SECRET_KEY"),
    ("low-entropy key", {**GOOD_ENV, "DJANGO_SECRET_KEY": "ab" * 30}, "DJANGO_SECRET_KEY"),
    ("no audit signing key", _without("AUDIT_SIGNING_KEY"), "AUDIT_SIGNING_KEY"),
    ("empty audit signing key", {**GOOD_ENV, "AUDIT_SIGNING_KEY": ""}, "AUDIT_SIGNING_KEY"),
    ("audit signing key that is no key", {**GOOD_ENV, "AUDIT_SIGNING_KEY": "not-a-key"}, "AUDIT_SIGNING_KEY"),
    ("audit signing key of another type", {**GOOD_ENV, "AUDIT_SIGNING_KEY": (
        "-----BEGIN PRIVATE KEY-----\\nMC4CAQAwBQYDK2VuBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\\n"
        "-----END PRIVATE KEY-----")}, "AUDIT_SIGNING_KEY"),
    ("neither audit key", _without("AUDIT_SIGNING_KEY"), "AUDIT_PUBLIC_KEY"),
    ("audit public key that is no key", {**_without("AUDIT_SIGNING_KEY"), "AUDIT_PUBLIC_KEY": "not-a-key"},
     "AUDIT_PUBLIC_KEY"),
    ("audit public key of another signing key", {**GOOD_ENV, "AUDIT_PUBLIC_KEY": OTHER_PUBLIC_KEY}, "AUDIT_PUBLIC_KEY"),
    ("no public base url", _without("PUBLIC_BASE_URL"), "PUBLIC_BASE_URL"),
    ("no pseudonym key", _without("CONSENT_PSEUDONYM_KEY"), "CONSENT_PSEUDONYM_KEY"),
    ("short pseudonym key", {**GOOD_ENV, "CONSENT_PSEUDONYM_KEY": "short"}, "CONSENT_PSEUDONYM_KEY"),
    ("pseudonym key that is the secret key", {**GOOD_ENV, "CONSENT_PSEUDONYM_KEY": GOOD_SECRET}, "CONSENT_PSEUDONYM_KEY"),
    ("twilio without auth token", {**GOOD_ENV, "SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC" + "1" * 32},
     "TWILIO_AUTH_TOKEN"),
    ("whatsapp cloud without app secret", {**GOOD_ENV, "WHATSAPP_PROVIDER": "cloud", "WHATSAPP_ACCESS_TOKEN": "EAAtoken",
                                           "WHATSAPP_PHONE_NUMBER_ID": "123", "WHATSAPP_VERIFY_TOKEN": "v"},
     "WHATSAPP_APP_SECRET"),
]


def test_production_names_every_missing_secret_at_once():
    result = _load({})
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr
    for name in ("DJANGO_SECRET_KEY", "CONSENT_PSEUDONYM_KEY", "AUDIT_SIGNING_KEY", "PUBLIC_BASE_URL"):
        assert name in result.stderr, result.stderr[-500:]


@pytest.mark.parametrize("case,env,named", REFUSED, ids=[c[0] for c in REFUSED])
def test_production_refuses_to_start(case, env, named):
    result = _load(env)
    assert result.returncode != 0, f"{case}: production settings loaded"
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr, result.stderr[-500:]


def test_production_starts_with_its_secrets_and_turns_security_on():
    code = (
        "import json, config.settings.production as s;"
        "print(json.dumps({k: getattr(s, k) for k in ('DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE',"
        " 'SECURE_CONTENT_TYPE_NOSNIFF', 'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS',"
        " 'SECURE_PROXY_SSL_HEADER')}))"
    )
    result = _run(GOOD_ENV, code)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_production_settings_check_the_audit_keys_without_importing_an_app():
    """Settings sit below every app: a start-up key check that imported one would load it before Django."""
    code = ("import sys, config.settings.production\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'messaging', 'consent', 'broadcasts'}))\n")
    # Both keys, so that every parse and the pair check run (the public key of GOOD_ENV's private key).
    both = {**GOOD_ENV, "AUDIT_PUBLIC_KEY": "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="}
    result = _run(both, code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


_HEADERS_PROBE = """
import json, django
django.setup()
from django.test import Client
out = {}
c = Client()
plain = c.get("/healthz/", HTTP_HOST="consent.example.com")
out["plain_status"] = plain.status_code
out["plain_location"] = plain.get("Location")
out["plain_hsts"] = plain.get("Strict-Transport-Security")
tls = c.get("/healthz/", HTTP_HOST="consent.example.com", HTTP_X_FORWARDED_PROTO="https")
out["tls_status"] = tls.status_code
out["tls_hsts"] = tls.get("Strict-Transport-Security")
out["nosniff"] = tls.get("X-Content-Type-Options")
out["frame"] = tls.get("X-Frame-Options")
out["referrer"] = tls.get("Referrer-Policy")
login = c.get("/admin/login/", HTTP_HOST="consent.example.com", HTTP_X_FORWARDED_PROTO="https")
csrf = login.cookies.get("csrftoken")
out["csrf_cookie_secure"] = bool(csrf and csrf["secure"])
from django.conf import settings
out["session_secure"] = settings.SESSION_COOKIE_SECURE
out["session_httponly"] = settings.SESSION_COOKIE_HTTPONLY
print(json.dumps(out))
"""


def test_a_process_with_the_public_key_only_starts_and_cannot_sign(tmp_path):
    """Web, workers and beat run with AUDIT_PUBLIC_KEY; only the signer holds AUDIT_SIGNING_KEY."""
    code = ("import django; django.setup()\n"
            "from consent.audit import signing\n"
            "print(signing.has_private_key(), signing.key_id())\n"
            "try:\n    signing.sign({'a': 1})\nexcept signing.SigningKeyMissing as exc:\n    print('refused:', exc)\n")
    env = {**_without("AUDIT_SIGNING_KEY"), "AUDIT_PUBLIC_KEY": OTHER_PUBLIC_KEY, "DATA_DIR": str(tmp_path)}
    result = _run(env, code)
    assert result.returncode == 0, result.stderr[-2000:]
    first, refusal = result.stdout.strip().splitlines()[-2:]
    assert first.startswith("False ")
    assert refusal.startswith("refused:") and "audit-signer" in refusal


def test_security_headers_behind_tls(tmp_path):
    env = {**GOOD_ENV, "DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    result = _run(env, _HEADERS_PROBE)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # Plain HTTP is redirected to HTTPS and never gets HSTS (browsers ignore it there anyway).
    assert out["plain_status"] == 301 and out["plain_location"].startswith("https://")
    assert out["plain_hsts"] is None
    # Behind the TLS-terminating proxy: HSTS for a year with subdomains, nosniff, no framing.
    assert out["tls_status"] == 200
    assert out["tls_hsts"] == "max-age=31536000; includeSubDomains"
    assert out["nosniff"] == "nosniff"
    assert out["frame"] == "DENY"
    assert out["referrer"] == "same-origin"
    assert out["csrf_cookie_secure"] is True
    assert out["session_secure"] is True and out["session_httponly"] is True

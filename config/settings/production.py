"""Production: refuses to start without its secrets or with DEBUG on."""

from django.core.exceptions import ImproperlyConfigured

from config.keys import parse_private_key, parse_public_key, public_key_pem

from .base import *  # noqa: F401,F403
from .base import DEBUG, SECRET_KEY, SMS_PROVIDER, WHATSAPP_PROVIDER, env

_absent = [name for name in ("DJANGO_SECRET_KEY", "CONSENT_PSEUDONYM_KEY", "PUBLIC_BASE_URL")
           if not env.str(name, "")]
if not env.str("AUDIT_SIGNING_KEY", "") and not env.str("AUDIT_PUBLIC_KEY", ""):
    _absent.append("AUDIT_SIGNING_KEY (the signer) or AUDIT_PUBLIC_KEY (every other process)")
if _absent:
    raise ImproperlyConfigured(f"Production settings need {', '.join(_absent)} in the environment "
                               "(README, Settings); for development use config.settings.local.")
if DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off in production.")
if (not env.str("DJANGO_SECRET_KEY", "") or "insecure" in SECRET_KEY.lower() or "change-me" in SECRET_KEY.lower()
        or len(SECRET_KEY) < 32 or len(set(SECRET_KEY)) < 8):
    # "insecure" also catches Django's own "django-insecure-..." startproject keys.
    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY to a random value of at least 32 characters.")
# Pseudonyms in the ledger and the suppression list must survive a rotation of DJANGO_SECRET_KEY.
if len(env.str("CONSENT_PSEUDONYM_KEY", "")) < 32 or env.str("CONSENT_PSEUDONYM_KEY", "") == SECRET_KEY:
    raise ImproperlyConfigured("Set CONSENT_PSEUDONYM_KEY to a random value of at least 32 characters, not "
                               "DJANGO_SECRET_KEY's (an installation that relied on the old default: set it to the "
                               "DJANGO_SECRET_KEY in use so far, then give DJANGO_SECRET_KEY a new value).")
# Only the signer holds the private key; every other process verifies with the public one.
if not env.str("AUDIT_SIGNING_KEY", "") and not env.str("AUDIT_PUBLIC_KEY", ""):
    raise ImproperlyConfigured(
        "Set AUDIT_SIGNING_KEY (Ed25519 private key, PEM: the signer process only, "
        "`celery -A config worker -Q audit-signer`) or AUDIT_PUBLIC_KEY (its public key: every other process).")
else:
    # A key that does not load would fail only at the first checkpoint: refuse it at start-up.
    private = parse_private_key(env.str("AUDIT_SIGNING_KEY", "")) if env.str("AUDIT_SIGNING_KEY", "") else None
    public = parse_public_key(env.str("AUDIT_PUBLIC_KEY", "")) if env.str("AUDIT_PUBLIC_KEY", "") else None
    if private and public and public_key_pem(private.public_key()) != public_key_pem(public):
        raise ImproperlyConfigured("AUDIT_PUBLIC_KEY is not the public key of AUDIT_SIGNING_KEY.")
if not env.str("PUBLIC_BASE_URL", ""):
    raise ImproperlyConfigured("Set PUBLIC_BASE_URL to the public origin of the service.")
# A real provider without its secrets could neither send nor check a webhook's signature.
_missing = []
if SMS_PROVIDER == "twilio":
    _missing += [name for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not env.str(name, "")]
if WHATSAPP_PROVIDER == "cloud":
    _missing += [name for name in ("WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_APP_SECRET",
                                   "WHATSAPP_VERIFY_TOKEN") if not env.str(name, "")]
if _missing:
    raise ImproperlyConfigured(f"Set {', '.join(_missing)} (the providers chosen need them).")

SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_REFERRER_POLICY = "same-origin"

"""Production: refuses to start without its secrets or with DEBUG on."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import DEBUG, SECRET_KEY, env, env_bool, env_int

if DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off in production.")
if not env("DJANGO_SECRET_KEY") or SECRET_KEY.startswith("insecure-") or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY to a random value of at least 32 characters.")
if not env("AUDIT_SIGNING_KEY"):
    raise ImproperlyConfigured("Set AUDIT_SIGNING_KEY to the Ed25519 private key (PEM) that signs the ledger.")
if not env("PUBLIC_BASE_URL"):
    raise ImproperlyConfigured("Set PUBLIC_BASE_URL to the public origin of the service.")

SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_REFERRER_POLICY = "same-origin"

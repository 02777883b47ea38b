"""Tests: tasks run eagerly unless a test starts a real worker; fast password hashing."""

import os

from .base import *  # noqa: F401,F403
from .base import DATA_DIR, DATABASES

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
SMS_PROVIDER = "console"
WHATSAPP_PROVIDER = "console"
PUBLIC_BASE_URL = "http://testserver"
CONSENT_PSEUDONYM_KEY = "test-pseudonym-key"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a real worker process can open the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}
LEDGER_ALLOW_FLUSH = True

# WhiteNoise serves STATIC_ROOT; an empty one keeps it from warning on every test request.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

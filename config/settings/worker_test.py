"""A Celery worker started by the test suite, on the test database named by DATABASE_URL.

It shares the test settings (pseudonym key, public URL) and takes its providers from the
environment the test passed down.
"""

from .base import env, env_bool
from .test import *  # noqa: F401,F403

CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
SMS_PROVIDER = env("SMS_PROVIDER", "console")
WHATSAPP_PROVIDER = env("WHATSAPP_PROVIDER", "console")
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", "http://testserver")

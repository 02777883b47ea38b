"""A Celery worker started by the test suite, on the test database named by DATABASE_URL.

It shares the test settings (pseudonym key, public URL) and takes its providers from the
environment the test passed down.
"""

from .base import env
from .test import *  # noqa: F401,F403

CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", False)
SMS_PROVIDER = env.str("SMS_PROVIDER", "console")
WHATSAPP_PROVIDER = env.str("WHATSAPP_PROVIDER", "console")
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", "http://testserver")

"""WSGI entry point: `gunicorn config.wsgi`."""

import os

# Production unless DJANGO_SETTINGS_MODULE says otherwise (the `config` package's Celery app agrees).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

# Celery's task discovery now, at start-up, not inside the first request that queues a task: it imports
# every tasks module, and its Django fix-up runs django.setup() again (logging included).
from config.celery import app  # noqa: E402

app.loader.import_default_modules()

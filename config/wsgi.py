"""WSGI entry point: `gunicorn config.wsgi`."""

import os

# Production unless DJANGO_SETTINGS_MODULE says otherwise (the `config` package's Celery app agrees).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

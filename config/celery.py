"""The Celery application shared by the worker, beat and the web process."""

import os

from celery import Celery, signals

from config.logging import install_on_handlers

# Production unless told otherwise: `celery -A config` imports this before anything else can choose.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _mask_personal_data(logger=None, **kwargs):
    """Celery replaces the root handlers with its own: give them the same masking filter."""
    install_on_handlers(logger.handlers if logger is not None else [])

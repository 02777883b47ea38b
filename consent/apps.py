from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate

from config.health import readiness_detail

from .database_role import app_role_grant


def _app_role_grant(sender, using="default", **kwargs):
    # After every migrate: tables added since (by any owner) get the application role's grants too.
    app_role_grant(connections[using])


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Consent"

    def ready(self):
        post_migrate.connect(_app_role_grant, sender=self, dispatch_uid="consent.app_role_grant")
        from .intake.backlog import intake_backlog  # why: it reads a model, and models load after the app configs

        readiness_detail("inbound", intake_backlog)

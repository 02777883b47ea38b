from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _app_role_grant(sender, using="default", **kwargs):
    # After every migrate: tables added since (by any owner) get the application role's grants too.
    from django.db import connections

    from .database_role import app_role_grant

    app_role_grant(connections[using])


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Consent"

    def ready(self):
        post_migrate.connect(_app_role_grant, sender=self, dispatch_uid="consent.app_role_grant")

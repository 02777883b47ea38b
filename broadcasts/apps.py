from django.apps import AppConfig

from consent.webhooks.registry import StatusHandler, status_handler_register


class BroadcastsConfig(AppConfig):
    name = "broadcasts"
    verbose_name = "Broadcasts"

    def ready(self):
        from .services import delivery_record_for, delivery_status_apply  # why: models load after the app registry

        status_handler_register("broadcasts", StatusHandler(find=delivery_record_for, apply=delivery_status_apply))

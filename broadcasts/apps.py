from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

from consent.audit.registry import PromotionalMessages, promotional_messages_register
from consent.webhooks.registry import StatusHandler, status_handler_register

from . import policies
from .conf import setting


class BroadcastsConfig(AppConfig):
    name = "broadcasts"
    verbose_name = "Broadcasts"

    def ready(self):
        from .audit import deliveries_for_contact, deliveries_verify  # why: models load after the app registry
        from .services import delivery_record_for, delivery_status_apply  # why: models load after the app registry

        status_handler_register("broadcasts", StatusHandler(find=delivery_record_for, apply=delivery_status_apply))
        promotional_messages_register("broadcasts", PromotionalMessages(for_contact=deliveries_for_contact,
                                                                        verify=deliveries_verify))
        policies_check()


def policies_check() -> None:
    """Refuse to start with a brand setting that would widen a jurisdiction's rule (rule 12)."""
    errors = policies.narrowing_errors(setting("BROADCAST_QUIET_HOURS"), setting("BROADCAST_CAPS"))
    if errors:
        raise ImproperlyConfigured("Jurisdiction policies may only be narrowed: " + "; ".join(errors))

from django.apps import AppConfig


class BroadcastsConfig(AppConfig):
    name = "broadcasts"
    verbose_name = "Broadcasts"

    def ready(self):
        try:
            from consent.webhooks.signals import provider_status_match, provider_status_received
        except ImportError:  # the webhooks app is not there: delivery statuses come only through the service
            return
        from .services import provider_status_match_receiver, provider_status_receiver

        provider_status_match.connect(provider_status_match_receiver, dispatch_uid="broadcasts.delivery_match")
        provider_status_received.connect(provider_status_receiver, dispatch_uid="broadcasts.delivery_status")

"""FilterSets of the broadcast list endpoints (broadcasts, deliveries)."""

import django_filters

from config.filters import choice_errors

from .models import Broadcast, BroadcastStatus, Delivery, DeliveryStatus


class BroadcastFilter(django_filters.FilterSet):
    """Broadcasts by status."""

    status = django_filters.ChoiceFilter(choices=BroadcastStatus.choices, error_messages=choice_errors(BroadcastStatus))

    class Meta:
        model = Broadcast
        fields = ["status"]


class DeliveryFilter(django_filters.FilterSet):
    """A broadcast's deliveries by status."""

    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices, error_messages=choice_errors(DeliveryStatus))

    class Meta:
        model = Delivery
        fields = ["status"]

"""FilterSets of the consent list endpoints (consents, messages, contacts)."""

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from config.filters import choice_errors

from . import selectors, services
from .models import Channel, Consent, ConsentStatus, Contact, Message


class PhoneFormField(forms.CharField):
    """A phone number in any form the API accepts, cleaned to E.164."""

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return value
        try:
            return services.phone_normalise(value)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["phone"]) from None


class PhoneFilter(django_filters.CharFilter):
    """Matches a contact's number, whatever form the query gives it in."""

    field_class = PhoneFormField


class ConsentFilter(django_filters.FilterSet):
    """Consents by phone, topic, channel and effective status (a pending consent past its window is expired)."""

    phone = PhoneFilter(field_name="contact__phone")
    topic = django_filters.CharFilter(field_name="topic__slug")
    channel = django_filters.CharFilter(field_name="channel")
    status = django_filters.ChoiceFilter(choices=ConsentStatus.choices, method="filter_status",
                                         error_messages=choice_errors(ConsentStatus))

    class Meta:
        model = Consent
        fields = ["phone", "topic", "channel", "status"]

    def filter_status(self, queryset, name, value):
        return queryset.with_status(value, timezone.now())


class MessageFilter(django_filters.FilterSet):
    """Messages by phone, channel, direction, kind and status."""

    phone = PhoneFilter(field_name="contact__phone")
    channel = django_filters.ChoiceFilter(choices=Channel.choices, error_messages=choice_errors(Channel))
    direction = django_filters.ChoiceFilter(choices=Message.Direction.choices,
                                            error_messages=choice_errors(Message.Direction))
    kind = django_filters.ChoiceFilter(choices=Message.Kind.choices, error_messages=choice_errors(Message.Kind))
    status = django_filters.ChoiceFilter(choices=Message.Status.choices, error_messages=choice_errors(Message.Status))

    class Meta:
        model = Message
        fields = ["phone", "channel", "direction", "kind", "status"]


class ContactFilter(django_filters.FilterSet):
    """Contacts by phone, and by one consent that has both the topic and the effective status asked for."""

    phone = PhoneFilter()
    topic = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=ConsentStatus.choices, error_messages=choice_errors(ConsentStatus))

    class Meta:
        model = Contact
        fields = ["phone", "topic", "status"]

    def filter_queryset(self, queryset):
        # Topic and status must hold for the same consent: one join, which selectors.contact_list builds.
        wanted = {name: self.form.cleaned_data.get(name) or None for name in ("phone", "topic", "status")}
        if not any(wanted.values()):
            return queryset
        return queryset.filter(pk__in=selectors.contact_list(**wanted).values("pk"))

"""FilterSet of the ledger events endpoint: the export's filters, plus kind and phone."""

import django_filters
from django import forms
from django.core.exceptions import ValidationError

from config.filters import choice_errors
from consent.filters import PhoneFilter
from consent.models import ConsentEvent, EventKind

from .export import ExportFilters, filters_from_params
from .proof import contact_for_proof


class AuditEventForm(forms.Form):
    """Checks since, until, topic and channel as the export does, so both answer a bad value alike."""

    def clean(self):
        cleaned = super().clean()
        try:
            cleaned["export_filters"] = filters_from_params(cleaned)
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                self.add_error(name if name in self.fields else None, messages)
        return cleaned


class AuditEventFilter(django_filters.FilterSet):
    """Ledger events by time, topic, channel, kind and phone (found by pseudonym, so erased contacts' too)."""

    since = django_filters.CharFilter()
    until = django_filters.CharFilter()
    topic = django_filters.CharFilter()
    channel = django_filters.CharFilter()
    kind = django_filters.ChoiceFilter(choices=EventKind.choices, error_messages=choice_errors(EventKind))
    phone = PhoneFilter()

    class Meta:
        model = ConsentEvent
        fields = ["since", "until", "topic", "channel", "kind", "phone"]
        form = AuditEventForm

    def filter_queryset(self, queryset):
        data = self.form.cleaned_data
        extra = {"kind": data["kind"]} if data.get("kind") else {}
        if data.get("phone"):
            contact = contact_for_proof(data["phone"])
            extra["contact_id"] = contact.pk if contact else 0
        return ExportFilters(**{**data["export_filters"].__dict__, **extra}).apply(queryset)

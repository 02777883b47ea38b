"""FilterSet of the ledger events endpoint: the export's filters, plus kind and phone."""

import django_filters
from django import forms
from django.core.exceptions import ValidationError

from config.filters import choice_errors
from consent.filters import PhoneFilter
from consent.models import ConsentEvent, EventKind, StaffAction

from .export import ExportFilters, filters_from_params, parse_instant
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


class StaffActionForm(forms.Form):
    """since and until read as the ledger's filters read them (ISO 8601 date or date-time, naive is UTC)."""

    def clean(self):
        cleaned = super().clean()
        for name in ("since", "until"):
            if name in self.data and not (self.data.get(name) or "").strip():  # present but empty: not a time
                self.add_error(name, "Give an ISO 8601 date or date-time, such as 2026-01-31T00:00:00Z.")
            elif cleaned.get(name):
                try:
                    cleaned[name] = parse_instant(cleaned[name], name)
                except ValidationError as exc:
                    self.add_error(name, exc.message_dict[name])
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and not isinstance(since, str) and not isinstance(until, str) and since >= until:
            self.add_error("until", "Must be later than since.")
        return cleaned


class StaffActionFilter(django_filters.FilterSet):
    """Staff actions by actor, action (exact, or a prefix ending in a dot: `broadcast.`), object and time."""

    actor = django_filters.CharFilter(max_length=160)
    action = django_filters.CharFilter(max_length=64, method="filter_action")
    object_type = django_filters.CharFilter(max_length=32)
    object_id = django_filters.CharFilter(max_length=64)
    since = django_filters.CharFilter(method="filter_since")
    until = django_filters.CharFilter(method="filter_until")

    class Meta:
        model = StaffAction
        fields = ["actor", "action", "object_type", "object_id", "since", "until"]
        form = StaffActionForm

    def filter_action(self, queryset, name, value):
        if value.endswith("."):
            return queryset.filter(action__startswith=value)
        return queryset.filter(action=value)

    def filter_since(self, queryset, name, value):
        return queryset.filter(occurred_at__gte=value)

    def filter_until(self, queryset, name, value):
        return queryset.filter(occurred_at__lt=value)

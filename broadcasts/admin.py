"""Django admin for marketers: create and schedule broadcasts, audience preview, live progress, actions."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils.html import format_html

from consent.models import actor_for

from . import selectors, services
from .models import Broadcast, BroadcastStatus, Delivery, WhenCapped

EDITABLE = ["name", "topic", "channel", "body", "template", "send_at", "local_time", "respect_quiet_hours", "frequency_cap",
            "when_capped"]


class BroadcastForm(forms.ModelForm):
    class Meta:
        model = Broadcast
        fields = EDITABLE

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "when_capped" in self.fields:
            self.fields["when_capped"].required = False  # left out: deferred until the cap allows

    def clean(self):
        data = super().clean()
        if "when_capped" in self.fields and not data.get("when_capped"):
            data["when_capped"] = WhenCapped.DEFER
        if data.get("topic") and data.get("channel"):
            errors = services.broadcast_content_errors(topic=data["topic"], channel=data["channel"],
                                                       body=data.get("body") or "", template=data.get("template"))
            if errors:
                raise ValidationError({k if k in self.fields else "template": v for k, v in errors.items()})
        return data


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    max_num = 0
    can_delete = False
    fields = ["contact", "status", "skip_reason", "rule", "authorized_by", "attempts", "provider_message_id", "error_code",
              "not_before", "sent_at", "status_at"]
    readonly_fields = fields
    ordering = ["-status_at"]
    verbose_name_plural = "Latest deliveries (50)"

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("contact")
        ids = list(qs.order_by("-id").values_list("id", flat=True)[:50])
        return qs.filter(id__in=ids)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def _run(modeladmin, request, queryset, action, **kwargs):
    done = 0
    for broadcast in queryset:
        try:
            action(broadcast=broadcast, **kwargs)
            done += 1
        except ValidationError as exc:
            modeladmin.message_user(request, f"{broadcast.name}: {'; '.join(exc.messages)}", messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{done} broadcast(s) updated.", messages.SUCCESS)


@admin.register(Broadcast)
class BroadcastAdmin(admin.ModelAdmin):
    form = BroadcastForm
    list_display = ["name", "topic", "channel", "status", "send_at", "launched_at", "progress_line"]
    list_filter = ["status", "channel", "topic"]
    search_fields = ["name"]
    inlines = [DeliveryInline]
    actions = ["schedule", "pause", "resume", "cancel"]
    change_form_template = "admin/broadcasts/broadcast/change_form.html"
    status_fields = ["status", "status_reason", "audience_preview", "progress", "created_by", "scheduled_at",
                     "launched_at", "completed_at"]

    def get_fieldsets(self, request, obj=None):
        sets = [(None, {"fields": EDITABLE})]
        if obj is not None:
            sets.insert(0, ("Status and progress", {"fields": self.status_fields}))
        return sets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if obj.status != BroadcastStatus.DRAFT:
            return [*self.status_fields, *EDITABLE]
        return self.status_fields

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = actor_for(request.user)
        super().save_model(request, obj, form, change)

    def has_delete_permission(self, request, obj=None):
        return obj is None or obj.status == BroadcastStatus.DRAFT

    @admin.display(description="Audience now")
    def audience_preview(self, obj):
        count = selectors.broadcast_audience_count(broadcast=obj)
        line = f"{count} contact(s) with a current {obj.channel} consent for {obj.topic.slug}"
        compiled = obj.compiled_content
        missing = selectors.broadcast_missing_placeholders(broadcast=obj, required=compiled.required_names(),
                                                           fallbacks=compiled.fallback_names())
        lacking = [f"{n} lack {{{{ {name} }}}}" for name, n in missing["missing_placeholders"].items() if n]
        if lacking:
            line += f"; {missing['missing_attribute']} would be skipped ({', '.join(lacking)}: no fallback)"
        fallback = [f"{n} get the fallback of {{{{ {name} }}}}" for name, n in missing["fallbacks_used"].items() if n]
        if fallback:
            line += f"; {', '.join(fallback)}"
        return line

    @admin.display(description="Progress")
    def progress(self, obj):
        stats = selectors.broadcast_stats(broadcast=obj)
        return format_html('<pre id="broadcast-progress" data-url="{}">{}</pre>', "../progress/",
                           json.dumps(stats, indent=1, cls=DjangoJSONEncoder))

    @admin.display(description="Progress")
    def progress_line(self, obj):
        if obj.status == BroadcastStatus.DRAFT:
            return "-"
        stats = selectors.broadcast_stats(broadcast=obj)
        return f"{stats['sent'] + stats['delivered']}/{stats['audience']} sent, {stats['failed']} failed"

    def get_urls(self):
        view = self.admin_site.admin_view(self.progress_view)
        return [path("<int:pk>/progress/", view, name="broadcasts_broadcast_progress"), *super().get_urls()]

    def progress_view(self, request, pk):
        """JSON for the change page's live progress."""
        if not self.has_view_permission(request):
            return JsonResponse({"detail": "forbidden"}, status=403)
        broadcast = get_object_or_404(Broadcast, pk=pk)
        return JsonResponse({"status": broadcast.status, "status_reason": broadcast.status_reason,
                             "stats": selectors.broadcast_stats(broadcast=broadcast)})

    @admin.action(description="Schedule (send at its time, or now)")
    def schedule(self, request, queryset):
        _run(self, request, queryset, services.broadcast_schedule)

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        _run(self, request, queryset, services.broadcast_pause, reason=f"paused by {actor_for(request.user)}")

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        _run(self, request, queryset, services.broadcast_resume)

    @admin.action(description="Cancel for good")
    def cancel(self, request, queryset):
        _run(self, request, queryset, services.broadcast_cancel, reason=f"cancelled by {actor_for(request.user)}")

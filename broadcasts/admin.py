"""Django admin for marketers: create and schedule broadcasts, audience preview and dry run, live
progress, and the broadcast page's buttons (Schedule, Pause, Resume, Cancel, Test send)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse, reverse_lazy
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

from config.timezones import workspace_zone
from consent.audit.actions import Via, action_record, changed
from consent.models import actor_for
from consent.services import phone_normalise

from . import selectors, sending, services
from .audit import broadcast_object, broadcast_snapshot
from .models import Broadcast, BroadcastStatus, Delivery, WhenCapped

# "View site" opens the marketers' dashboard.
admin.site.site_url = reverse_lazy("workspace:dashboard")
admin.site.site_header = "Consent manager"
admin.site.site_title = "Consent manager"
admin.site.index_title = "Workspace"

# Which of the page's buttons apply in which status (the services refuse the others anyway).
BUTTONS = {
    "schedule": (BroadcastStatus.DRAFT,),
    "pause": (BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING),
    "resume": (BroadcastStatus.PAUSED,),
    "cancel": (BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING, BroadcastStatus.PAUSED),
}
LIVE = (BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING, BroadcastStatus.PAUSED)
STATE_ORDER = ("queued", "sent", "delivered", "deferred", "failed", "skipped", "unknown", "cancelled")


def local(instant) -> str:
    """An instant in the marketer's time zone, labelled with it."""
    if instant is None:
        return "–"
    zone = workspace_zone()
    return f"{date_format(instant.astimezone(zone), 'd M Y H:i')} ({zone.key})"


def progress_payload(broadcast: Broadcast) -> dict:
    """What the page's progress bar and counts show, and what its polling reads."""
    stats = selectors.broadcast_stats(broadcast=broadcast)
    audience = stats["audience"] or 0
    open_ = stats["queued"] + stats["deferred"]
    launched = broadcast.launched_at is not None
    done = audience - open_ if launched else 0
    if broadcast.status == BroadcastStatus.COMPLETED:
        percent = 100
    else:
        percent = round(100 * done / audience) if audience and launched else 0
    return {"status": broadcast.status, "status_label": broadcast.get_status_display(),
            "status_reason": broadcast.status_reason, "stats": stats, "percent": percent, "done": done,
            "next_due": local(stats["next_due_at"]) if stats.get("next_due_at") else "",
            "live": broadcast.status in LIVE}

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


def _run(modeladmin, request, queryset, action, name: str, **kwargs):
    done = 0
    for broadcast in queryset:
        try:
            with transaction.atomic():  # the change and its staff action record commit together
                before = broadcast_snapshot(broadcast)
                after = broadcast_snapshot(action(broadcast=broadcast, **kwargs))
                old, new = changed(before, after)
                action_record(request=request, via=Via.ADMIN, action=name, **broadcast_object(broadcast),
                              before=old, after=new)
            done += 1
        except ValidationError as exc:
            modeladmin.message_user(request, f"{broadcast.name}: {'; '.join(exc.messages)}", messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{done} broadcast(s) updated.", messages.SUCCESS)


@admin.register(Broadcast)
class BroadcastAdmin(admin.ModelAdmin):
    form = BroadcastForm
    list_display = ["name", "topic", "channel", "status", "send_at", "progress_line"]
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
        with transaction.atomic():  # the change and its staff action record commit together
            before = broadcast_snapshot(Broadcast.objects.select_related("topic").get(pk=obj.pk)) if change else None
            super().save_model(request, obj, form, change)
            after = broadcast_snapshot(Broadcast.objects.select_related("topic").get(pk=obj.pk))
            old, new = changed(before, after)
            action_record(request=request, via=Via.ADMIN, action="broadcast.update" if change else "broadcast.create",
                          **broadcast_object(obj), before=old, after=new)

    def delete_model(self, request, obj):
        with transaction.atomic():  # a draft deleted, and its staff action record
            action_record(request=request, via=Via.ADMIN, action="broadcast.delete", **broadcast_object(obj),
                          before=broadcast_snapshot(obj))
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

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
        data = progress_payload(obj)
        return format_html('<span id="broadcast-progress-line">{}% ({} of {} done)</span>', data["percent"], data["done"],
                           data["stats"]["audience"])

    @admin.display(description="Progress")
    def progress_line(self, obj):
        if obj.status == BroadcastStatus.DRAFT:
            return "-"
        stats = selectors.broadcast_stats(broadcast=obj)
        return f"{stats['sent'] + stats['delivered']}/{stats['audience']} sent, {stats['failed']} failed"

    def get_urls(self):
        view = self.admin_site.admin_view(self.progress_view)
        return [path("<int:pk>/progress/", view, name="broadcasts_broadcast_progress"),
                path("<int:pk>/act/<str:action>/", self.admin_site.admin_view(self.button_view),
                     name="broadcasts_broadcast_button"),
                path("<int:pk>/test-send/", self.admin_site.admin_view(self.test_send_view),
                     name="broadcasts_broadcast_test_send"),
                *super().get_urls()]

    def progress_view(self, request, pk):
        """JSON for the change page's live progress."""
        if not self.has_view_permission(request):
            return JsonResponse({"detail": "forbidden"}, status=403)
        broadcast = get_object_or_404(Broadcast, pk=pk)
        return JsonResponse(progress_payload(broadcast))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        broadcast = Broadcast.objects.select_related("topic").filter(pk=object_id).first() if str(object_id).isdigit() else None
        extra_context = dict(extra_context or {})
        if broadcast is not None:
            now = timezone.now()
            extra_context["panel"] = {
                "broadcast": broadcast, "progress": progress_payload(broadcast),
                "buttons": {name: broadcast.status in statuses for name, statuses in BUTTONS.items()},
                "can_change": self.has_change_permission(request, broadcast),
                "dry_run": (selectors.broadcast_dry_run(broadcast=broadcast, now=now)
                            if broadcast.status in (BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED) else None),
                "now": local(now), "send_at": local(broadcast.send_at), "launched_at": local(broadcast.launched_at),
                "completed_at": local(broadcast.completed_at), "state_order": STATE_ORDER,
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def _back(self, pk):
        return HttpResponseRedirect(reverse("admin:broadcasts_broadcast_change", args=[pk]))

    def button_view(self, request, pk, action):
        """One of the page's buttons: the broadcast service of that name, then back to the page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        broadcast = get_object_or_404(Broadcast, pk=pk)
        if not self.has_change_permission(request, broadcast) or action not in BUTTONS:
            return JsonResponse({"detail": "forbidden"}, status=403)
        actor = actor_for(request.user)
        run = {"schedule": lambda: services.broadcast_schedule(broadcast=broadcast),
               "pause": lambda: services.broadcast_pause(broadcast=broadcast, reason=f"paused by {actor}"),
               "resume": lambda: services.broadcast_resume(broadcast=broadcast),
               "cancel": lambda: services.broadcast_cancel(broadcast=broadcast, reason=f"cancelled by {actor}")}[action]
        try:
            done = run()
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.WARNING)
        else:
            self.message_user(request, f"{done.name}: {done.get_status_display().lower()}.", messages.SUCCESS)
        return self._back(pk)

    def test_send_view(self, request, pk):
        """Test send: the broadcast once to one contact whose consent is current (sending.broadcast_test_send)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        broadcast = get_object_or_404(Broadcast.objects.select_related("topic"), pk=pk)
        if not self.has_change_permission(request, broadcast):
            return JsonResponse({"detail": "forbidden"}, status=403)
        phone = request.POST.get("phone", "")[:32]
        try:
            e164 = phone_normalise(phone)
            result = sending.broadcast_test_send(broadcast=broadcast, phone=e164)
        except ValidationError as exc:
            self.message_user(request, f"Test send: {'; '.join(exc.messages)}", messages.WARNING)
        else:
            self.message_user(request, f"Test sent to {result['phone']} (provider id {result['provider_message_id']}).",
                              messages.SUCCESS)
        return self._back(pk)

    @admin.action(description="Schedule (send at its time, or now)")
    def schedule(self, request, queryset):
        _run(self, request, queryset, services.broadcast_schedule, "broadcast.schedule")

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        _run(self, request, queryset, services.broadcast_pause, "broadcast.pause", reason=f"paused by {actor_for(request.user)}")

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        _run(self, request, queryset, services.broadcast_resume, "broadcast.resume")

    @admin.action(description="Cancel for good")
    def cancel(self, request, queryset):
        _run(self, request, queryset, services.broadcast_cancel, "broadcast.cancel", reason=f"cancelled by {actor_for(request.user)}")

"""Django admin: contacts with their consent timeline, topics with their text versions, a read-only ledger."""

import uuid

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from . import selectors, services, text_checks
from .audit.actions import (
    Staff,
    Via,
    action_record,
    changed,
    consent_statuses,
    contact_object,
    review_action_record,
    revocation_snapshots,
    topic_snapshot,
)
from .care import selectors as care_selectors
from .care import services as care_services
from .models import (
    ApiRole,
    Consent,
    ConsentEvent,
    Contact,
    Conversation,
    LedgerCheckpoint,
    Message,
    RevocationReview,
    RevocationVia,
    Source,
    StaffAction,
    Suppression,
    Topic,
    TopicText,
    actor_for,
)
from .outbox import topic_text_warnings, topic_warnings
from .permissions import user_roles
from .roles import user_change_record, user_delete_record, user_form_snapshot


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nobody adds, changes or deletes these rows here, superusers included."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ConsentInline(ReadOnlyInline):
    model = Consent
    fields = ["topic", "channel", "status", "source", "requested_at", "confirmed_at", "expires_at", "revoked_at"]
    readonly_fields = fields


class EventInline(ReadOnlyInline):
    model = ConsentEvent
    verbose_name_plural = "Consent timeline (ledger events)"
    fields = ["seq", "occurred_at", "kind", "topic_slug", "channel", "source", "actor", "text_version", "evidence"]
    readonly_fields = fields
    ordering = ["seq"]
    fk_name = "contact"


class MessageInline(ReadOnlyInline):
    model = Message
    fields = ["created_at", "direction", "channel", "kind", "body", "status", "provider_message_id", "error_code"]
    readonly_fields = fields


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["phone", "country", "timezone", "created_at", "erased_at"]
    search_fields = ["phone"]
    list_filter = ["country"]
    readonly_fields = ["phone", "phone_pseudonym", "created_at", "erased_at", "whatsapp_window_until"]
    fields = ["phone", "country", "timezone", "timezones", "attributes", "phone_pseudonym", "whatsapp_window_until",
              "created_at", "erased_at"]
    inlines = [ConsentInline, EventInline, MessageInline]

    def has_add_permission(self, request):
        # Contacts come from opt-ins, the API and imports, where numbers are validated.
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TopicTextInline(ReadOnlyInline):
    model = TopicText
    fk_name = "topic"
    fields = ["version", "consent_text", "confirmation_message", "help_message", "welcome_message", "sha256",
              "created_at", "created_by"]
    readonly_fields = fields
    ordering = ["-version"]


TOPIC_TEXT_FIELDS = ("consent_text", "confirmation_message", "help_message", "welcome_message")


class TopicForm(forms.ModelForm):
    """A topic with its current texts; saving changed texts makes a new version through the service."""

    consent_text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Shown at opt-in.")
    confirmation_message = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}),
                                           help_text="The prompt; the reply instruction and the link are added.")
    help_message = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="Reply to HELP.")
    welcome_message = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False,
                                      help_text="Sent once after each confirmation (brand, frequency, HELP, STOP); "
                                                "empty: the default welcome.")
    keywords = forms.CharField(required=False, help_text="Comma-separated, e.g. PROMO, DEALS.")

    class Meta:
        model = Topic
        fields = ["slug", "name", "keywords", "consent_ttl_days"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["slug"].disabled = True
            self.initial["keywords"] = ", ".join(self.instance.keywords or [])
            if self.instance.current_text:
                for name in TOPIC_TEXT_FIELDS:
                    self.initial[name] = getattr(self.instance.current_text, name)

    def clean_keywords(self):
        keywords = services.topic_keywords_normalise(self.cleaned_data["keywords"].split(","))
        try:
            services.topic_keywords_check(keywords, exclude_topic=self.instance if self.instance.pk else None)
        except ValidationError as exc:
            raise forms.ValidationError(exc.message_dict["keywords"]) from None
        return keywords

    def clean(self):
        """With CONSENT_TEXT_CHECKS=strict, texts that lack what the messaging principles ask for are form errors."""
        data = super().clean()
        names = ("name", "consent_text", "confirmation_message", "welcome_message")
        if settings.CONSENT_TEXT_CHECKS == "strict" and all(name in data for name in names):
            warnings = topic_text_warnings(**{name: data[name] for name in names})
            for field, messages_ in text_checks.errors_by_field(warnings).items():
                for message in messages_:
                    self.add_error(field, message)
        return data


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    form = TopicForm
    list_display = ["slug", "name", "keywords", "consent_ttl_days", "current_text", "text_warnings"]
    search_fields = ["slug", "name"]
    readonly_fields = ["current_text", "text_warnings", "created_at", "updated_at"]
    fields = ["slug", "name", "keywords", "consent_ttl_days", "consent_text", "confirmation_message", "help_message",
              "welcome_message", "current_text", "text_warnings", "created_at", "updated_at"]
    inlines = [TopicTextInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("current_text")

    @admin.display(description="Text warnings")
    def text_warnings(self, obj):
        """What the texts lack (brand, frequency, rates, HELP, STOP), one line each; "none" when complete."""
        warnings = topic_warnings(obj) if obj.pk else []
        if not warnings:
            return "none"
        return format_html_join(mark_safe("<br>"), '<span style="color:#ba2121">{}: {}</span>',
                                ((w.field, w.message) for w in warnings))

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        texts = {name: data[name] for name in TOPIC_TEXT_FIELDS}
        with transaction.atomic():  # the change and its staff action record commit together
            if change:
                before = topic_snapshot(Topic.objects.select_related("current_text").get(pk=obj.pk))
                saved = services.topic_update(topic=obj, actor=actor_for(request.user), name=data["name"],
                                              keywords=data["keywords"], consent_ttl_days=data["consent_ttl_days"],
                                              **texts)
                old, new = changed(before, topic_snapshot(saved))
                action_record(request=request, via=Via.ADMIN, action="topic.update", object_type="topic",
                              object_id=saved.pk, object_repr=saved.slug, before=old, after=new)
            else:
                saved = services.topic_create(slug=data["slug"], name=data["name"], keywords=data["keywords"],
                                              consent_ttl_days=data["consent_ttl_days"], actor=actor_for(request.user),
                                              **texts)
                action_record(request=request, via=Via.ADMIN, action="topic.create", object_type="topic",
                              object_id=saved.pk, object_repr=saved.slug, after=topic_snapshot(saved))
        obj.pk, obj.current_text = saved.pk, saved.current_text
        for warning in topic_warnings(saved):
            self.message_user(request, f"{warning.field}: {warning.message}", level=messages.WARNING)

    def has_delete_permission(self, request, obj=None):
        return False


def _may_revoke(request) -> bool:
    """Admins and marketers record revocations and decide reviews; auditors only read."""
    return bool(user_roles(request.user) & {ApiRole.ADMIN, ApiRole.MARKETER})


class StaffRevocationForm(forms.Form):
    """How a revocation reached staff (a call, an email, in person …), kept in the ledger's evidence."""

    via = forms.ChoiceField(choices=RevocationVia.choices, help_text="How the person asked.")
    reason = forms.CharField(required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


@admin.action(description="Record a revocation of the selected consents (how it reached us)",
              permissions=["revoke"])
def revoke_selected_consents(modeladmin, request, queryset):
    """Revoke each selected consent (source admin, `via` in evidence); each person gets one confirmation."""
    form = StaffRevocationForm(request.POST if "apply" in request.POST else None)
    if not form.is_valid():
        context = {**modeladmin.admin_site.each_context(request), "title": "Record a revocation", "form": form,
                   "consents": queryset.select_related("contact", "topic"), "opts": modeladmin.model._meta,
                   "action": "revoke_selected_consents", "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME}
        return TemplateResponse(request, "admin/consent/staff_revocation.html", context)
    evidence = {"via": form.cleaned_data["via"], "ip": request.META.get("REMOTE_ADDR")}
    by = Staff.from_request(request, via=Via.ADMIN)
    reason = form.cleaned_data["reason"]
    revoked = 0
    for consent in queryset.select_related("contact", "topic").order_by("contact_id", "id"):
        with transaction.atomic():  # each revocation and its staff action record commit together
            was = consent_statuses(consent.contact)
            done = services.revocation_apply(
                contact=consent.contact, channel=consent.channel, topic=consent.topic, source=Source.ADMIN,
                reason=reason, evidence=evidence, actor=by.actor)
            if done:
                before, after = revocation_snapshots(was, done)
                by.record(action="consent.revoke", **contact_object(consent.contact), before=before,
                          after={**after, "reason": reason, "via": form.cleaned_data["via"]})
        revoked += len(done)
    modeladmin.message_user(request, f"{revoked} consent(s) revoked; each person gets one confirmation.",
                            messages.SUCCESS)
    return None


@admin.register(Consent)
class ConsentAdmin(ReadOnlyAdmin):
    list_display = ["contact", "topic", "channel", "status", "source", "confirmed_at", "expires_at", "revoked_at"]
    list_filter = ["status", "channel", "topic", "source"]
    search_fields = ["contact__phone"]
    list_select_related = ["contact", "topic"]
    actions = [revoke_selected_consents]

    def has_revoke_permission(self, request):
        return _may_revoke(request)


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "occurred_at", "kind", "contact", "topic_slug", "channel", "source", "actor"]
    list_filter = ["kind", "channel", "source"]
    search_fields = ["contact__phone", "uuid", "subject"]
    list_select_related = ["contact"]
    ordering = ["-seq"]


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "contact", "direction", "channel", "kind", "status", "provider_message_id", "error_code"]
    list_filter = ["direction", "channel", "kind", "status"]
    search_fields = ["contact__phone", "provider_message_id", "body"]
    list_select_related = ["contact"]


@admin.register(Suppression)
class SuppressionAdmin(ReadOnlyAdmin):
    list_display = ["phone_pseudonym", "reason", "created_at"]


@admin.register(LedgerCheckpoint)
class LedgerCheckpointAdmin(ReadOnlyAdmin):
    list_display = ["seq", "hash", "signed_at"]


class RevocationReviewForm(forms.ModelForm):
    """A person's decision on a text that may be a revocation."""

    resolve_as = forms.ChoiceField(choices=[("", "— undecided —"), (RevocationReview.Decision.REVOKE, "Revoke"),
                                            (RevocationReview.Decision.KEEP, "Keep (not a revocation)")],
                                   required=False, label="Decision")
    decision_note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}),
                                    label="Note")

    class Meta:
        model = RevocationReview
        fields = []


@admin.register(RevocationReview)
class RevocationReviewAdmin(admin.ModelAdmin):
    """The revocation review queue: soonest deadline first, overdue items in red."""

    form = RevocationReviewForm
    list_display = ["id", "contact", "channel", "text", "received_at", "deadline", "queue_status", "decision",
                    "resolved_by"]
    list_filter = ["channel", "decision", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["contact__phone"]
    list_select_related = ["contact", "message"]
    ordering = ["resolved_at", "deadline", "id"]
    readonly_fields = ["contact", "channel", "text", "rule", "received_at", "deadline", "due_soon_at", "queue_status",
                       "decision", "resolved_at", "resolved_by", "note", "revoked"]
    fields = readonly_fields + ["resolve_as", "decision_note"]

    @admin.display(description="Text")
    def text(self, obj):
        return obj.message.body

    @admin.display(description="Status")
    def queue_status(self, obj):
        if obj.resolved_at is not None:
            return "resolved"
        if obj.due_soon_at <= timezone.now():
            return format_html('<strong style="color:#ba2121">overdue: applied at {}</strong>', obj.deadline)
        return "open"

    def get_fields(self, request, obj=None):
        if obj is not None and obj.resolved_at is None and _may_revoke(request):
            return self.fields
        return self.readonly_fields

    def has_add_permission(self, request):
        return False  # reviews come from inbound texts

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return _may_revoke(request) and (obj is None or obj.resolved_at is None)

    def save_model(self, request, obj, form, change):
        decision = form.cleaned_data.get("resolve_as")
        if not decision:
            return
        try:
            with transaction.atomic():  # the decision and its staff action record commit together
                review = services.revocation_review_resolve(review=obj, decision=decision,
                                                            note=form.cleaned_data.get("decision_note", ""),
                                                            actor=actor_for(request.user), source=Source.ADMIN)
                review_action_record(request=request, review=review, via=Via.ADMIN)
        except services.ReviewAlreadyResolved as exc:
            self.message_user(request, str(exc), messages.WARNING)


@admin.register(StaffAction)
class StaffActionAdmin(ReadOnlyAdmin):
    """The staff action log (rule 16), read-only like the ledger."""

    list_display = ["seq", "occurred_at", "actor", "action", "object_type", "object_repr", "via", "ip"]
    list_filter = ["action", "via", "object_type"]
    search_fields = ["actor", "action", "object_id", "object_repr", "uuid"]
    ordering = ["-seq"]


# --- customer care: the inbox (rule 18) ------------------------------------------------------


def _may_care(request) -> bool:
    return bool(user_roles(request.user) & {ApiRole.AGENT, ApiRole.ADMIN})


class InboxReplyForm(forms.Form):
    body = forms.CharField(required=False, max_length=1600, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
    idempotency_key = forms.CharField(max_length=200, widget=forms.HiddenInput)


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    """Conversations; the care inbox page (`inbox/`) is where agents answer them."""

    list_display = ["id", "contact", "channel", "status", "waiting_since", "last_message_at", "first_response",
                    "assigned_to"]
    list_filter = ["status", "channel"]
    search_fields = ["contact__phone"]
    list_select_related = ["contact", "assigned_to"]

    @admin.display(description="First response")
    def first_response(self, obj):
        seconds = obj.first_response_seconds
        return "—" if seconds is None else f"{seconds // 60} min {seconds % 60} s"

    def has_view_permission(self, request, obj=None):
        return _may_care(request)

    def has_module_permission(self, request):
        return _may_care(request) or super().has_module_permission(request)

    def get_urls(self):
        return [path("inbox/", self.admin_site.admin_view(self.inbox_view), name="consent_conversation_inbox"),
                *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET" and not request.GET and _may_care(request):
            return redirect("admin:consent_conversation_inbox")
        return super().changelist_view(request, extra_context)

    def inbox_view(self, request):
        if not _may_care(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._inbox_action(request)
        now = timezone.now()
        conversations = list(care_selectors.conversation_list()[:200])
        selected_id = request.GET.get("c")
        selected = None
        if selected_id and selected_id.isdigit():
            selected = next((c for c in conversations if c.pk == int(selected_id)), None) or \
                care_selectors.conversation_get(int(selected_id))
        if selected is None:
            selected = next((c for c in conversations if c.status == Conversation.Status.OPEN), None)
        thread = care_selectors.threads([selected]).get(selected.pk, []) if selected else []
        window_seconds = None
        if selected and selected.channel == "whatsapp" and selected.contact.whatsapp_window_until:
            window_seconds = max(0, int((selected.contact.whatsapp_window_until - now).total_seconds()))
        context = {
            **self.admin_site.each_context(request),
            "title": "Care inbox",
            "conversations": conversations,
            "selected": selected,
            "thread": thread,
            "consents": [(c, selectors.effective_status(c)) for c in selected.contact.consents.all()] if selected else [],
            "window_seconds": window_seconds,
            "window_open": window_seconds is not None and window_seconds > 0,
            "form": InboxReplyForm(initial={"idempotency_key": uuid.uuid4().hex}),
            "template_name": settings.WHATSAPP_CARE_TEMPLATE,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/consent/care_inbox.html", context)

    def _inbox_action(self, request):
        pk = request.POST.get("conversation", "")
        if not pk.isdigit() or care_selectors.conversation_get(int(pk)) is None:
            self.message_user(request, "No such conversation.", messages.ERROR)
            return redirect("admin:consent_conversation_inbox")
        conversation = care_selectors.conversation_get(int(pk))
        action = request.POST.get("action")
        by = Staff.from_request(request, via=Via.ADMIN)
        back = redirect(f"{reverse('admin:consent_conversation_inbox')}?c={conversation.pk}")
        if action in ("reply", "template"):
            form = InboxReplyForm(request.POST)
            if not form.is_valid() or (action == "reply" and not form.cleaned_data["body"].strip()):
                self.message_user(request, "Write a reply (at most 1600 characters).", messages.ERROR)
                return back
            try:
                care_services.conversation_reply(conversation_id=conversation.pk, by=by,
                                                 body=form.cleaned_data["body"].strip(), template=action == "template",
                                                 idempotency_key=form.cleaned_data["idempotency_key"])
            except care_services.ReplyRefused as refused:
                self.message_user(request, refused.refusal.detail, messages.ERROR)
            except care_services.IdempotencyConflict as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, "Reply queued.", messages.SUCCESS)
        elif action == "close":
            care_services.conversation_close(conversation_id=conversation.pk, by=by)
            self.message_user(request, "Conversation closed.", messages.SUCCESS)
        elif action == "assign":
            care_services.conversation_assign(conversation_id=conversation.pk, user=request.user, by=by)
            self.message_user(request, "Assigned to you.", messages.SUCCESS)
        elif action == "revoke":
            revoked = care_services.conversation_revoke(conversation_id=conversation.pk, by=by)
            self.message_user(request, f"Revoked {len(revoked)} consent(s) on {conversation.channel}.",
                              messages.SUCCESS)
        else:
            self.message_user(request, "Unknown action.", messages.ERROR)
        return back


# --- users and roles: every change in the staff action log (rule 16) ----------------------------------

User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    """Django's user admin; each user created, changed (roles, groups, permissions, flags) or deleted here
    is a staff action, in the admin's transaction of the change."""

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)  # groups and permissions are saved here
        before = user_form_snapshot(form.initial) if change else None
        user_change_record(user=form.instance, before=before, by=Staff.from_request(request, via=Via.ADMIN))

    def delete_model(self, request, obj):
        user_delete_record(user=obj, by=Staff.from_request(request, via=Via.ADMIN))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():  # the bulk action is not in a transaction of its own
            by = Staff.from_request(request, via=Via.ADMIN)
            for user in queryset:
                user_delete_record(user=user, by=by)
            super().delete_queryset(request, queryset)

"""Django admin: contacts with their consent timeline, topics with their text versions, a read-only ledger."""

from django.contrib import admin

from .models import Consent, ConsentEvent, Contact, LedgerCheckpoint, Message, Suppression, Topic, TopicText


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
    fields = ["version", "consent_text", "confirmation_message", "help_message", "sha256", "created_at", "created_by"]
    readonly_fields = fields
    ordering = ["-version"]


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "keywords", "consent_ttl_days", "current_text"]
    search_fields = ["slug", "name"]
    readonly_fields = ["current_text", "created_at", "updated_at"]
    fields = ["slug", "name", "keywords", "consent_ttl_days", "current_text", "created_at", "updated_at"]
    inlines = [TopicTextInline]

    def has_add_permission(self, request):
        # Topics are created with their first texts through the API (or `make run`'s demo).
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Consent)
class ConsentAdmin(ReadOnlyAdmin):
    list_display = ["contact", "topic", "channel", "status", "source", "confirmed_at", "expires_at", "revoked_at"]
    list_filter = ["status", "channel", "topic", "source"]
    search_fields = ["contact__phone"]
    list_select_related = ["contact", "topic"]


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

"""Broadcasts and their per-recipient deliveries.

A Delivery row is unique per broadcast × contact and is the claim that makes "never twice"
hold (rule 8 of docs/design.md): a message leaves only for a row moved from an open status (`queued`,
`deferred`) to `sending` in a committed transaction, and nothing ever moves a row back from
`sending` to an open status except a provider reply that proves the message was not taken.
"""

from django.db import models
from django.db.models import Q
from django.utils.functional import cached_property

from consent.models import Channel, Contact, Topic
from messaging.lifecycle import HANDED_OVER, OPEN, OutboundMessage, Status

from . import content


class BroadcastStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    SENDING = "sending", "Sending"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


# Deliveries go through the one outbound lifecycle (messaging.lifecycle), as prompts and replies do.
DeliveryStatus = Status
OPEN_STATUSES = OPEN  # may still be claimed and sent
HANDED_OVER_STATUSES = HANDED_OVER  # went, or may have gone, out


class SkipReason(models.TextChoices):
    NOT_CURRENT = "not_current", "Consent no longer current (or number suppressed)"
    FREQUENCY_CAP = "frequency_cap", "Frequency cap for the topic reached"
    NO_NUMBER = "no_number", "Contact erased"
    MISSING_ATTRIBUTE = "missing_attribute", "A placeholder without fallback that the contact lacks"
    POLICY_CAP = "policy_cap", "A jurisdiction's or the brand's cap reached (the broadcast skips capped deliveries)"
    PLATFORM_RULE = "platform_rule", "The channel's platform does not deliver it (e.g. WhatsApp marketing to +1 numbers)"


class WhenCapped(models.TextChoices):
    DEFER = "defer", "Defer until the cap allows"
    SKIP = "skip", "Skip"


class Broadcast(models.Model):
    """A promotional message to everyone whose consent for a topic and channel is current."""

    name = models.CharField(max_length=200)
    topic = models.ForeignKey(Topic, on_delete=models.PROTECT, related_name="broadcasts")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    body = models.TextField(blank=True, help_text="SMS text; {{ placeholders }} are filled from contact attributes.")
    template = models.JSONField(null=True, blank=True, help_text="WhatsApp template: {name, language, components}.")
    send_at = models.DateTimeField(null=True, blank=True, help_text="When to start; empty: as soon as scheduled.")
    local_time = models.TimeField(
        null=True, blank=True,
        help_text="Deliver at this wall-clock time in each recipient's zone (its next occurrence after the start).",
    )
    respect_quiet_hours = models.BooleanField(default=True)
    frequency_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many promotional messages of the topic per contact per rolling 7 days."
    )
    when_capped = models.CharField(
        max_length=8, choices=WhenCapped.choices, default=WhenCapped.DEFER, db_default=WhenCapped.DEFER,
        help_text="A delivery a cap holds back (rule 12): deferred until the cap allows, or skipped.",
    )
    status = models.CharField(max_length=16, choices=BroadcastStatus.choices, default=BroadcastStatus.DRAFT)
    status_reason = models.CharField(max_length=255, blank=True)
    created_by = models.CharField(max_length=160, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    audience_size = models.PositiveIntegerField(null=True, blank=True, help_text="Deliveries created at launch.")
    fanout_cursor = models.BigIntegerField(default=0, help_text="Last contact id whose delivery row exists.")
    fanout_done = models.BooleanField(default=False)
    progress_at = models.DateTimeField(null=True, blank=True, help_text="Last time a worker made progress.")
    resumes = models.PositiveIntegerField(
        default=0, db_default=0,
        help_text="Times resumed: a send task that claimed rows before a resume re-queues their transient failures.",
    )

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "send_at"], name="broadcast_due_idx")]

    def __str__(self):
        return f"{self.name} ({self.status})"

    @cached_property
    def compiled_content(self) -> content.CompiledContent:
        """The body or template parsed once, for rendering per recipient at send time."""
        if self.channel == Channel.WHATSAPP:
            return content.compile_content(body=None, template=self.template or {})
        return content.compile_content(body=self.body, template=None)


class Delivery(OutboundMessage):
    """One broadcast to one contact: the claim before the provider call, then its outcome."""

    # No foreign-key constraints in the database on this high-volume table: fan-out inserts a
    # broadcast's rows from a query that joins the contacts (which are never deleted, only erased)
    # under the broadcast's row lock, so every id exists by construction, and the per-row checks
    # PostgreSQL would run at commit cost a third of fan-out time (5.8 of 14 s for 500,000 rows).
    # Django still cascades and protects as declared.
    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="deliveries", db_constraint=False)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    not_before = models.DateTimeField(null=True, blank=True, help_text="Not to be sent before (deferral, retry, local time).")
    attempts = models.PositiveSmallIntegerField(default=0)
    skip_reason = models.CharField(max_length=32, blank=True, choices=SkipReason.choices)
    rule = models.CharField(
        max_length=64, blank=True, default="", db_default="",
        help_text="The policy rule that last deferred or skipped it (GET /api/v1/policies/ lists each with its source).",
    )
    deferrals = models.PositiveSmallIntegerField(
        default=0, db_default=0, help_text="Times the provider held it back (WhatsApp 131049): the next wait grows with it.",
    )
    authorized_by = models.BigIntegerField(
        null=True, blank=True, help_text="Ledger sequence number of the event that made the consent current when claimed."
    )
    retryable = models.BooleanField(
        default=False, db_default=False, help_text="Failed only on errors that prove the provider did not take it: a resume tries again."
    )
    created_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["broadcast", "contact"], name="delivery_unique_broadcast_contact"),
        ]
        indexes = [
            models.Index(fields=["broadcast", "status"], name="delivery_status_idx"),
            models.Index(fields=["provider_message_id"], name="delivery_provider_id_idx",
                         condition=Q(provider_message_id__isnull=False)),
            models.Index(fields=["contact", "claimed_at"], name="delivery_contact_recent_idx",
                         condition=Q(claimed_at__isnull=False)),
            models.Index(fields=["broadcast", "not_before"], name="delivery_wake_idx",
                         condition=Q(not_before__isnull=False)),
        ]

    def __str__(self):
        return f"broadcast {self.broadcast_id} → contact {self.contact_id}: {self.status}"


class SenderLock(models.Model):
    """One row per limited sender (the WhatsApp business number): a claim that may add new recipients
    under the messaging limit locks it first, so that two workers never both take the last slot."""

    key = models.CharField(max_length=128, primary_key=True)

    def __str__(self):
        return self.key

"""Contacts, topics and their text versions, consents (current state) and the consent ledger."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q, Subquery

from messaging.lifecycle import OutboundMessage


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"


class ConsentStatus(models.TextChoices):
    PENDING = "pending", "Pending confirmation"
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class Source(models.TextChoices):
    WEB_FORM = "web_form", "Web form"
    API = "api", "API"
    SMS_KEYWORD = "sms_keyword", "SMS keyword"
    WHATSAPP_KEYWORD = "whatsapp_keyword", "WhatsApp keyword"
    IMPORT = "import", "Import"
    ADMIN = "admin", "Admin"
    PROVIDER = "provider", "Provider"
    SYSTEM = "system", "System"
    # A revocation in other words (consent/revocation.py), from the person's own text.
    SMS_TEXT = "sms_text", "SMS text (revocation in other words)"
    WHATSAPP_TEXT = "whatsapp_text", "WhatsApp text (revocation in other words)"
    PREFERENCE_CENTRE = "preference_centre", "Preference centre"


class EventKind(models.TextChoices):
    REQUESTED = "requested", "Opt-in requested"
    CONFIRMATION_SENT = "confirmation_sent", "Confirmation prompt sent"
    CONFIRMED = "confirmed", "Confirmed"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"
    IMPORTED = "imported", "Imported"
    ERASED = "erased", "Personal data erased"
    SUPPRESSED = "suppressed", "Number suppressed"


class Contact(models.Model):
    """One person, identified by one phone number in E.164."""

    phone = models.CharField(max_length=20, unique=True, null=True, blank=True, help_text="E.164; empty once erased.")
    phone_pseudonym = models.CharField(max_length=64, unique=True, help_text="Keyed HMAC of the number, as in the ledger.")
    country = models.CharField(max_length=2, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    timezones = models.JSONField(default=list, blank=True, help_text="Every zone the number's prefix may be in.")
    attributes = models.JSONField(default=dict, blank=True)
    whatsapp_window_until = models.DateTimeField(null=True, blank=True, help_text="End of the 24-hour customer-care window.")
    erased_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.phone or f"[erased contact {self.pk}]"


class Suppression(models.Model):
    """A number that must never be messaged again (erased, invalid), kept as a pseudonym only."""

    phone_pseudonym = models.CharField(max_length=64, unique=True)
    reason = models.CharField(max_length=64)
    detail = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.phone_pseudonym[:12]}… ({self.reason})"


class Topic(models.Model):
    """A purpose of promotional messages, with versioned texts."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    keywords = models.JSONField(default=list, blank=True, help_text='Upper-case keywords such as ["PROMO"].')
    consent_ttl_days = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: consent does not expire.")
    current_text = models.ForeignKey("TopicText", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug


class TopicText(models.Model):
    """One immutable version of a topic's texts; every consent event names the version it was given under."""

    topic = models.ForeignKey(Topic, on_delete=models.PROTECT, related_name="texts")
    version = models.PositiveIntegerField()
    consent_text = models.TextField()
    confirmation_message = models.TextField()
    help_message = models.TextField()
    welcome_message = models.TextField(blank=True, default="",
                                       help_text="Sent once after each confirmation; empty: the default welcome.")
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["topic_id", "version"]
        constraints = [models.UniqueConstraint(fields=["topic", "version"], name="topictext_unique_version")]

    def __str__(self):
        return f"{self.topic.slug} v{self.version}"


# The ledger events that make a consent current, and those that end it after them.
AUTHORISING_KINDS = (EventKind.CONFIRMED, EventKind.IMPORTED)
ENDING_KINDS = (EventKind.REVOKED, EventKind.EXPIRED)


def _expired_q(now) -> Q:
    return Q(status=ConsentStatus.ACTIVE, expires_at__lte=now) | Q(status=ConsentStatus.PENDING, confirm_by__lt=now)


class ConsentQuerySet(models.QuerySet):
    """The one definition of *current*, *expired* and *may receive a promotion* for consents."""

    def current(self, now):
        """Active and not past `expires_at`."""
        return self.filter(Q(status=ConsentStatus.ACTIVE) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now)))

    def expired(self, now):
        """Active past its lifetime, or pending past its confirmation window (not yet recorded as expired)."""
        return self.filter(_expired_q(now))

    def with_status(self, status, now):
        """Consents whose effective status (what a reader sees at `now`) is `status`."""
        if status == ConsentStatus.ACTIVE:
            return self.current(now)
        if status == ConsentStatus.EXPIRED:
            return self.filter(Q(status=ConsentStatus.EXPIRED) | _expired_q(now))
        if status == ConsentStatus.PENDING:
            return self.filter(Q(status=ConsentStatus.PENDING) & (Q(confirm_by__isnull=True) | Q(confirm_by__gte=now)))
        return self.filter(status=status)

    def messageable(self):
        """Of contacts that may be messaged at all: not erased, not on the suppression list."""
        suppressed = Suppression.objects.filter(phone_pseudonym=OuterRef("contact__phone_pseudonym"))
        return self.filter(contact__erased_at__isnull=True).exclude(Exists(suppressed))

    def authorised(self):
        """No event, no send: the pointer is a confirmed or imported event of its own contact, topic
        and channel with no revocation, expiry or erasure after it (annotated `authorising_seq`)."""
        ended = ConsentEvent.objects.filter(contact_id=OuterRef("contact_id"), seq__gt=OuterRef("seq")).filter(
            Q(kind__in=ENDING_KINDS, topic_id=OuterRef("topic_id"), channel=OuterRef("channel")) | Q(kind=EventKind.ERASED)
        )
        authorising = ConsentEvent.objects.filter(
            pk=OuterRef("current_event_id"), contact_id=OuterRef("contact_id"), topic_id=OuterRef("topic_id"),
            channel=OuterRef("channel"), kind__in=AUTHORISING_KINDS,
        ).exclude(Exists(ended))
        # A scalar subquery, not EXISTS or a join: PostgreSQL would turn those into a join on these
        # equal columns, multiply their selectivities, and sort the whole audience.
        return self.alias(authorising_seq=Subquery(authorising.values("seq")[:1])).filter(authorising_seq__isnull=False)

    def promotable(self):
        """The part of rule 7's gate that does not depend on the instant: backed by the ledger, of a
        contact that may be messaged. A sender builds it once and asks `.current(now)` per claim."""
        return self.authorised().messageable()

    def may_receive_promotion(self, now):
        """Current at `now`, backed by the ledger, of a contact that may be messaged (rule 7's gate)."""
        return self.promotable().current(now)


class Consent(models.Model):
    """Current consent state for one contact × topic × channel (a projection of the ledger)."""

    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="consents")
    topic = models.ForeignKey(Topic, on_delete=models.PROTECT, related_name="consents")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=ConsentStatus.choices)
    text = models.ForeignKey(TopicText, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=32, choices=Source.choices)
    requested_at = models.DateTimeField(null=True, blank=True)
    confirm_by = models.DateTimeField(null=True, blank=True)
    # When the last prompt was handed to the provider; YES confirms only if that follows requested_at.
    prompted_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The ledger event that made this consent current (confirmed or imported); null when it is not.
    # The send-time gate passes only a consent whose pointer is such an event of the same
    # contact × topic × channel, so a state row written behind the ledger's back sends nothing.
    current_event = models.ForeignKey("ConsentEvent", null=True, blank=True, on_delete=models.DO_NOTHING,
                                      related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConsentQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["contact", "topic", "channel"], name="consent_unique_contact_topic_channel")
        ]
        indexes = [
            models.Index(fields=["topic", "channel", "status", "contact"], name="consent_audience_idx"),
            models.Index(fields=["status", "expires_at"], name="consent_expiry_idx"),
            models.Index(fields=["status", "confirm_by"], name="consent_pending_idx"),
        ]

    def __str__(self):
        return f"{self.contact} {self.topic.slug}/{self.channel}: {self.status}"


class ChainHead(models.Model):
    """The single row that serialises appends to the ledger: last sequence number and hash."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)


class ConsentEvent(models.Model):
    """One append-only ledger entry. The database refuses UPDATE and DELETE on this table."""

    seq = models.BigIntegerField(unique=True)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    contact = models.ForeignKey(Contact, on_delete=models.DO_NOTHING, related_name="events", db_constraint=True)
    subject = models.CharField(max_length=64, help_text="Keyed pseudonym of the phone number.")
    topic = models.ForeignKey(Topic, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="events")
    topic_slug = models.CharField(max_length=64, blank=True)
    channel = models.CharField(max_length=16, blank=True)
    source = models.CharField(max_length=32, choices=Source.choices)
    actor = models.CharField(max_length=160)
    text = models.ForeignKey(TopicText, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+")
    text_version = models.PositiveIntegerField(null=True, blank=True)
    text_sha256 = models.CharField(max_length=64, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["contact", "seq"], name="event_contact_idx"),
            models.Index(fields=["topic", "channel", "seq"], name="event_topic_idx"),
            models.Index(fields=["kind", "seq"], name="event_kind_idx"),
            models.Index(fields=["occurred_at"], name="event_occurred_idx"),
        ]

    def __str__(self):
        return f"#{self.seq} {self.kind} {self.topic_slug}/{self.channel}"


class ConfirmationToken(models.Model):
    """A single-use, expiring confirmation link; only the SHA-256 of the token is stored."""

    token_sha256 = models.CharField(max_length=64, unique=True)
    consent = models.ForeignKey(Consent, on_delete=models.CASCADE, related_name="tokens")
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class Message(OutboundMessage):
    """Every transactional message exchanged with a contact (prompts, replies, inbound texts).

    Outbound ones go through the one outbound lifecycle (messaging.lifecycle), as broadcast
    deliveries do; inbound ones are stored `received`.
    """

    class Direction(models.TextChoices):
        INBOUND = "in", "Inbound"
        OUTBOUND = "out", "Outbound"

    class Kind(models.TextChoices):
        CONFIRMATION_PROMPT = "confirmation_prompt", "Confirmation prompt"
        CONFIRMED_REPLY = "confirmed_reply", "Confirmation acknowledgement"
        STOP_REPLY = "stop_reply", "Opt-out confirmation"
        HELP_REPLY = "help_reply", "Help reply"
        NOTHING_PENDING_REPLY = "nothing_pending_reply", "Nothing to confirm"
        REPLY = "reply", "Other reply"
        INBOUND = "inbound", "Inbound message (customer care)"
        KEYWORD = "keyword", "Inbound keyword (applied)"

    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="messages")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    topic = models.ForeignKey(Topic, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    body = models.TextField(blank=True)
    template = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "provider_message_id"],
                condition=Q(provider_message_id__isnull=False),
                name="message_unique_provider_id",
            )
        ]
        indexes = [models.Index(fields=["contact", "created_at"], name="message_contact_idx")]

    def __str__(self):
        return f"{self.direction} {self.kind} {self.channel} {self.status}"


class InboundReceipt(models.Model):
    """A verified inbound message as its webhook brought it, recorded before the 200 (rule 15).

    One row per (channel, provider message id): a redelivered webhook inserts nothing. The applier
    (consent/intake/applier.py) applies rows in `id` order per sender and sets `applied_at` in the
    transaction of their effects. Until then a row that `revokes` counts as applied for the send-time
    gate (rule 7).
    """

    channel = models.CharField(max_length=16, choices=Channel.choices)
    provider = models.CharField(max_length=32)
    provider_message_id = models.CharField(max_length=128)
    sender = models.CharField(max_length=32, help_text="E.164 as Contact.phone stores it, or the raw sender.")
    intent = models.CharField(max_length=16, help_text="The keyword kind read at intake (no topic keywords), or none.")
    revokes = models.BooleanField(default=False, help_text="A STOP or a clear revocation in other words.")
    message = models.JSONField(help_text="The parsed message (consent/intake/records.py).")
    received_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)
    # Database defaults: the intake's INSERT names only the record's columns (consent/rows.py).
    outcome = models.CharField(max_length=16, blank=True, db_default="", help_text="applied | duplicate | ignored.")
    attempts = models.PositiveIntegerField(db_default=0, help_text="Failed attempts to apply it.")
    last_error = models.CharField(max_length=255, blank=True, db_default="")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "provider_message_id"], name="inboundreceipt_unique_message"),
        ]
        indexes = [
            # The applier's queue and its per-sender order check: only the rows not applied yet.
            models.Index(fields=["sender", "id"], condition=Q(applied_at__isnull=True), name="inboundreceipt_pending"),
            models.Index(fields=["id"], condition=Q(applied_at__isnull=True), name="inboundreceipt_queue"),
            # The send-time gate's check (rule 7): revocations received and not applied yet.
            models.Index(fields=["sender"], condition=Q(applied_at__isnull=True, revokes=True),
                         name="inboundreceipt_pending_stop"),
        ]

    def __str__(self):
        return f"{self.channel} {self.provider_message_id} ({'applied' if self.applied_at else 'pending'})"


class RevocationVia(models.TextChoices):
    """How a revocation recorded by staff reached them (in the ledger event's evidence)."""

    PHONE_CALL = "phone_call", "Phone call"
    EMAIL = "email", "Email"
    IN_PERSON = "in_person", "In person"
    LETTER = "letter", "Letter"
    CONVERSATION = "conversation", "Customer-care conversation"
    OTHER = "other", "Other"


class RevocationReview(models.Model):
    """An inbound text that may be a revocation: a person decides before `deadline`, else it is applied.

    One per inbound message (the text is the message's body, not a copy). Resolved once:
    `decision` is `revoke` or `keep` (a person, `resolved_by`) or `deadline` (applied at the deadline).
    """

    class Decision(models.TextChoices):
        REVOKE = "revoke", "Revoke (a person decided)"
        KEEP = "keep", "Keep (not a revocation)"
        DEADLINE = "deadline", "Revoked at the review deadline"

    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="revocation_reviews")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    message = models.OneToOneField(Message, on_delete=models.PROTECT, related_name="revocation_review")
    rule = models.CharField(max_length=64, help_text="The rule of consent/revocation.py that matched.")
    received_at = models.DateTimeField()
    deadline = models.DateTimeField(help_text="10 US business days after receipt: applied then if unresolved.")
    due_soon_at = models.DateTimeField(help_text="From then on an unresolved item stands out as overdue.")
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=160, blank=True)
    note = models.TextField(blank=True)
    revoked = models.PositiveIntegerField(default=0, help_text="Consents the decision revoked.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["deadline", "id"]
        indexes = [models.Index(fields=["resolved_at", "deadline"], name="review_queue_idx")]

    def __str__(self):
        return f"review {self.pk} {self.channel} ({self.decision or 'open'})"


class LedgerCheckpoint(models.Model):
    """A signed statement of the chain head at a moment (Ed25519), for verification that resumes."""

    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    signature = models.TextField(help_text="Base64 Ed25519 signature over the canonical checkpoint.")
    public_key = models.TextField(help_text="PEM of the key that signed it.")
    # The head of the staff action chain the signature also covers (empty on checkpoints signed before it).
    actions_seq = models.BigIntegerField(null=True, blank=True)
    actions_hash = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-seq"]


class Conversation(models.Model):
    """Customer care with one contact on one channel (rule 18 of docs/design.md).

    One per contact × channel: the person's care messages (inbound, kind `inbound`) open it or reopen
    it when it was closed; the agents' replies (`ConversationReply`) answer it. `waiting_since` is the
    first message not answered yet (empty when answered); `first_response_at` the first reply since
    the conversation (re)opened at `opened_at` (each opening's wait is kept on the reply that ended it).
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="conversations")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField()
    last_message_at = models.DateTimeField()
    waiting_since = models.DateTimeField(null=True, blank=True, help_text="First message not answered yet.")
    first_response_at = models.DateTimeField(null=True, blank=True)
    assigned_to = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=160, blank=True)

    class Meta:
        ordering = ["status", "waiting_since", "last_message_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["contact", "channel"], name="conversation_unique_contact_channel")
        ]
        indexes = [models.Index(fields=["status", "waiting_since", "last_message_at"], name="conversation_inbox_idx")]

    def __str__(self):
        return f"{self.contact} {self.channel} ({self.status})"

    @property
    def first_response_seconds(self) -> int | None:
        if self.first_response_at is None:
            return None
        return max(0, int((self.first_response_at - self.opened_at).total_seconds()))


class ConversationReply(models.Model):
    """An agent's reply in a conversation: the outbound message (kind `reply`) and who wrote it.

    `idempotency_key` (the client's `Idempotency-Key`) makes a retried request return this reply
    instead of sending a second one.
    """

    conversation = models.ForeignKey(Conversation, on_delete=models.PROTECT, related_name="replies")
    message = models.OneToOneField(Message, on_delete=models.PROTECT, related_name="care_reply")
    author = models.CharField(max_length=160, help_text="Who wrote it, as the ledger names actors.")
    idempotency_key = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    first_response_seconds = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="On the first reply since the conversation (re)opened: how long the person waited for it.")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "idempotency_key"], condition=~Q(idempotency_key=""),
                                    name="conversation_reply_unique_key")
        ]
        indexes = [models.Index(fields=["created_at"], condition=Q(first_response_seconds__isnull=False),
                                name="reply_first_response_idx")]

    def __str__(self):
        return f"reply {self.pk} by {self.author}"


class ApiRole(models.TextChoices):
    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    AUDITOR = "auditor", "Auditor"
    AGENT = "agent", "Agent (customer care)"


def actor_for(user) -> str:
    """How the ledger names who did something."""
    if user is None or not getattr(user, "is_authenticated", False):
        return "system"
    return f"user:{user.get_username()}"



class StaffAction(models.Model):
    """One change made by a person (rule 16 of docs/design.md): append-only, hash-chained like the ledger.

    The database refuses UPDATE and DELETE on this table. A contact is named by its pseudonym here,
    never by its number, so that erasing a person leaves this record (and its chain) whole.
    """

    seq = models.BigIntegerField(unique=True)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    occurred_at = models.DateTimeField()
    actor = models.CharField(max_length=160, help_text='Who did it, e.g. "user:alice".')
    action = models.CharField(max_length=64, help_text='What, e.g. "topic.update" or "broadcast.schedule".')
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip = models.CharField(max_length=45, blank=True, help_text="Where the request came from (empty for commands).")
    via = models.CharField(max_length=16, help_text="api, admin or command.")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["actor", "seq"], name="staffaction_actor_idx"),
            models.Index(fields=["action", "seq"], name="staffaction_action_idx"),
            models.Index(fields=["occurred_at"], name="staffaction_occurred_idx"),
        ]

    def __str__(self):
        return f"#{self.seq} {self.actor} {self.action} {self.object_type} {self.object_id}"

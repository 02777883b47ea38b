"""Writes. Every consent change appends its ledger event(s) in the same transaction.

Services take keyword-only arguments, validate what the edge cannot know (suppression,
state), and raise django.core.exceptions.ValidationError with a field → reason mapping.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from . import limits, rows
from .attributes import MAX_ATTRIBUTES, attributes_merge
from .hashing import format_instant, topic_texts_sha256
from .ledger import event_append, pseudonym_for
from .models import (
    Channel,
    ConfirmationToken,
    Consent,
    ConsentStatus,
    Contact,
    EventKind,
    Message,
    RevocationReview,
    Source,
    Suppression,
    Topic,
    TopicText,
)
from .outbox import (
    message_queue,
    messages_store,
    outbound,
    prompt_for,
    revocation_confirmation_body,
    welcome_body,
    whatsapp_window_open,
)
from .phones import InvalidPhoneNumber, parse_phone
from .revocation import review_deadline, review_due_soon_at
from .selectors import consent_is_current, contact_by_pseudonym, contact_is_messageable, effective_status

TOKEN_SALT = "consent.optin.confirm"
OPEN_STATUSES = (ConsentStatus.PENDING, ConsentStatus.ACTIVE)


# --- contacts -------------------------------------------------------------------------------


def phone_normalise(phone: str) -> str:
    """E.164 for `phone`, or a ValidationError on the `phone` field."""
    try:
        return parse_phone(phone, default_region=settings.DEFAULT_PHONE_REGION).e164
    except InvalidPhoneNumber as exc:
        raise ValidationError({"phone": str(exc)}) from None


def contact_get_or_create(*, phone: str, country: str | None = None, timezone_name: str | None = None,
                          attributes: dict | None = None) -> Contact:
    """The contact for this number, created with its country and time zone if new."""
    try:
        parsed = parse_phone(phone, default_region=settings.DEFAULT_PHONE_REGION)
    except InvalidPhoneNumber as exc:
        raise ValidationError({"phone": str(exc)}) from None
    pseudonym = pseudonym_for(parsed.e164)
    contact = contact_by_pseudonym(pseudonym)
    if contact is not None:
        changed = []
        if country and contact.country != country:
            contact.country = country
            changed.append("country")
        if timezone_name and contact.timezone != timezone_name:
            contact.timezone, contact.timezones = timezone_name, [timezone_name]
            changed += ["timezone", "timezones"]
        if attributes:
            merged = attributes_merge(contact.attributes, attributes)
            if len(merged) > MAX_ATTRIBUTES:
                raise ValidationError({"attributes": f"A contact has at most {MAX_ATTRIBUTES} attributes."})
            contact.attributes = merged
            changed.append("attributes")
        if changed and contact.erased_at is None:
            contact.save(update_fields=changed)
        return contact
    zones = [timezone_name] if timezone_name else list(parsed.timezones) or ["UTC"]
    contact, _ = Contact.objects.get_or_create(
        phone_pseudonym=pseudonym,
        defaults={
            "phone": parsed.e164,
            "country": country or parsed.country,
            "timezone": zones[0],
            "timezones": zones,
            "attributes": attributes or {},
        },
    )
    return contact


@transaction.atomic
def contact_attributes_update(*, contact: Contact, changes: dict) -> Contact:
    """Merge `changes` into the contact's attributes: each key set, a key given null removed."""
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    merged = attributes_merge(contact.attributes, changes)
    if len(merged) > MAX_ATTRIBUTES:
        raise ValidationError({"attributes": f"A contact has at most {MAX_ATTRIBUTES} attributes; "
                                             f"this change would leave {len(merged)}."})
    if merged != contact.attributes:
        contact.attributes = merged
        contact.save(update_fields=["attributes"])
    return contact


def _ensure_messageable(contact: Contact, field: str = "phone") -> None:
    if not contact_is_messageable(contact):
        raise ValidationError({field: "This number is on the suppression list and cannot be messaged."})


@transaction.atomic
def contact_suppress(*, contact: Contact, reason: str, source: str, actor: str = "system", evidence: dict | None = None) -> None:
    """Put the number on the suppression list (idempotent) and record it in the ledger."""
    _, created = Suppression.objects.get_or_create(phone_pseudonym=contact.phone_pseudonym, defaults={"reason": reason})
    if created:
        event_append(kind=EventKind.SUPPRESSED, contact=contact, source=source, actor=actor,
                     evidence={"reason": reason, **(evidence or {})})


# --- topics ---------------------------------------------------------------------------------


@transaction.atomic
def topic_create(*, slug: str, name: str, keywords: list[str], consent_text: str, confirmation_message: str,
                 help_message: str, consent_ttl_days: int | None, welcome_message: str = "",
                 actor: str = "system") -> Topic:
    topic = Topic(slug=slug, name=name, keywords=topic_keywords_normalise(keywords), consent_ttl_days=consent_ttl_days)
    topic.full_clean(exclude=["current_text"])
    topic_keywords_check(topic.keywords, exclude_topic=None)
    topic.save()
    topic.current_text = _text_version_create(topic=topic, consent_text=consent_text,
                                              confirmation_message=confirmation_message,
                                              help_message=help_message, welcome_message=welcome_message,
                                              actor=actor)
    topic.save(update_fields=["current_text"])
    return topic


@transaction.atomic
def topic_update(*, topic: Topic, actor: str = "system", **changes) -> Topic:
    """Change a topic; changing any text creates a new text version (old ones stay)."""
    topic = Topic.objects.select_for_update().get(pk=topic.pk)
    text_fields = {"consent_text", "confirmation_message", "help_message", "welcome_message"}
    current = topic.current_text
    new_texts = {f: changes.pop(f) for f in list(changes) if f in text_fields}
    if "keywords" in changes:
        changes["keywords"] = topic_keywords_normalise(changes["keywords"])
        topic_keywords_check(changes["keywords"], exclude_topic=topic)
    for field, value in changes.items():
        setattr(topic, field, value)
    topic.full_clean(exclude=["current_text"])
    if new_texts and any(getattr(current, f) != v for f, v in new_texts.items()):
        topic.current_text = _text_version_create(
            topic=topic,
            consent_text=new_texts.get("consent_text", current.consent_text),
            confirmation_message=new_texts.get("confirmation_message", current.confirmation_message),
            help_message=new_texts.get("help_message", current.help_message),
            welcome_message=new_texts.get("welcome_message", current.welcome_message),
            actor=actor,
        )
    topic.save()
    return topic


# Caps on a topic's keywords (API and admin): every inbound text is matched against all of them.
TOPIC_MAX_KEYWORDS = 20
TOPIC_KEYWORD_MAX_CHARS = 32


def topic_keywords_normalise(keywords) -> list[str]:
    """Upper-case, single-spaced, without repeats, in their first order."""
    words = (" ".join(str(keyword).split()).upper() for keyword in keywords or [])
    return list(dict.fromkeys(word for word in words if word))


def topic_keywords_check(keywords: list[str], exclude_topic: Topic | None) -> None:
    """Refuse too many or too long keywords, reserved ones (STOP, YES, HELP …) and those another topic uses."""
    if len(keywords) > TOPIC_MAX_KEYWORDS:
        raise ValidationError({"keywords": f"At most {TOPIC_MAX_KEYWORDS} keywords ({len(keywords)} given)."})
    too_long = [k for k in keywords if len(k) > TOPIC_KEYWORD_MAX_CHARS]
    if too_long:
        raise ValidationError({"keywords": f"A keyword has at most {TOPIC_KEYWORD_MAX_CHARS} characters: "
                                           f"{too_long[0][:TOPIC_KEYWORD_MAX_CHARS]}… is longer."})
    reserved = set()
    for words in settings.CONSENT_KEYWORDS.values():
        reserved.update(w.upper() for w in words)
    clash = [k for k in keywords if k in reserved]
    if clash:
        raise ValidationError({"keywords": f"{', '.join(clash)} is a reserved keyword (STOP, YES, HELP, …)."})
    others = Topic.objects.exclude(pk=exclude_topic.pk if exclude_topic else None)
    for other in others.only("slug", "keywords"):
        taken = set(keywords) & {k.upper() for k in other.keywords or []}
        if taken:
            raise ValidationError({"keywords": f"{', '.join(sorted(taken))} is already used by topic {other.slug}."})


def _text_version_create(*, topic: Topic, consent_text: str, confirmation_message: str, help_message: str,
                         welcome_message: str, actor: str) -> TopicText:
    last = topic.texts.order_by("-version").values_list("version", flat=True).first() or 0
    return TopicText.objects.create(
        topic=topic,
        version=last + 1,
        consent_text=consent_text,
        confirmation_message=confirmation_message,
        help_message=help_message,
        welcome_message=welcome_message,
        sha256=topic_texts_sha256(consent_text, confirmation_message, help_message, welcome_message),
        created_by=actor,
    )


# --- double opt-in --------------------------------------------------------------------------


@dataclass
class OptinResult:
    consent: Consent
    created: bool  # a prompt was queued; False when the consent is current or its prompt pending and fresh


def confirmation_token_issue(*, consent: Consent, now: datetime) -> tuple[str, int]:
    """A new confirmation token for `consent` and the id of its record (only its SHA-256 is stored).

    For the sender only, at the moment it hands the prompt over: nothing else ever sees the token.
    """
    token = signing.TimestampSigner(salt=TOKEN_SALT).sign(secrets.token_urlsafe(24))
    expires_at = now + timedelta(hours=settings.CONSENT_TOKEN_MAX_AGE_HOURS)
    if consent.confirm_by is not None:
        expires_at = min(expires_at, consent.confirm_by)
    record = ConfirmationToken.objects.create(
        token_sha256=hashlib.sha256(token.encode()).hexdigest(), consent=consent, expires_at=expires_at
    )
    return token, record.pk


class OptinLimited(Exception):
    """No prompt: a pumping limit refused it. `str()` is for the person; `retry_after` in seconds."""

    def __init__(self, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _prompt_is_fresh(consent: Consent | None, now: datetime) -> bool:
    """A prompt for this consent is pending and recent enough that another one would only be noise."""
    if consent is None or effective_status(consent, now) != ConsentStatus.PENDING or consent.requested_at is None:
        return False
    return consent.requested_at > now - timedelta(minutes=settings.OPTIN_REPEAT_PROMPT_AFTER_MINUTES)


@transaction.atomic
def optin_request(*, phone: str, topic: Topic, channel: str, source: str, evidence: dict | None = None,
                  actor: str = "system", now: datetime | None = None, occurred_at: datetime | None = None) -> OptinResult:
    """Make the consent pending and queue the confirmation prompt (double opt-in, step one).

    The pumping limits hold here, for every source: a number outside the allowed countries is
    refused (400 on `phone`), a repeat inside the repeat window changes nothing, and a prompt
    over a per-number or per-API-user limit raises OptinLimited.
    """
    now = now or timezone.now()
    contact = contact_get_or_create(phone=phone)
    _ensure_messageable(contact)
    if not limits.country_allowed(contact.country):
        raise ValidationError({"phone": "We do not send messages to numbers in this country."})
    text = topic.current_text
    consent = Consent.objects.select_for_update().filter(contact=contact, topic=topic, channel=channel).first()
    if consent is not None and consent_is_current(consent, now):
        return OptinResult(consent=consent, created=False)
    if _prompt_is_fresh(consent, now):
        return OptinResult(consent=consent, created=False)
    try:
        # Named by topic, channel and instant: the applier applies a batch that rolled back again with the
        # instants its messages arrived, and that same prompt is then counted once.
        limits.prompt_allowed(e164=contact.phone, actor=actor if actor.startswith("user:") else "",
                              now=now.timestamp(), once=f"{topic.pk}:{channel}:{now.isoformat()}")
    except limits.LimitExceeded as exc:
        raise OptinLimited(str(exc), retry_after=exc.retry_after) from None
    confirm_by = now + timedelta(hours=settings.CONSENT_CONFIRMATION_WINDOW_HOURS)
    if consent is None:
        consent = Consent(contact=contact, topic=topic, channel=channel)
    consent.status = ConsentStatus.PENDING
    consent.text = text
    consent.source = source
    consent.requested_at = now
    consent.confirm_by = confirm_by
    consent.confirmed_at = consent.expires_at = consent.revoked_at = None
    consent.current_event = None
    consent.save()
    # The stored prompt carries the link with its token redacted; the sender makes the token.
    body, template = prompt_for(contact=contact, topic=topic, channel=channel, now=now)
    message_queue(contact=contact, channel=channel, kind=Message.Kind.CONFIRMATION_PROMPT, topic=topic,
                  body=body, template=template)
    # Last, so that the chain-head lock is held for as short a time as possible.
    event_append(kind=EventKind.REQUESTED, contact=contact, topic=topic, channel=channel, source=source,
                 actor=actor, text=text, evidence=evidence, occurred_at=occurred_at or now)
    return OptinResult(consent=consent, created=True)


def _consents_locked(contact: Contact, channel: str, *, statuses: tuple[str, ...], topic: Topic | None = None,
                     confirm_by_from: datetime | None = None, prompted: bool = False) -> list[Consent]:
    """The contact's consents on `channel` in `statuses`, row-locked, each with its topic and text loaded.

    The hot path of every STOP and YES: one statement built by hand (see consent.rows).
    """
    found = rows.consents_locked(contact_id=contact.pk, channel=channel, statuses=statuses,
                                 topic_id=None if topic is None else topic.pk, confirm_by_from=confirm_by_from,
                                 prompted=prompted)
    consents = []
    for consent, consent_topic, text in found:
        consent.contact, consent.topic, consent.text = contact, consent_topic, text
        consents.append(consent)
    return consents


def optin_pending_lock(*, contact: Contact, channel: str, now: datetime) -> list[Consent]:
    """What a confirm keyword from the handset confirms, row-locked: the contact's pending consents on
    `channel` inside their confirmation window whose prompt was handed to the provider.

    For callers that must know what a confirmation will confirm before confirming it (in one transaction).
    """
    _require_transaction()
    return _consents_locked(contact, channel, statuses=(ConsentStatus.PENDING,), confirm_by_from=now, prompted=True)


def optin_confirm(*, consents: list[Consent], source: str, evidence: dict | None = None, actor: str = "system",
                  now: datetime) -> list[Consent]:
    """Make pending consents locked by `optin_pending_lock` (same transaction) active, and record it."""
    _require_transaction()
    # Events first: each consent then points at its own confirmation (the rows are locked already).
    for consent in consents:
        ttl = consent.topic.consent_ttl_days
        consent.status = ConsentStatus.ACTIVE
        consent.confirmed_at = now
        consent.expires_at = now + timedelta(days=ttl) if ttl else None
        consent.source = source
        consent.current_event = event_append(
            kind=EventKind.CONFIRMED, contact=consent.contact, topic=consent.topic, channel=consent.channel,
            source=source, actor=actor, text=consent.text, evidence=_with_expiry(evidence, consent.expires_at),
            occurred_at=now)
    # One UPDATE of all of them, each row's pointer in it (see consent.rows.update for its figure).
    rows.update(consents, ["status", "confirmed_at", "expires_at", "source", "updated_at"], each=["current_event"])
    return consents


def welcome_queue(*, contact: Contact, channel: str, consents: list[Consent], now: datetime) -> Message | None:
    """Queue the one welcome after a confirmation (brand, frequency, HELP, STOP; transactional, so never held
    by quiet hours). On WhatsApp outside the 24-hour window no free-form text may go: recorded as skipped."""
    if not consents or not contact_is_messageable(contact):
        return None
    topics = list(dict.fromkeys(c.topic for c in consents))
    message = outbound(contact=contact, channel=channel, kind=Message.Kind.CONFIRMED_REPLY, body=welcome_body(consents),
                       topic=topics[0] if len(topics) == 1 else None)
    if channel == Channel.WHATSAPP and not whatsapp_window_open(contact, now):
        message.status, message.status_at = Message.Status.SKIPPED, now
        message.error_message = "not sent: no free-form WhatsApp message outside the 24-hour window"
    return messages_store([message])[0]


def _with_expiry(evidence: dict | None, expires_at: datetime | None) -> dict:
    """The evidence plus the expiry the consent got, so that a replay of the ledger knows it."""
    return {**(evidence or {}), "consent_expires_at": format_instant(expires_at) if expires_at else "never"}


def _require_transaction() -> None:
    if not connection.in_atomic_block:
        raise RuntimeError("This service must run inside the caller's transaction.atomic().")


@transaction.atomic(savepoint=False)  # no caller recovers from its errors inside a larger transaction
def optin_confirm_by_reply(*, contact: Contact, channel: str, source: str, evidence: dict | None = None,
                           actor: str = "system", now: datetime | None = None) -> list[Consent]:
    """A confirm keyword from the handset: the pending consents on that channel whose prompts were sent become active."""
    now = now or timezone.now()
    return optin_confirm(consents=optin_pending_lock(contact=contact, channel=channel, now=now), source=source,
                         evidence=evidence, actor=actor, now=now)


class TokenError(ValidationError):
    """A confirmation token that cannot be used (invalid, expired, already used)."""


@transaction.atomic
def optin_confirm_by_token(*, token: str, source: str, evidence: dict | None = None, now: datetime | None = None) -> Consent:
    """POST of a signed, single-use, expiring token: confirms the one consent it was issued for."""
    now = now or timezone.now()
    if not isinstance(token, str) or not token or len(token) > 200:
        raise TokenError({"token": "This confirmation link is not valid."})
    try:
        signing.TimestampSigner(salt=TOKEN_SALT).unsign(
            token, max_age=timedelta(hours=settings.CONSENT_TOKEN_MAX_AGE_HOURS)
        )
    except signing.SignatureExpired:
        raise TokenError({"token": "This confirmation link has expired. Request a new one."}) from None
    except signing.BadSignature:
        raise TokenError({"token": "This confirmation link is not valid."}) from None
    record = (
        ConfirmationToken.objects.select_for_update(of=("self",))
        .select_related("consent")
        .filter(token_sha256=hashlib.sha256(token.encode()).hexdigest())
        .first()
    )
    if record is None:
        raise TokenError({"token": "This confirmation link is not valid."})
    if record.used_at is not None:
        raise TokenError({"token": "This confirmation link has already been used."})
    if record.expires_at <= now:
        raise TokenError({"token": "This confirmation link has expired. Request a new one."})
    consent = record.consent
    # Only this consent: the link proves the person saw this prompt, not the others on the channel.
    pending = _consents_locked(consent.contact, consent.channel, statuses=(ConsentStatus.PENDING,),
                               topic=consent.topic, confirm_by_from=now)
    if consent.pk not in {c.pk for c in pending}:
        raise TokenError({"token": "There is nothing left to confirm with this link (already confirmed, cancelled or expired)."})
    record.used_at = now
    record.save(update_fields=["used_at"])
    # The token is used once (its row is locked above), so a double click or a retried call gets no second one.
    welcome_queue(contact=consent.contact, channel=consent.channel, consents=pending, now=now)
    optin_confirm(consents=pending, source=source, evidence={**(evidence or {}), "method": "confirmation_link"}, now=now)
    consent.refresh_from_db()
    return consent


# --- revocation and restart -----------------------------------------------------------------


@transaction.atomic(savepoint=False)  # no caller recovers from its errors inside a larger transaction
def consent_revoke(*, contact: Contact, channel: str, source: str, topic: Topic | None = None, reason: str = "",
                   evidence: dict | None = None, actor: str = "system", now: datetime | None = None,
                   locked: list[Consent] | None = None) -> list[Consent]:
    """Revoke every pending or active consent of the contact on `channel` (or only `topic`).

    `locked`: those consents as `revocation_consents_lock` returned them earlier in this transaction.
    """
    now = now or timezone.now()
    consents = _consents_locked(contact, channel, statuses=OPEN_STATUSES, topic=topic) if locked is None else locked
    if not consents:
        return []
    updated_at = timezone.now()
    for consent in consents:
        consent.status = ConsentStatus.REVOKED
        consent.revoked_at = now
        consent.source = source
        consent.current_event = None
        consent.updated_at = updated_at
    # ORM: the hand-written UPDATEs saved 148 µs (consents) and 238 µs (tokens) CPU per STOP
    # (bench/consent_statements.py: 148 vs 295 µs, 88 vs 326 µs), 1.7 % and 2.7 % of the webhook.
    pks = [c.pk for c in consents]
    Consent.objects.filter(pk__in=pks).update(status=ConsentStatus.REVOKED, revoked_at=now, source=source,
                                              updated_at=updated_at, current_event=None)
    # Pending confirmation links die with the consent.
    ConfirmationToken.objects.filter(used_at__isnull=True, consent_id__in=pks).update(used_at=now)
    evidence = {**(evidence or {}), "reason": reason} if reason else evidence
    for consent in consents:
        event_append(kind=EventKind.REVOKED, contact=contact, topic=consent.topic, channel=channel, source=source,
                     actor=actor, text=consent.text, evidence=evidence, occurred_at=now)
    return consents


# --- revocation by any reasonable means (rule 11 of docs/design.md) ---------------------------


def revocation_channels(*, channel: str, topic: Topic | None) -> list[str]:
    """The channels a revocation covers: its own, or with CONSENT_REVOKE_SCOPE=all and no topic, every
    channel of the number (always in one order, so two revocations of one number lock alike)."""
    if topic is None and settings.CONSENT_REVOKE_SCOPE == "all":
        return list(Channel.values)
    return [channel]


@transaction.atomic(savepoint=False)  # no caller recovers from its errors inside a larger transaction
def revocation_apply(*, contact: Contact, channel: str, source: str, topic: Topic | None = None, reason: str = "",
                     evidence: dict | None = None, actor: str = "system", now: datetime | None = None,
                     given_before: datetime | None = None, confirm: bool = True,
                     locked: list[Consent] | None = None) -> list[Consent]:
    """Revoke as a bare STOP does (or one topic), in the configured scope, with the one confirmation.

    `given_before`: only consents requested or confirmed by then (a review decided later must not undo
    a newer decision of the person). `confirm=False` for a caller that queues the confirmation itself
    (a STOP reply stored with its inbound message). Nothing revoked, nothing to confirm. The
    consents are locked and the confirmation stored before the first ledger append: the ledger's
    head stays locked from the append to the commit, and nothing of ours follows it (inside the
    applier's batch the append is chained in at the batch's end, `ledger.appends_at_end`). `locked`: what
    `revocation_consents_lock` returned for this revocation (a caller that named its topics first).
    """
    now = now or timezone.now()
    channels = revocation_channels(channel=channel, topic=topic)
    if not confirm and given_before is None and len(channels) == 1:
        # The hot path of every STOP: consent_revoke locks, revokes and appends, one statement each.
        return consent_revoke(contact=contact, channel=channel, source=source, topic=topic, reason=reason,
                              evidence=evidence, actor=actor, now=now, locked=locked)
    if len(channels) > 1 and connection.features.has_select_for_update:
        # Every channel's consents locked, in one order, before the first append holds the head.
        list(Consent.objects.select_for_update().filter(contact=contact, channel__in=channels,
                                                        status__in=OPEN_STATUSES)
             .order_by("id").values_list("id", flat=True))
    targets: dict[str, list[Consent]] = {}
    for each in channels:
        locked = _consents_locked(contact, each, statuses=OPEN_STATUSES, topic=topic)
        if given_before is not None:
            locked = [c for c in locked if (c.requested_at or c.confirmed_at) is None
                      or (c.requested_at or c.confirmed_at) <= given_before]
        if locked:
            targets[each] = locked
    if confirm and targets:
        revocation_confirmation_queue(contact=contact, channel=channel, topic=topic,
                                      revoked=[c.topic for locked in targets.values() for c in locked], now=now)
    revoked: list[Consent] = []
    for each, locked in targets.items():
        if given_before is None:  # every open consent of the channel (or the topic): the rows locked above
            revoked += consent_revoke(contact=contact, channel=each, source=source, topic=topic, reason=reason,
                                      evidence=evidence, actor=actor, now=now)
            continue
        for consent in locked:
            revoked += consent_revoke(contact=contact, channel=each, source=source, topic=consent.topic,
                                      reason=reason, evidence=evidence, actor=actor, now=now)
    return revoked


def revocation_consents_lock(*, contact: Contact, channel: str, topic: Topic | None = None) -> list[Consent] | None:
    """What a revocation in this transaction will revoke, row-locked, when it covers its own channel only
    (None otherwise: see `revocation_topics_open`). Pass it to `revocation_apply` as `locked`."""
    _require_transaction()
    if len(revocation_channels(channel=channel, topic=topic)) > 1:
        return None
    return _consents_locked(contact, channel, statuses=OPEN_STATUSES, topic=topic)


def revocation_topics_open(*, contact: Contact, channel: str, topic: Topic | None = None) -> list[Topic]:
    """The topics a revocation would revoke now (for a confirmation written before the revocation)."""
    channels = revocation_channels(channel=channel, topic=topic)
    consents = Consent.objects.filter(contact=contact, channel__in=channels, status__in=OPEN_STATUSES)
    if topic is not None:
        consents = consents.filter(topic=topic)
    return [c.topic for c in consents.select_related("topic").order_by("id")]


def revocation_confirmation_queue(*, contact: Contact, channel: str, topic: Topic | None, revoked: list[Topic],
                                  now: datetime) -> Message | None:
    """Queue the one confirmation of a revocation (sent after commit, within 5 minutes or not at all).

    On WhatsApp outside the 24-hour window no free-form text may go: the confirmation is recorded as
    skipped with that reason instead.
    """
    if not contact_is_messageable(contact):
        return None
    body = revocation_confirmation_body(topic=topic, revoked=revoked)
    distinct = list(dict.fromkeys(revoked))
    message = outbound(contact=contact, channel=channel, kind=Message.Kind.STOP_REPLY, body=body,
                       topic=topic or (distinct[0] if len(distinct) == 1 else None))
    if channel == Channel.WHATSAPP and not whatsapp_window_open(contact, now):
        message.status, message.status_at = Message.Status.SKIPPED, now
        message.error_message = "not sent: no free-form WhatsApp message outside the 24-hour window"
    return messages_store([message])[0]


def revocation_review_open(*, contact: Contact, channel: str, message: Message, rule: str,
                           received_at: datetime) -> RevocationReview:
    """A text that may be a revocation enters the review queue; it changes no consent before its deadline."""
    return RevocationReview.objects.create(
        contact=contact, channel=channel, message=message, rule=rule[:64], received_at=received_at,
        deadline=review_deadline(received_at, contact.timezone),
        due_soon_at=review_due_soon_at(received_at, contact.timezone),
    )


class ReviewAlreadyResolved(Exception):
    """The review was resolved already (by a person, or at its deadline)."""


def _review_evidence(review: RevocationReview, decision: str, note: str) -> dict:
    return {
        "revocation_review_id": review.pk,
        "inbound_message_id": review.message_id,
        "provider_message_id": review.message.provider_message_id,
        "inbound_text": (review.message.body or "")[:320],
        "rule": review.rule,
        "received_at": format_instant(review.received_at),
        "review_deadline": format_instant(review.deadline),
        "decision": decision,
        **({"note": note[:500]} if note else {}),
    }


@transaction.atomic
def revocation_review_resolve(*, review: RevocationReview, decision: str, note: str = "", actor: str,
                              source: str = Source.API, now: datetime | None = None) -> RevocationReview:
    """A person's decision: `revoke` (ledger events, one confirmation) or `keep` (recorded here), once."""
    now = now or timezone.now()
    if decision not in (RevocationReview.Decision.REVOKE, RevocationReview.Decision.KEEP):
        raise ValidationError({"decision": "Choose revoke or keep."})
    review = RevocationReview.objects.select_for_update(of=("self",)).select_related("contact", "message").get(
        pk=review.pk)
    if review.resolved_at is not None:
        raise ReviewAlreadyResolved(f"This review was resolved already ({review.decision}).")
    revoked = []
    if decision == RevocationReview.Decision.REVOKE:
        revoked = revocation_apply(contact=review.contact, channel=review.channel, source=source,
                                   reason="revocation review decision",
                                   evidence=_review_evidence(review, decision, note), actor=actor, now=now,
                                   given_before=review.received_at)
    review.decision, review.resolved_at, review.resolved_by = decision, now, actor
    review.note, review.revoked = note, len(revoked)
    review.save(update_fields=["decision", "resolved_at", "resolved_by", "note", "revoked"])
    return review


def revocation_reviews_apply_due(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Apply, as revocations, the reviews still unresolved at their deadline (source system).

    The law presumes other wording is a revocation (FCC 24-24) and gives 10 business days: nobody
    decided, so the presumption stands. One transaction per review: each appends to the ledger, whose
    head stays locked until commit, so a batch would hold it while waiting for the next contact's
    consents (which that contact's STOP may hold while it waits for the head). A review being
    resolved by a person at that moment is skipped (row lock, skip locked) and resolved by them.
    """
    now = now or timezone.now()
    due = list(RevocationReview.objects.filter(resolved_at__isnull=True, deadline__lte=now)
               .order_by("deadline", "id").values_list("id", flat=True)[:limit])
    applied = 0
    for review_id in due:
        with transaction.atomic():
            review = (RevocationReview.objects.select_for_update(skip_locked=True, of=("self",))
                      .select_related("contact", "message").filter(pk=review_id, resolved_at__isnull=True).first())
            if review is None:
                continue
            revoked = revocation_apply(
                contact=review.contact, channel=review.channel, source=Source.SYSTEM, reason="review deadline",
                evidence=_review_evidence(review, RevocationReview.Decision.DEADLINE, ""), actor="system",
                now=now, given_before=review.received_at)
            review.decision, review.resolved_at, review.resolved_by = RevocationReview.Decision.DEADLINE, now, "system"
            review.revoked = len(revoked)
            review.save(update_fields=["decision", "resolved_at", "resolved_by", "revoked"])
            applied += 1
    return applied


def provider_refusal_apply(*, contact: Contact, channel: str, outcome: str, evidence: dict,
                           now: datetime | None = None) -> None:
    """A provider refused a message for a reason about the person (rule 10), for any outbound message.

    `opted_out` (Twilio 21610, WhatsApp 131050): every consent of the contact on the channel is
    revoked. `invalid` (not a mobile, not a WhatsApp user): the number is suppressed.
    """
    if outcome == "opted_out":
        consent_revoke(contact=contact, channel=channel, source=Source.PROVIDER, reason="provider reports opt-out",
                       evidence=evidence, now=now)
    elif outcome == "invalid":
        contact_suppress(contact=contact, reason="invalid_number", source=Source.PROVIDER, evidence=evidence)


def consents_lock(*, contacts: list[Contact], channel: str) -> None:
    """Row-lock the open consents of several contacts on `channel` at once, in one order (by id).

    For a transaction that then revokes for one contact after another: each revocation appends to
    the ledger, whose head stays locked until commit. Were the next contact's consents locked only
    then, the transaction could wait, holding the head, for that contact's STOP, which holds those
    consents and waits for the head: a deadlock, and one of the two rolled back.
    """
    _require_transaction()
    pks = sorted({contact.pk for contact in contacts})
    if pks and connection.features.has_select_for_update:
        list(Consent.objects.select_for_update().filter(contact_id__in=pks, channel=channel, status__in=OPEN_STATUSES)
             .order_by("id").values_list("id", flat=True))


def topics_last_revoked(*, contact: Contact, channel: str) -> list[Topic]:
    """The topics revoked by the contact's most recent revocation on `channel`."""
    revoked = Consent.objects.filter(contact=contact, channel=channel, status=ConsentStatus.REVOKED)
    last = revoked.order_by("-revoked_at").values_list("revoked_at", flat=True).first()
    if last is None:
        return []
    return [c.topic for c in revoked.filter(revoked_at=last).select_related("topic__current_text").order_by("id")]


# --- import and expiry ----------------------------------------------------------------------


@dataclass
class ImportRecord:
    phone: str
    topic: Topic
    channel: str
    confirmed_at: datetime
    evidence: dict
    source_detail: str = ""


@transaction.atomic
def consents_import(*, records: list[ImportRecord], actor: str, now: datetime | None = None) -> dict:
    """Import legacy proofs of consent, all or nothing. Never overrides a newer local decision."""
    now = now or timezone.now()
    batch = str(uuid.uuid4())
    summary = {"batch": batch, "imported": 0, "active": 0, "expired": 0, "skipped": []}
    errors = {}
    for index, record in enumerate(records):
        if not record.evidence:
            errors[f"records[{index}].evidence"] = "Each imported consent needs its evidence."
        if record.confirmed_at > now:
            errors[f"records[{index}].confirmed_at"] = "A consent cannot be confirmed in the future."
    if errors:
        raise ValidationError(errors)
    for index, record in enumerate(records):
        contact = contact_get_or_create(phone=record.phone)
        if not contact_is_messageable(contact):
            summary["skipped"].append({"index": index, "reason": "suppressed"})
            continue
        consent = Consent.objects.select_for_update().filter(contact=contact, topic=record.topic, channel=record.channel).first()
        if consent is not None:
            latest = max(filter(None, [consent.requested_at, consent.confirmed_at, consent.revoked_at]), default=None)
            if consent.status == ConsentStatus.REVOKED or (latest and latest >= record.confirmed_at) or consent.status == ConsentStatus.ACTIVE:
                summary["skipped"].append({"index": index, "reason": f"a newer local consent exists ({consent.status})"})
                continue
        ttl = record.topic.consent_ttl_days
        expires_at = record.confirmed_at + timedelta(days=ttl) if ttl else None
        expired = expires_at is not None and expires_at <= now
        if consent is None:
            consent = Consent(contact=contact, topic=record.topic, channel=record.channel)
        consent.status = ConsentStatus.EXPIRED if expired else ConsentStatus.ACTIVE
        consent.text = record.topic.current_text
        consent.source = Source.IMPORT
        consent.requested_at = None
        consent.confirm_by = None
        consent.confirmed_at = record.confirmed_at
        consent.expires_at = expires_at
        consent.revoked_at = None
        evidence = _with_expiry({**record.evidence, "import_batch": batch, "source_detail": record.source_detail},
                                expires_at)
        imported = event_append(kind=EventKind.IMPORTED, contact=contact, topic=record.topic, channel=record.channel,
                                source=Source.IMPORT, actor=actor, text=consent.text, evidence=evidence,
                                occurred_at=record.confirmed_at)
        if expired:
            event_append(kind=EventKind.EXPIRED, contact=contact, topic=record.topic, channel=record.channel,
                         source=Source.SYSTEM, actor="system", text=consent.text,
                         evidence={"import_batch": batch, "expired_at": expires_at}, occurred_at=now)
            summary["expired"] += 1
        else:
            summary["active"] += 1
        consent.current_event = None if expired else imported
        consent.save()
        summary["imported"] += 1
    return summary


def consents_expire_due(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Record `expired` for active consents past their lifetime and pending ones past their window.

    Correctness never waits for this: selectors already treat them as not current.
    """
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            due = list(
                Consent.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("contact", "topic", "text")
                .expired(now)
                .order_by("id")[:batch_size]
            )
            if not due:
                return total
            for consent in due:
                was = consent.status
                consent.status = ConsentStatus.EXPIRED
                consent.current_event = None
                consent.save(update_fields=["status", "current_event", "updated_at"])
                event_append(kind=EventKind.EXPIRED, contact=consent.contact, topic=consent.topic,
                             channel=consent.channel, source=Source.SYSTEM, actor="system", text=consent.text,
                             evidence={"was": was, "expired_at": consent.expires_at or consent.confirm_by},
                             occurred_at=now)
            total += len(due)


"""Customers' side: apply what providers tell us (inbound texts, delivery statuses, preferences).

Each function runs in one transaction. An inbound message is first stored with its provider
message id; the unique (channel, provider_message_id) constraint makes a redelivered webhook
a no-op, also when both copies arrive at once on two processes (the second insert waits for
the first transaction and then fails). Consent changes go through consent.services, which
append their ledger events in the same transaction. Replies are queued as outbound Message
rows and sent by Celery after commit: never a promotional message, at most one reply per
inbound message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging import lifecycle

from . import keywords as kw
from . import revocation, selectors, services
from .care.services import conversation_message_receive
from .models import Channel, Consent, Contact, Message, Source, Topic
from .outbox import messages_store, outbound, preference_link, revocation_confirmation_body, welcome_body
from .phones import InvalidPhoneNumber, parse_phone
from .webhooks import references
from .webhooks.parsers import InboundMessage, PreferenceUpdate, StatusUpdate
from .webhooks.registry import OutboundRecord, outbound_record_for, status_apply

logger = logging.getLogger(__name__)

WHATSAPP_WINDOW = timedelta(hours=24)
MAX_TOPICS_LISTED = 5

# The confirmations of STOP and of revocations in other words, and the welcome after a YES, are
# consent.outbox's (naming the brand).
DEFAULT_REPLIES = {
    "nothing_pending": "There is nothing waiting for your confirmation on this number.{join_hint}",
    "already_active": "You are already subscribed to {topics}. Reply STOP to unsubscribe.",
    "nothing_to_restart": "You have no subscription to restart on this number.{join_hint}",
    "help_generic": "Reply STOP to unsubscribe from promotional messages, START to subscribe again.{join_hint}",
    "preferences": "Your subscriptions: {link}",
}


@dataclass
class InboundResult:
    """What happened to one inbound message."""

    outcome: str  # "applied" | "duplicate" | "ignored"
    intent: kw.Intent = kw.NO_INTENT
    message: Message | None = None
    consents: list[Consent] = field(default_factory=list)
    replies: list[Message] = field(default_factory=list)
    reason: str = ""
    revocation: revocation.Classification = revocation.Classification(revocation.NONE)  # texts that are no keyword


def reply_text(name: str, **values) -> str:
    """A reply text: settings.CONSENT_REPLY_TEXTS[name] when set, else the default, formatted."""
    template = (getattr(settings, "CONSENT_REPLY_TEXTS", None) or {}).get(name) or DEFAULT_REPLIES[name]
    return template.format(**values)


def _source_for(channel: str) -> str:
    return Source.WHATSAPP_KEYWORD if channel == Channel.WHATSAPP else Source.SMS_KEYWORD


def _text_source_for(channel: str) -> str:
    return Source.WHATSAPP_TEXT if channel == Channel.WHATSAPP else Source.SMS_TEXT


def _classify(message: InboundMessage, intent: kw.Intent) -> revocation.Classification:
    """Rule 11: whether a text that is no keyword asks to stop in other words (typed texts only)."""
    if intent.is_keyword or message.kind != "text" or not message.text:
        return revocation.Classification(revocation.NONE)
    return revocation.classify(message.text)


def _names(topics) -> str:
    names = [t.name for t in topics]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _join_hint() -> str:
    keywords = []
    for topic in Topic.objects.order_by("slug")[:MAX_TOPICS_LISTED]:
        if topic.keywords:
            keywords.append(f"JOIN {topic.keywords[0]}")
    return f" Text {' or '.join(keywords)} to subscribe." if keywords else ""


def _intent_of(message: InboundMessage) -> tuple[kw.Intent, dict[str, Topic]]:
    """The first keyword among a button's payload and label (or the text); Twilio's own opt-out as a fallback.

    Topics are only loaded when the text is not a bare system keyword: STOP and YES, the
    bulk of the traffic, need no topic lookup (a system keyword wins over a topic keyword).
    """
    topics: dict[str, Topic] = {}
    for text in message.keyword_texts:
        intent = kw.parse_inbound(text)
        if intent.is_keyword:
            return intent, topics
    if message.keyword_texts:
        topics = selectors.topics_by_keyword()
        for text in message.keyword_texts:
            intent = kw.parse_inbound(text, topic_keywords=topics.keys())
            if intent.is_keyword:
                return intent, topics
    if message.provider_opt_out == "STOP":
        return kw.Intent(kw.STOP), topics
    return kw.NO_INTENT, topics


def inbound_message_receive(*, message: InboundMessage, provider: str, now: datetime | None = None,
                            savepoint: bool = True) -> InboundResult:
    """Store an inbound message once and apply its keyword, if it is one.

    `savepoint=False` inside a caller's transaction that rolls back as a whole on any error (the
    applier's batch): no savepoint of its own, and a redelivery's IntegrityError propagates.
    """
    if not savepoint:
        with transaction.atomic(savepoint=False):
            return _receive(message=message, provider=provider, now=now or timezone.now())
    try:
        with transaction.atomic():
            return _receive(message=message, provider=provider, now=now or timezone.now())
    except IntegrityError:
        # The insert of the message is what the unique (channel, provider_message_id) index
        # refuses for a redelivery; when both copies race, the second waits for the first
        # transaction and fails here. Anything else is a real error.
        if Message.objects.filter(channel=message.channel, provider_message_id=message.provider_message_id).exists():
            return InboundResult("duplicate", reason="provider message id already received")
        raise


def _receive(*, message: InboundMessage, provider: str, now: datetime) -> InboundResult:
    try:
        contact = services.contact_get_or_create(phone=message.sender)
    except ValidationError:
        logger.info("inbound %s %s ignored: sender is not a phone number", message.channel, message.provider_message_id)
        return InboundResult("ignored", reason="sender is not a phone number")
    # Keywords are stored apart from customer care, so the care queue holds only what needs a person.
    intent, topics = _intent_of(message)
    inbound = Message(
        contact=contact,
        channel=message.channel,
        direction=Message.Direction.INBOUND,
        kind=Message.Kind.KEYWORD if intent.is_keyword else Message.Kind.INBOUND,
        body=message.text or message.payload,
        status=Message.Status.RECEIVED,
        provider_message_id=message.provider_message_id,
        status_at=message.received_at or now,
    )
    classified = _classify(message, intent)
    text_revocation = classified.kind == revocation.REVOCATION
    result = InboundResult("applied", intent=intent, message=inbound, revocation=classified)
    topic = topics.get(intent.topic_keyword.upper()) if intent.topic_keyword else None
    channel = message.channel
    # Twilio's Advanced Opt-Out already answered STOP and HELP itself: do not answer twice.
    provider_answered = message.provider_opt_out in {"STOP", "HELP"}
    may_message = (intent.is_keyword or text_revocation) and selectors.contact_is_messageable(contact)
    revoking = intent.kind == kw.STOP or text_revocation
    confirm = revoking and not provider_answered
    if message.channel == Channel.WHATSAPP:
        # The person's own message opens the 24-hour customer-care window (free-form replies). The contact's
        # row first, then its consents, as an erasure locks them: two writers of one contact never cross.
        until = (message.received_at or now) + WHATSAPP_WINDOW
        Contact.objects.filter(pk=contact.pk).exclude(whatsapp_window_until__gte=until).update(whatsapp_window_until=until)
        contact.refresh_from_db(fields=["whatsapp_window_until"])
    # The confirmation names the brand; without CONSENT_BRAND_NAME a bare stop names the topics it is
    # about to revoke (one locking read, which the revocation then uses).
    confirmation, locked = None, None
    if confirm:
        confirmation = revocation_confirmation_body(topic=topic)
        if confirmation is None:
            # One statement locks what will be revoked and names it (two channels or more: a read first).
            locked = services.revocation_consents_lock(contact=contact, channel=channel, topic=topic)
            confirmation = revocation_confirmation_body(
                revoked=[c.topic for c in locked] if locked is not None
                else services.revocation_topics_open(contact=contact, channel=channel))

    def reply(kind, body, reply_topic=None, *, with_inbound=False):
        """Queue a reply; with_inbound stores it in one statement with the inbound message."""
        if may_message and body:
            out = outbound(contact=contact, channel=channel, kind=kind, body=body, topic=reply_topic)
            result.replies.append(messages_store([inbound, out] if with_inbound else [out])[-1])
            return result.replies[-1]
        if with_inbound:
            messages_store([inbound])
        return None

    # The inbound message comes before any consent change: a redelivery (the unique provider message id)
    # aborts the transaction before one (in the applier's batch, the whole batch, which is then applied
    # row by row). The replies to STOP and YES, the bulk of the traffic, are known before the consent
    # change and are stored with it; anything else follows it.
    pending = None
    if confirmation:
        reply(Message.Kind.STOP_REPLY, confirmation, topic, with_inbound=True)
    elif intent.kind == kw.CONFIRM:
        # Lock what will be confirmed first, so that the reply names exactly that. (For a redelivery
        # that waits on the first copy's locks, nothing is pending any more, and its insert then fails.)
        pending = services.optin_pending_lock(contact=contact, channel=channel, now=now)
        reply(*_confirm_reply(pending), with_inbound=True)
    else:
        messages_store([inbound])

    if inbound.kind == Message.Kind.INBOUND:
        conversation_message_receive(message=inbound, now=now)  # rule 18: care opens or continues a conversation

    if classified.kind == revocation.MAYBE:
        # Rule 11: may be a revocation; a person decides before the deadline, else it is applied then.
        services.revocation_review_open(contact=contact, channel=channel, message=inbound, rule=classified.rule_name,
                                        received_at=message.received_at or now)
    if not revoking and not intent.is_keyword:
        return result  # customer care: stored, no consent change, no automatic reply

    source = _text_source_for(channel) if text_revocation else _source_for(channel)
    evidence = {
        "inbound_message_id": inbound.pk,
        "provider_message_id": message.provider_message_id,
        "inbound_text": (message.payload or message.text)[:320] if message.kind != "text" else message.text[:320],
        "provider": provider,
    }
    if text_revocation:
        evidence["rule"] = classified.rule_name

    if revoking:
        result.consents = services.revocation_apply(
            contact=contact, channel=channel, source=source, topic=topic,
            reason="revocation in other words" if text_revocation else "keyword", evidence=evidence, now=now,
            confirm=False, locked=locked)
    elif intent.kind in (kw.START, kw.JOIN):
        targets = [topic] if topic else services.topics_last_revoked(contact=contact, channel=channel)
        if not targets:
            reply(Message.Kind.REPLY, reply_text("nothing_to_restart", join_hint=_join_hint()))
        current = set(Consent.objects.filter(contact=contact, channel=channel, topic__in=targets).current(now)
                      .values_list("topic_id", flat=True))
        already = [t for t in targets if t.pk in current]
        if already:
            reply(Message.Kind.REPLY, reply_text("already_active", topics=_names(already)))
        for target in targets:
            if target.pk in current:
                continue
            try:
                optin = services.optin_request(phone=contact.phone, topic=target, channel=channel, source=source,
                                               evidence=evidence, now=now)
            except (ValidationError, services.OptinLimited) as exc:  # suppressed, erased or pumped: no prompt, no reply
                logger.info("inbound %s: no opt-in for %s: %s", inbound.pk, target.slug, exc)
                continue
            result.consents.append(optin.consent)
    elif intent.kind == kw.CONFIRM:
        result.consents = services.optin_confirm(consents=pending, source=source, evidence=evidence, now=now)
    elif intent.kind == kw.HELP and not provider_answered:
        help_topics = [topic] if topic else _help_topics(contact, channel)
        texts = [t.current_text.help_message.strip() for t in help_topics if t.current_text_id]
        body = "\n".join(dict.fromkeys(t for t in texts if t)) or reply_text("help_generic", join_hint=_join_hint())
        # Every HELP reply links the preference centre (rule 17) for this number and channel.
        # The stored body shows the link redacted; the sender signs it for this number and channel.
        body += "\n" + reply_text("preferences", link=preference_link())
        reply(Message.Kind.HELP_REPLY, body, help_topics[0] if len(help_topics) == 1 else None)
    return result


def _confirm_reply(consents: list[Consent]) -> tuple[str, str, Topic | None]:
    """The welcome naming brand, frequency, HELP and STOP when something was confirmed, else "nothing pending"."""
    if consents:
        return (Message.Kind.CONFIRMED_REPLY, welcome_body(consents),
                consents[0].topic if len(consents) == 1 else None)
    return Message.Kind.NOTHING_PENDING_REPLY, reply_text("nothing_pending", join_hint=_join_hint()), None


def _help_topics(contact: Contact, channel: str) -> list[Topic]:
    """The topics the contact has (or asked for) on this channel; every topic when none."""
    mine = [
        c.topic
        for c in Consent.objects.filter(contact=contact, channel=channel, status__in=services.OPEN_STATUSES)
        .select_related("topic__current_text")
        .order_by("topic__slug")
    ]
    if mine:
        return mine
    return list(Topic.objects.select_related("current_text").order_by("slug")[:MAX_TOPICS_LISTED])


# --- delivery statuses and provider opt-outs ------------------------------------------------


def _contact_by_number(update: StatusUpdate) -> Contact | None:
    if not update.recipient:
        return None
    try:
        e164 = parse_phone(update.recipient).e164
    except InvalidPhoneNumber:
        return None
    return selectors.contact_get_by_phone(e164)


def _message_for(update: StatusUpdate) -> Message | None:
    """Our transactional message the update is about: by the provider's id, else by our reference."""
    messages = Message.objects.select_related("contact").filter(channel=update.channel)
    return references.record_for(
        update, kind=references.MESSAGE,
        by_id=messages.filter(provider_message_id=update.provider_message_id),
        by_reference=messages.filter(direction=Message.Direction.OUTBOUND),
        unclaimed=Message.objects.filter(lifecycle.UNANSWERED, status__in=lifecycle.AWAITING_OUTCOME),
    )


@transaction.atomic
def provider_status_apply(*, update: StatusUpdate, provider: str, now: datetime | None = None) -> dict:
    """Apply a delivery status: move our message forward, honour opt-out and invalid-number errors.

    The message is found by the provider's message id, or by our own reference on the callback
    when the callback came before the provider id was recorded; an opt-out then acts on the
    message's own contact. Idempotent: a status only moves a message forward, and revoking or
    suppressing twice changes nothing the second time. The registered status handlers (broadcast
    deliveries, see webhooks/registry.py) run in this transaction and must be idempotent too.
    """
    now = now or timezone.now()
    summary = {"message_updated": False, "revoked": 0, "suppressed": False}
    message = _message_for(update)
    record: OutboundRecord | None = outbound_record_for(update) if message is None else None
    if message is not None:
        summary["message_updated"] = lifecycle.callback_status_apply(
            Message.objects.filter(pk=message.pk), status=update.status, occurred_at=update.occurred_at or now,
            error_code=update.error_code, error_message=update.error_message)
    if message is not None:
        contact, sent_at = message.contact, message.sent_at or message.created_at
    elif record is not None:
        contact, sent_at = record.contact, record.sent_at or update.occurred_at or now
    else:
        contact, sent_at = _contact_by_number(update), update.occurred_at or now
    if contact is not None and update.error_code:
        evidence = {
            "provider_error_code": update.error_code,
            "provider_message_id": update.provider_message_id,
            "provider": provider,
            "message_id": message.pk if message else None,
            **(record.evidence if record else {}),
        }
        if update.is_opt_out:
            summary["revoked"] = len(_revoke_consents_given_before(contact, update.channel, sent_at, evidence, now))
        elif update.is_invalid_number:
            services.contact_suppress(contact=contact, reason="invalid_number", source=Source.PROVIDER,
                                      evidence=evidence)
            summary["suppressed"] = True
    status_apply(provider=provider, update=update, contact=contact, message=message)
    return summary


def _revoke_consents_given_before(contact: Contact, channel: str, before: datetime, evidence: dict,
                                  now: datetime) -> list[Consent]:
    """Revoke the open consents on `channel` that existed when the refused message was sent.

    A consent requested after that moment is a newer decision of the person; a late or
    redelivered callback about an older message must not undo it.
    """
    revoked = []
    open_consents = Consent.objects.filter(contact=contact, channel=channel, status__in=services.OPEN_STATUSES)
    # All of them locked at once, in id order, before the first append takes the ledger's head: a writer
    # that holds some of them (the inbound applier's batch) and waits for the head never waits on us.
    for consent in open_consents.select_for_update(of=("self",)).select_related("topic").order_by("id"):
        given_at = consent.requested_at or consent.confirmed_at  # a new request resets requested_at
        if given_at is not None and given_at > before:
            continue
        revoked += services.consent_revoke(contact=contact, channel=channel, topic=consent.topic,
                                           source=Source.PROVIDER, reason="provider reports opt-out",
                                           evidence=evidence, now=now)
    return revoked


@transaction.atomic
def whatsapp_preference_apply(*, preference: PreferenceUpdate, now: datetime | None = None) -> list[Consent]:
    """A WhatsApp user stopped marketing messages: revoke every WhatsApp consent (source provider).

    "resume" changes nothing: consent needs a new double opt-in, which the person can start by
    texting START or JOIN <KEYWORD>.
    """
    now = now or timezone.now()
    if not preference.is_stop:
        return []
    try:
        contact = selectors.contact_get_by_phone(parse_phone(preference.sender).e164)
    except InvalidPhoneNumber:
        return []
    if contact is None:
        return []
    evidence = {"whatsapp_user_preference": preference.value, "detail": preference.detail,
                "provider": "whatsapp_cloud", "preference_at": preference.occurred_at}
    before = preference.occurred_at or now
    return _revoke_consents_given_before(contact, Channel.WHATSAPP, before, evidence, now)


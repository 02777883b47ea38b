"""Writes for customer care: a care message opens a conversation; agents reply, assign, close and
record revocations.

A reply is a transactional message through the one outbound lifecycle (`consent.outbox.message_queue`,
kind `reply`, sent by Celery after commit), stored with its author in the same transaction. Each staff
change here records its staff action (rule 16) itself, in its transaction, so the API and the inbox
page cannot differ: only the service knows, under its row lock, whether anything changed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from consent import selectors as consent_selectors
from consent import services as consent_services
from consent.audit.actions import Staff, Via, consent_statuses, contact_object, revocation_snapshots
from consent.models import Channel, Conversation, ConversationReply, Message, RevocationVia, Source
from consent.outbox import message_queue, whatsapp_window_open

from . import rules
from . import selectors as care_selectors


class ReplyRefused(Exception):
    """A reply that may not go out now (409), with the rule's reason."""

    def __init__(self, refusal: rules.Refusal):
        super().__init__(refusal.detail)
        self.refusal = refusal


class IdempotencyConflict(Exception):
    """An Idempotency-Key already used for a different reply."""


@dataclass
class ReplyResult:
    reply: ConversationReply
    created: bool


def conversation_message_receive(*, message: Message, now: datetime | None = None) -> Conversation:
    """A person's care message (kind `inbound`) opens their conversation on its channel, or continues it,
    or reopens it when closed. Runs inside the inbound message's transaction."""
    at = message.status_at or now or timezone.now()
    conversation = (Conversation.objects.select_for_update()
                    .filter(contact_id=message.contact_id, channel=message.channel).first())
    if conversation is None:
        try:
            with transaction.atomic():  # a savepoint: two first messages at once meet on the unique key
                return Conversation.objects.create(contact_id=message.contact_id, channel=message.channel,
                                                   opened_at=at, last_message_at=at, waiting_since=at)
        except IntegrityError:
            conversation = Conversation.objects.select_for_update().get(contact_id=message.contact_id,
                                                                        channel=message.channel)
    if conversation.status == Conversation.Status.CLOSED:
        conversation.status = Conversation.Status.OPEN
        conversation.opened_at = at
        conversation.waiting_since = at  # a reopened conversation starts a new wait
        conversation.first_response_at = None
        conversation.closed_at = None
        conversation.closed_by = ""
    conversation.last_message_at = max(conversation.last_message_at, at)
    if conversation.waiting_since is None:
        conversation.waiting_since = at
    conversation.save()
    return conversation


def care_template() -> dict:
    return {"name": settings.WHATSAPP_CARE_TEMPLATE, "language": {"code": settings.WHATSAPP_CARE_TEMPLATE_LANGUAGE}}


def conversation_object(conversation: Conversation) -> dict:
    """The object fields naming a conversation in the staff action log (its contact by id, never by number)."""
    return {"object_type": "conversation", "object_id": str(conversation.pk),
            "object_repr": f"conversation {conversation.pk} with contact {conversation.contact_id} "
                           f"on {conversation.channel}"}


@transaction.atomic
def conversation_reply(*, conversation_id: int, by: Staff, body: str = "", template: bool = False,
                       idempotency_key: str = "", now: datetime | None = None) -> ReplyResult:
    """Queue an agent's reply, exactly once per `idempotency_key`, or refuse it with the rule's reason.

    Raises Conversation.DoesNotExist, ReplyRefused, IdempotencyConflict.
    """
    now = now or timezone.now()
    conversation = Conversation.objects.select_for_update().select_related("contact").get(pk=conversation_id)
    if idempotency_key:
        existing = (ConversationReply.objects.select_related("message")
                    .filter(conversation=conversation, idempotency_key=idempotency_key).first())
        if existing is not None:
            same = bool(existing.message.template) == template and (template or existing.message.body == body)
            if not same:
                raise IdempotencyConflict("This Idempotency-Key was used for a different reply.")
            return ReplyResult(existing, created=False)
    contact = conversation.contact
    refusal = rules.reply_refusal(
        channel=conversation.channel, template=template,
        window_open=whatsapp_window_open(contact, now),
        messageable=consent_selectors.contact_is_messageable(contact),
        stopped=conversation.channel == Channel.SMS and care_selectors.sms_stopped(contact),
        template_configured=bool(settings.WHATSAPP_CARE_TEMPLATE),
    )
    if refusal is not None:
        raise ReplyRefused(refusal)
    if template:
        message = message_queue(contact=contact, channel=conversation.channel, kind=Message.Kind.REPLY,
                                body=f"[template {settings.WHATSAPP_CARE_TEMPLATE}]", template=care_template())
    else:
        message = message_queue(contact=contact, channel=conversation.channel, kind=Message.Kind.REPLY, body=body)
    before = {"waiting_since": conversation.waiting_since, "first_response_at": conversation.first_response_at}
    waited = None
    if conversation.first_response_at is None:  # the first reply since the conversation (re)opened ends its wait
        conversation.first_response_at = now
        waited = conversation.first_response_seconds
    reply = ConversationReply.objects.create(conversation=conversation, message=message, author=by.actor,
                                             idempotency_key=idempotency_key, first_response_seconds=waited)
    conversation.waiting_since = None
    conversation.last_message_at = max(conversation.last_message_at, now)
    conversation.save(update_fields=["first_response_at", "waiting_since", "last_message_at"])
    # The words are the message's; the log keeps their SHA-256, not a second copy of what a person was told.
    by.record(action="conversation.reply", **conversation_object(conversation), before=before,
              after={"reply": reply.pk, "message": message.pk, "template": (message.template or {}).get("name"),
                     "body_sha256": hashlib.sha256(message.body.encode("utf-8")).hexdigest(),
                     "waiting_since": None, "first_response_at": conversation.first_response_at,
                     "first_response_seconds": waited})
    return ReplyResult(reply, created=True)


@transaction.atomic
def conversation_close(*, conversation_id: int, by: Staff, now: datetime | None = None) -> Conversation:
    """Close a conversation (idempotent: closing a closed one changes and records nothing); the person's
    next message reopens it."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if conversation.status != Conversation.Status.CLOSED:
        conversation.status = Conversation.Status.CLOSED
        conversation.closed_at = now or timezone.now()
        conversation.closed_by = by.actor
        conversation.save(update_fields=["status", "closed_at", "closed_by"])
        by.record(action="conversation.close", **conversation_object(conversation),
                  before={"status": Conversation.Status.OPEN},
                  after={"status": Conversation.Status.CLOSED, "closed_at": conversation.closed_at})
    return conversation


@transaction.atomic
def conversation_assign(*, conversation_id: int, user, by: Staff) -> Conversation:
    """Assign a conversation to `user` (assign to me); assigning it to whoever has it records nothing."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if conversation.assigned_to_id != user.pk:
        was = conversation.assigned_to.get_username() if conversation.assigned_to_id else None
        conversation.assigned_to = user
        conversation.save(update_fields=["assigned_to"])
        by.record(action="conversation.assign", **conversation_object(conversation),
                  before={"assigned_to": was}, after={"assigned_to": user.get_username()})
    return conversation


@transaction.atomic
def conversation_revoke(*, conversation_id: int, by: Staff, now: datetime | None = None) -> list:
    """Record a revocation the person asked for in the conversation (rule 11, `via: conversation`): every
    topic on its channel, in the configured scope, with the one confirmation; nothing revoked, nothing recorded."""
    conversation = Conversation.objects.select_related("contact").get(pk=conversation_id)
    contact = conversation.contact
    was = consent_statuses(contact)
    reason = "asked in a care conversation"
    evidence = {"via": RevocationVia.CONVERSATION, "conversation_id": conversation.pk}
    if by.ip:
        evidence["ip"] = by.ip
    revoked = consent_services.revocation_apply(
        contact=contact, channel=conversation.channel, source=Source.ADMIN if by.via == Via.ADMIN else Source.API,
        reason=reason, actor=by.actor, now=now, evidence=evidence)
    if revoked:
        before, after = revocation_snapshots(was, revoked)
        by.record(action="consent.revoke", **contact_object(contact), before=before,
                  after={**after, "reason": reason, "via": RevocationVia.CONVERSATION,
                         "conversation": conversation.pk})
    return revoked

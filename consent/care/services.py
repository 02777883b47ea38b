"""Writes for customer care: a care message opens a conversation; agents reply, assign and close.

A reply is a transactional message through the one outbound lifecycle (`consent.outbox.message_queue`,
kind `reply`, sent by Celery after commit), stored with its author in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from consent import selectors as consent_selectors
from consent.models import Channel, Conversation, ConversationReply, Message
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


@transaction.atomic
def conversation_reply(*, conversation_id: int, author: str, body: str = "", template: bool = False,
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
    reply = ConversationReply.objects.create(conversation=conversation, message=message, author=author,
                                             idempotency_key=idempotency_key)
    if conversation.first_response_at is None:
        conversation.first_response_at = now
    conversation.waiting_since = None
    conversation.last_message_at = max(conversation.last_message_at, now)
    conversation.save(update_fields=["first_response_at", "waiting_since", "last_message_at"])
    return ReplyResult(reply, created=True)


@transaction.atomic
def conversation_close(*, conversation_id: int, actor: str, now: datetime | None = None) -> Conversation:
    """Close a conversation (idempotent); the person's next message reopens it."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if conversation.status != Conversation.Status.CLOSED:
        conversation.status = Conversation.Status.CLOSED
        conversation.closed_at = now or timezone.now()
        conversation.closed_by = actor
        conversation.save(update_fields=["status", "closed_at", "closed_by"])
    return conversation


@transaction.atomic
def conversation_assign(*, conversation_id: int, user) -> Conversation:
    """Assign a conversation to `user` (assign to me)."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    conversation.assigned_to = user
    conversation.save(update_fields=["assigned_to"])
    return conversation

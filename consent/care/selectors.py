"""Reads for customer care: the inbox, a conversation's thread, whether a number is stopped on SMS."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import F, Prefetch, Q, QuerySet

from consent import keywords as kw
from consent import selectors
from consent.models import Channel, Consent, Contact, Conversation, Message

from . import rules

# How many of a number's latest keywords are read to find its last STOP or START (HELPs in between).
KEYWORDS_READ = 20


def conversation_list(*, status: str | None = None) -> QuerySet[Conversation]:
    """Open conversations first, the oldest unanswered on top, then the most recently active."""
    qs = Conversation.objects.select_related("contact", "assigned_to").prefetch_related(
        Prefetch("contact__consents", queryset=Consent.objects.select_related("topic").order_by("topic__slug", "channel"))
    )
    if status:
        qs = qs.filter(status=status)
    return qs.order_by(
        F("status").desc(),  # "open" > "closed"
        F("waiting_since").asc(nulls_last=True),
        F("last_message_at").desc(),
        "id",
    )


def conversation_get(pk: int) -> Conversation | None:
    return conversation_list().filter(pk=pk).first()


def thread_q(conversation: Conversation) -> Q:
    """The person's care messages on the conversation's channel and the agents' replies in it."""
    return Q(contact_id=conversation.contact_id, channel=conversation.channel) & (
        Q(kind=Message.Kind.INBOUND, direction=Message.Direction.INBOUND) | Q(care_reply__conversation=conversation)
    )


def threads(conversations: list[Conversation]) -> dict[int, list[Message]]:
    """conversation id → its messages in order, in one query for the whole page."""
    if not conversations:
        return {}
    q = Q()
    for conversation in conversations:
        q |= thread_q(conversation)
    by_key = {(c.contact_id, c.channel): c.pk for c in conversations}
    out: dict[int, list[Message]] = defaultdict(list)
    for message in Message.objects.filter(q).select_related("care_reply").order_by("created_at", "id"):
        out[by_key[(message.contact_id, message.channel)]].append(message)
    return out


def sms_stopped(contact: Contact) -> bool:
    """Whether the number's last keyword on SMS was a bare STOP (the carrier blocks it until START)."""
    bodies = list(Message.objects.filter(contact=contact, channel=Channel.SMS, direction=Message.Direction.INBOUND,
                                         kind=Message.Kind.KEYWORD).order_by("-id")
                  .values_list("body", flat=True)[:KEYWORDS_READ])
    if not bodies:
        return False
    topic_keywords = selectors.topics_by_keyword().keys()
    return rules.sms_blocked([kw.parse_inbound(body, topic_keywords=topic_keywords) for body in bodies])

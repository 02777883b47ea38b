"""Transactional messages (prompts and replies): hand to the provider and record the outcome.

Stored and queued by `consent.outbox`; provider feedback (opt-out, invalid number) changes consent here.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from config.enqueue import enqueue
from messaging.providers import (
    InvalidRecipientError,
    OutgoingMessage,
    PermanentProviderError,
    RecipientOptedOutError,
    TransientProviderError,
    get_provider,
)

from .ledger import event_append
from .models import Channel, ConfirmationToken, Consent, ConsentStatus, EventKind, Message, Source
from .outbox import DELIVER_TASK, REDACTED_TOKEN
from .selectors import effective_status
from .services import confirmation_token_issue, consent_revoke, contact_suppress
from .webhooks.references import MESSAGE, twilio_status_callback

logger = logging.getLogger(__name__)


def _with_token(value, token: str):
    """`value` (a body, or a template's JSON) with each redacted confirmation link carrying `token`."""
    if isinstance(value, str):
        return value.replace(f"/optin/confirm/{REDACTED_TOKEN}/", f"/optin/confirm/{token}/")
    if isinstance(value, dict):
        return {key: _with_token(item, token) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_token(item, token) for item in value]
    return value


def message_deliver(*, message_id: int, final_attempt: bool = False) -> str:
    """Claim a queued message, hand it to the provider, record the outcome. Safe to call twice."""
    token = token_id = None
    with transaction.atomic():
        message = Message.objects.select_for_update(of=("self",)).select_related("contact", "topic").filter(pk=message_id).first()
        if message is None or message.status != Message.Status.QUEUED:
            return "skipped"
        contact = message.contact
        if contact.phone is None:
            message.status = Message.Status.FAILED
            message.error_message = "contact erased"
            message.save(update_fields=["status", "error_message"])
            return "failed"
        consent = None
        if message.kind == Message.Kind.CONFIRMATION_PROMPT and message.topic_id:
            consent = _prompted_consent(message)
            if consent is None:
                message.status = Message.Status.FAILED
                message.error_message = "nothing left to confirm (the consent is no longer pending)"
                message.status_at = timezone.now()
                message.save(update_fields=["status", "error_message", "status_at"])
                return "failed"
            # Made at each hand-over and put only into what the provider gets: nobody can read it back.
            token, token_id = confirmation_token_issue(consent=consent, now=timezone.now())
        message.status = Message.Status.SENDING
        message.attempts += 1
        message.status_at = timezone.now()
        message.save(update_fields=["status", "attempts", "status_at"])
    reference = f"{MESSAGE}-{message.pk}"
    outgoing = OutgoingMessage(
        to=contact.phone,
        channel=message.channel,
        body=_with_token(message.body, token) if token else message.body,
        template=_with_token(message.template, token) if token else message.template,
        status_callback=twilio_status_callback(reference) if message.channel == Channel.SMS else "",
        reference=reference,
    )
    try:
        provider = get_provider(message.channel)
        result = provider.send(outgoing)
    except PermanentProviderError as exc:
        exc = _without_token(exc, token)
        if exc.outcome_unknown:
            return _record_unknown(message, exc)
        _token_discard(token_id)
        _record_permanent_failure(message, exc)
        return "failed"
    except TransientProviderError as exc:
        exc = _without_token(exc, token)
        if exc.outcome_unknown:
            return _record_unknown(message, exc)
        _token_discard(token_id)  # never delivered: a retry makes a fresh one
        status = Message.Status.FAILED if final_attempt else Message.Status.QUEUED
        _awaiting_outcome(message).update(status=status, error_code=exc.code, error_message=str(exc)[:255],
                                       status_at=timezone.now())
        if final_attempt:
            return "failed"
        raise
    with transaction.atomic():
        _record_sent(message, result.provider_message_id)
        if consent is not None:
            # YES confirms only consents whose prompt was handed over since they were requested.
            sent_at = timezone.now()
            Consent.objects.filter(pk=consent.pk, status=ConsentStatus.PENDING).update(prompted_at=sent_at)
            event_append(kind=EventKind.CONFIRMATION_SENT, contact=contact, topic=message.topic,
                         channel=message.channel, source=Source.SYSTEM, actor="system", text=consent.text,
                         evidence={"message_id": message.pk, "provider_message_id": result.provider_message_id,
                                   "provider": provider.name,
                                   "template": (message.template or {}).get("name")}, occurred_at=sent_at)
    return "sent"


def _prompted_consent(message: Message):
    """The pending consent a confirmation prompt asks about, or None when there is nothing left to confirm."""
    now = timezone.now()
    consent = (message.topic.consents.filter(contact=message.contact, channel=message.channel)
               .select_related("text").first())
    if consent is None or effective_status(consent, now) != ConsentStatus.PENDING:
        return None
    return consent


def _token_discard(token_id: int | None) -> None:
    if token_id is not None:
        ConfirmationToken.objects.filter(pk=token_id).delete()


def _without_token(exc, token: str | None):
    """A provider error whose text may quote the message: stored and logged without the token."""
    if token and token in str(exc):
        exc.args = (str(exc).replace(token, REDACTED_TOKEN), *exc.args[1:])
    return exc


def _awaiting_outcome(message: Message):
    """The message, unless a status callback already recorded what became of it."""
    return Message.objects.filter(pk=message.pk, status__in=Message.AWAITING_OUTCOME)


def _record_sent(message: Message, provider_message_id: str) -> None:
    """Record the provider's id and `sent`, without undoing what an earlier status callback recorded.

    A callback that came before this (found through our reference) already recorded the same
    provider id and may have moved the message further (`delivered`): its status stays. A provider
    id already recorded is never replaced by another one.
    """
    now = timezone.now()
    same_id = Q(provider_message_id__isnull=True) | Q(provider_message_id="") | Q(provider_message_id=provider_message_id)
    rows = Message.objects.filter(same_id, pk=message.pk)
    if rows.filter(status__in=Message.AWAITING_OUTCOME).update(
        status=Message.Status.SENT, provider_message_id=provider_message_id, sent_at=now, status_at=now,
        error_code="", error_message="",
    ):
        return
    if not rows.update(provider_message_id=provider_message_id, sent_at=now):
        logger.warning("message %s: the provider answered %s but a status callback recorded another id; kept that one",
                       message.pk, provider_message_id)


def _record_unknown(message: Message, exc) -> str:
    """The provider may have taken the message (read timeout, unreadable reply): never resend it."""
    _awaiting_outcome(message).update(status=Message.Status.UNKNOWN, error_code=exc.code,
                                   error_message=str(exc)[:255], status_at=timezone.now())
    logger.warning("message %s outcome unknown (%s); not resent", message.pk, exc.code)
    return "unknown"


def _record_permanent_failure(message: Message, exc: PermanentProviderError) -> None:
    with transaction.atomic():
        _awaiting_outcome(message).update(
            status=Message.Status.FAILED, error_code=exc.code, error_message=str(exc)[:255], status_at=timezone.now()
        )
        evidence = {"provider_error_code": exc.code, "message_id": message.pk}
        if isinstance(exc, RecipientOptedOutError):
            consent_revoke(contact=message.contact, channel=message.channel, source=Source.PROVIDER,
                           reason="provider reports opt-out", evidence=evidence)
        elif isinstance(exc, InvalidRecipientError):
            contact_suppress(contact=message.contact, reason="invalid_number", source=Source.PROVIDER, evidence=evidence)
    logger.warning("message %s failed permanently: %s %s", message.pk, exc.code, exc)


def messages_requeue_stale(*, older_than_seconds: int | None = None) -> int:
    """Hand messages still `queued` long after their last change to the broker again.

    A message is queued in the same transaction as the change that asked for it, and its task is
    published after the commit; if the broker was down then, nothing else would ever send it.
    Longer than the longest retry backoff, so a message waiting for its retry is left alone;
    a duplicate task is harmless (the claim lets one through).
    """
    older_than_seconds = older_than_seconds or settings.MESSAGE_REQUEUE_AFTER_SECONDS
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    ids = list(
        Message.objects.filter(direction=Message.Direction.OUTBOUND, status=Message.Status.QUEUED)
        .annotate(last_change=Coalesce("status_at", "created_at"))
        .filter(last_change__lt=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:5000]
    )
    for message_id in ids:
        enqueue(DELIVER_TASK, message_id)
    return len(ids)


def messages_mark_stale_unknown(*, older_than_seconds: int = 600) -> int:
    """Messages left in `sending` by a crash: their outcome is unknown; never resend them."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    return Message.objects.filter(status=Message.Status.SENDING, status_at__lt=cutoff).update(
        status=Message.Status.UNKNOWN, status_at=timezone.now()
    )

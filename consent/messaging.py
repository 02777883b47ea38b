"""Transactional messages (prompts and replies): hand to the provider and record the outcome.

Stored and queued by `consent.outbox`; provider feedback (opt-out, invalid number) changes consent here.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from config.enqueue import enqueue
from config.logging import mask_confirmation_links
from messaging import lifecycle
from messaging.lifecycle import Outcome
from messaging.providers import OutgoingMessage, get_provider

from .ledger import event_append
from .models import Channel, ConfirmationToken, Consent, ConsentStatus, EventKind, Message, Source
from .outbox import DELIVER_TASK, REDACTED_TOKEN, REVOCATION_CONFIRMATION_WITHIN, with_preference_token
from .selectors import effective_status
from .services import confirmation_token_issue, provider_refusal_apply
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
    """Claim a queued message, hand it to the provider, record the outcome. Safe to call twice.

    Returns "sent", "failed", "unknown" or "skipped" (nothing to claim). A transient error before
    the final attempt puts the message back in `queued` and raises `lifecycle.RetryLater` for the
    caller's retry policy.
    """
    token = token_id = None
    now = timezone.now()
    with transaction.atomic():
        message = Message.objects.select_for_update(of=("self",)).select_related("contact", "topic").filter(pk=message_id).first()
        if message is None or message.status != Message.Status.QUEUED:
            return "skipped"
        contact = message.contact
        if contact.phone is None:
            Message.objects.filter(pk=message.pk).update(status=Message.Status.FAILED, error_message="contact erased",
                                                         status_at=now)
            return "failed"
        if message.kind == Message.Kind.STOP_REPLY and message.created_at < now - REVOCATION_CONFIRMATION_WITHIN:
            # One confirmation within five minutes of the revocation, or none (47 CFR §64.1200(a)(12)).
            Message.objects.filter(pk=message.pk).update(
                status=Message.Status.SKIPPED, status_at=now,
                error_message="not sent: a revocation is confirmed within 5 minutes or not at all")
            return "skipped"
        consent = None
        if message.kind == Message.Kind.CONFIRMATION_PROMPT and message.topic_id:
            consent = _prompted_consent(message)
            if consent is None:
                reason = "nothing left to confirm (the consent is no longer pending)"
                Message.objects.filter(pk=message.pk).update(status=Message.Status.FAILED, error_message=reason,
                                                             status_at=now)
                return "failed"
            # Made at each hand-over and put only into what the provider gets: nobody can read it back.
            token, token_id = confirmation_token_issue(consent=consent, now=now)
        lifecycle.claim(Message.objects.filter(pk=message.pk), now=now)
    reference = f"{MESSAGE}-{message.pk}"
    body = _with_token(message.body, token) if token else message.body
    # A HELP reply's preference link is signed here, for this message's own contact and channel.
    body = with_preference_token(body, contact=contact, channel=message.channel)
    outgoing = OutgoingMessage(
        to=contact.phone,
        channel=message.channel,
        body=body,
        template=_with_token(message.template, token) if token else message.template,
        status_callback=twilio_status_callback(reference) if message.channel == Channel.SMS else "",
        reference=reference,
    )
    try:
        provider = get_provider(message.channel)
    except ValueError as exc:  # a channel no provider serves: nothing left
        provider, outcome = None, Outcome("failed", code="no_provider", message=str(exc))
    else:
        outcome = lifecycle.send(provider, outgoing)
    if token and token in outcome.message:
        # A provider error whose text quotes the message: stored and logged without the token.
        outcome.message = outcome.message.replace(token, REDACTED_TOKEN)
    if body != message.body and outcome.message:
        outcome.message = mask_confirmation_links(outcome.message)  # nor a preference link's token
    if outcome.kind == "sent":
        with transaction.atomic():
            lifecycle.record_sent(Message, [(message.pk, outcome.provider_message_id)], timezone.now())
            if consent is not None:
                _prompt_handed_over(message, consent, outcome, provider.name)
        return "sent"
    if outcome.kind != "unknown":
        _token_discard(token_id)  # never delivered: a retry makes a fresh one
    with transaction.atomic():
        lifecycle.record_outcome(Message, message.pk, lifecycle.outcome_fields(outcome, timezone.now(),
                                                                              retry=not final_attempt))
        if outcome.kind in ("opted_out", "invalid"):
            evidence = {"provider_error_code": outcome.code, "message_id": message.pk}
            provider_refusal_apply(contact=contact, channel=message.channel, outcome=outcome.kind, evidence=evidence)
    if outcome.kind == "unknown":
        logger.warning("message %s outcome unknown (%s); not resent", message.pk, outcome.code)
        return "unknown"
    if outcome.kind == "retry" and not final_attempt:
        raise lifecycle.RetryLater(outcome)
    logger.warning("message %s failed: %s %s", message.pk, outcome.code, outcome.message)
    return "failed"


def _prompt_handed_over(message: Message, consent: Consent, outcome: Outcome, provider_name: str) -> None:
    """YES confirms only consents whose prompt was handed over since they were requested: record it."""
    sent_at = timezone.now()
    Consent.objects.filter(pk=consent.pk, status=ConsentStatus.PENDING).update(prompted_at=sent_at)
    event_append(kind=EventKind.CONFIRMATION_SENT, contact=message.contact, topic=message.topic,
                 channel=message.channel, source=Source.SYSTEM, actor="system", text=consent.text,
                 evidence={"message_id": message.pk, "provider_message_id": outcome.provider_message_id,
                           "provider": provider_name, "template": (message.template or {}).get("name")},
                 occurred_at=sent_at)


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
    now = timezone.now()
    return lifecycle.mark_stale_unknown(Message.objects.all(), cutoff=now - timezone.timedelta(seconds=older_than_seconds),
                                        now=now)

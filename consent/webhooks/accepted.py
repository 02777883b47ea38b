"""What happens to a webhook once its signature verified and its payload parsed (rule 15).

It is applied now; or, when the database cannot be reached or webhooks already wait in the
inbound fallback, kept there (consent/fallback.py) and applied by its drain through the same
functions. `webhook_accept` says whether the webhook is durably recorded: only then may the
provider be told 200.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.core.cache import cache

from config.enqueue import enqueue
from consent import fallback, inbound

from . import parsers

logger = logging.getLogger(__name__)

TWILIO = "twilio"
WHATSAPP_CLOUD = "whatsapp_cloud"
# The kinds of entries the fallback keeps, each with the verified payload its parser takes.
TWILIO_INBOUND = "twilio_inbound"  # {"form": {field: value}}
TWILIO_STATUS = "twilio_status"  # {"form": {field: value}, "reference": ref}
WHATSAPP = "whatsapp"  # {"body": the raw JSON text}
DRAIN_TASK = "consent.tasks.inbound_fallback_drain_task"
KICK_KEY = "inbound-fallback:kicked"


def twilio_inbound_apply(form, *, provider: str = TWILIO) -> inbound.InboundResult:
    """A verified Twilio inbound form, parsed (PayloadError) and applied once: the webhook's path after
    its signature check, also taken by `manage.py inbound` for a person typing on the console."""
    message = parsers.parse_twilio_inbound(form)
    result = inbound.inbound_message_receive(message=message, provider=provider)
    logger.info("%s inbound %s: %s %s", provider, message.provider_message_id, result.outcome, result.intent.kind)
    return result


def twilio_status_apply(form, *, reference: str = "") -> None:
    """A verified Twilio status callback, parsed (PayloadError) and applied."""
    inbound.provider_status_apply(update=parsers.parse_twilio_status(form, reference=reference), provider=TWILIO)


def whatsapp_batch_apply(batch: parsers.WhatsAppBatch) -> dict:
    """Every message, status and preference of one verified WhatsApp Cloud POST; the counts of each."""
    outcomes = {"messages": 0, "duplicates": 0, "statuses": 0, "preferences": 0, "ignored": len(batch.ignored)}
    bucket = {"applied": "messages", "duplicate": "duplicates", "ignored": "ignored"}
    for message in batch.messages:
        result = inbound.inbound_message_receive(message=message, provider=WHATSAPP_CLOUD)
        outcomes[bucket[result.outcome]] += 1
    for update in batch.statuses:
        inbound.provider_status_apply(update=update, provider=WHATSAPP_CLOUD)
        outcomes["statuses"] += 1
    for preference in batch.preferences:
        inbound.whatsapp_preference_apply(preference=preference)
        outcomes["preferences"] += 1
    return outcomes


def fallback_entry_apply(entry: fallback.Entry) -> None:
    """The drain's side: one kept webhook applied through the same functions as at its arrival."""
    payload = entry.payload
    if entry.kind == TWILIO_INBOUND:
        twilio_inbound_apply(payload["form"])
    elif entry.kind == TWILIO_STATUS:
        twilio_status_apply(payload["form"], reference=payload.get("reference", ""))
    elif entry.kind == WHATSAPP:
        whatsapp_batch_apply(parsers.parse_whatsapp_body(payload["body"].encode("utf-8")))
    else:
        raise ValueError(f"unknown inbound fallback entry kind {entry.kind!r}")


def webhook_accept(*, kind: str, payload: dict, apply: Callable[[], object]) -> tuple[bool, object]:
    """(recorded, what `apply` returned): apply the verified webhook now, or keep it in the fallback.

    Kept when the database cannot be reached, and also while webhooks already wait there, so that
    none overtakes an older one from the same number. `recorded` is False only when it could be
    neither applied nor kept (the caller answers 503). Any other error of `apply` propagates.
    """
    if fallback.fallback_pending():
        return _keep(kind, payload, kick=True), None
    try:
        return True, apply()
    except fallback.DATABASE_UNREACHABLE as exc:
        logger.warning("webhook %s: the database cannot be reached (%s); keeping it in the inbound fallback",
                       kind, type(exc).__name__)
        return _keep(kind, payload, kick=False), None


def _keep(kind: str, payload: dict, *, kick: bool) -> bool:
    try:
        fallback.fallback_append(kind=kind, payload=payload)
    except fallback.FallbackUnavailable as exc:
        logger.error("webhook %s could be neither applied nor kept in the inbound fallback: %s", kind, exc)
        return False
    if kick:
        _kick_drain()
    return True


def _kick_drain() -> None:
    """Ask a worker to drain now (at most once a second); the beat drains every few seconds anyway."""
    try:
        if cache.add(KICK_KEY, 1, timeout=1):
            enqueue(DRAIN_TASK)
    except Exception as exc:  # the broker or the cache is down: the webhook is kept, the beat will drain it
        logger.warning("inbound fallback: could not ask for a drain now (%s)", exc)

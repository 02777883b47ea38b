"""The one outbound message lifecycle: every message the service sends goes through it.

Confirmation prompts and replies (`consent.Message`) and broadcast deliveries (`broadcasts.Delivery`)
are two tables built on one abstract model, `OutboundMessage`, and share everything here:

- one status set (`Status`) and the groups that the rules speak of (open, handed over, awaiting
  the send's outcome);
- one claim: open → `sending`, attempts counted, in the caller's transaction, after the caller's own
  gate (a prompt asks whether its consent is still pending, a delivery the send-time consent gate);
- one sender (`send`): hand the message to the provider and classify what came back into an
  `Outcome`, never raising;
- one recorder (`record_sent`, `record_outcome`): what the send learnt, written only onto a row
  still awaiting it, never undoing what a faster status callback recorded;
- one forward-only transition map for status callbacks (`callback_status_apply`);
- one stale-row upkeep (`mark_stale_unknown`): a row left in `sending` by a crash is `unknown`,
  never resent;
- one retry policy (`RETRY_POLICY`, `retry_delay`): Celery's exponential backoff with full jitter,
  or the provider's own Retry-After when it gave one; a message the provider held back for the
  person's sake (`deferred`: WhatsApp 131049) waits on the same function with its longer,
  unjittered steps (`HELD_BACK_POLICY`), so it is never tried again at once.

What a provider error means for consent (an opt-out revokes, an invalid number is suppressed) is the
consent app's decision, taken by its callers: this module knows statuses, not people.

    queued ──┬──────────────→ sending ──→ sent ──→ delivered ──→ read
    deferred ┘  (claim)          │  (send)  └───────→ failed
       │                         ├──→ failed │ unknown (may have left: never resent)
       └→ skipped │ cancelled    └──→ queued (a transient error that proves it did not leave)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from celery.utils.time import get_exponential_backoff_interval
from django.db import models
from django.db.models import F, Q

from . import sql
from .providers import (
    HeldBackError,
    InvalidRecipientError,
    OutgoingMessage,
    PermanentProviderError,
    Provider,
    RecipientOptedOutError,
    TransientProviderError,
)

logger = logging.getLogger(__name__)


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    DEFERRED = "deferred", "Deferred (waiting for local time, quiet hours or a limit)"
    SENDING = "sending", "Handed to the provider"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    READ = "read", "Read"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    UNKNOWN = "unknown", "Outcome unknown"
    CANCELLED = "cancelled", "Cancelled"
    RECEIVED = "received", "Received"  # an inbound message, as it arrived


# May still be claimed and sent.
OPEN = (Status.QUEUED, Status.DEFERRED)
# Went, or may have gone, out.
HANDED_OVER = (Status.SENDING, Status.SENT, Status.DELIVERED, Status.READ, Status.UNKNOWN)
# Handed over, the send's own outcome not recorded yet (`unknown`: upkeep's guess after a crash).
# Only these take the send's outcome, or are found by our reference on a status callback that comes
# before the provider's answer was recorded; any other status was recorded by such a callback.
AWAITING_OUTCOME = (Status.SENDING, Status.UNKNOWN)

# Forward-only: the statuses a provider's status callback may move a message from (callbacks come
# late, twice and out of order). `failed` never overrides a delivery the person's phone confirmed.
FORWARD_FROM = {
    Status.SENT: frozenset({Status.QUEUED, Status.SENDING, Status.UNKNOWN}),
    Status.DELIVERED: frozenset({Status.QUEUED, Status.SENDING, Status.UNKNOWN, Status.SENT}),
    Status.FAILED: frozenset({Status.QUEUED, Status.SENDING, Status.UNKNOWN, Status.SENT}),
    Status.READ: frozenset({Status.QUEUED, Status.SENDING, Status.UNKNOWN, Status.SENT, Status.DELIVERED,
                            Status.FAILED}),
}
# A status callback's normalised status (consent.webhooks.parsers.STATUS_MAP) as one of ours.
CALLBACK_STATUS = {"sent": Status.SENT, "delivered": Status.DELIVERED, "read": Status.READ,
                   "failed": Status.FAILED, "canceled": Status.FAILED}

# The one retry policy, as Celery task options (both sending tasks are declared with them) and for
# the rows a broadcast puts back to wait: 5 s, 10 s, 20 s … up to 10 minutes, full jitter.
RETRY_POLICY = {"retry_backoff": 5, "retry_backoff_max": 600, "retry_jitter": True}
# A message the provider held back for the person's sake (WhatsApp 131049: Meta advises retrying
# "with increasing time intervals", never at once, and its per-user limit eases over about a day):
# 15 min, 30 min, 1 h, 2 h … up to 24 h, without jitter so that no wait is ever short.
HELD_BACK_POLICY = {"retry_backoff": 900, "retry_backoff_max": 86400, "retry_jitter": False}


class OutboundMessage(models.Model):
    """What every sent message records: its status, the provider's id and answer, when it went."""

    Status = Status
    AWAITING_OUTCOME = AWAITING_OUTCOME

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    provider_message_id = models.CharField(max_length=128, null=True, blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    status_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


# --- claim ----------------------------------------------------------------------------------


def claimed_fields(now: datetime) -> dict:
    """What a claim writes: `sending`, one more attempt, the instant (what the stale upkeep reads)."""
    return {"status": Status.SENDING, "status_at": now, "attempts": F("attempts") + 1}


def claim(rows: models.QuerySet, *, now: datetime, **extra) -> int:
    """Move the open rows of `rows` to `sending` (call inside the transaction that checked the gate)."""
    return rows.filter(status__in=OPEN).update(**claimed_fields(now), **extra)


# --- send -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What became of one hand-over, as the provider's answer tells it."""

    kind: str  # sent | retry | deferred | failed | opted_out | invalid | unknown
    provider_message_id: str = ""
    code: str = ""
    message: str = ""
    retry_after: float | None = None
    rate_limited: bool = False  # the provider asked us to slow down


def send(provider: Provider, message: OutgoingMessage) -> Outcome:
    """Hand one message to the provider and classify what came back (never raises)."""
    try:
        result = provider.send(message)
    except HeldBackError as exc:
        return Outcome("deferred", code=exc.code, message=str(exc))
    except TransientProviderError as exc:
        if exc.outcome_unknown:
            return Outcome("unknown", code=exc.code, message=str(exc))
        return Outcome("retry", code=exc.code, message=str(exc), retry_after=exc.retry_after,
                       rate_limited=exc.rate_limited)
    except PermanentProviderError as exc:
        if exc.outcome_unknown:
            return Outcome("unknown", code=exc.code, message=str(exc))
        if isinstance(exc, RecipientOptedOutError):
            return Outcome("opted_out", code=exc.code, message=str(exc))
        if isinstance(exc, InvalidRecipientError):
            return Outcome("invalid", code=exc.code, message=str(exc))
        return Outcome("failed", code=exc.code, message=str(exc))
    except Exception as exc:  # a bug or an unexpected library error: it may have left, so never resend
        logger.exception("provider call for %s raised", message.reference)
        return Outcome("unknown", code="exception", message=f"{type(exc).__name__}: {exc}")
    return Outcome("sent", provider_message_id=result.provider_message_id)


class RetryLater(Exception):  # noqa: N818  (a signal to the task, not an error)
    """A transient provider error before the last attempt: the message waits in `queued` for the retry policy."""

    def __init__(self, outcome: Outcome):
        super().__init__(f"{outcome.code}: {outcome.message}")
        self.outcome = outcome


def retry_delay(retries: int, retry_after: float | None = None, *, held_back: bool = False) -> float:
    """Seconds before the next attempt: the provider's Retry-After, else the policy's backoff (the
    held-back steps after a `deferred` outcome)."""
    if retry_after is not None:
        return max(0.5, float(retry_after))
    policy = HELD_BACK_POLICY if held_back else RETRY_POLICY
    return float(max(1, get_exponential_backoff_interval(
        factor=policy["retry_backoff"], retries=retries, maximum=policy["retry_backoff_max"],
        full_jitter=policy["retry_jitter"])))


# --- record ---------------------------------------------------------------------------------


def awaiting_outcome(model: type[OutboundMessage], pk) -> models.QuerySet:
    """The row, unless a status callback already recorded what became of it."""
    return model.objects.filter(pk=pk, status__in=AWAITING_OUTCOME)


def record_sent(model: type[OutboundMessage], rows: list[tuple[int, str]], now: datetime) -> None:
    """Record `sent` and the provider's id on each (pk, provider id), without undoing a faster callback.

    A callback that came before the provider's answer (found through our reference) recorded the
    same provider id and may have moved the row further (`delivered`): its status stays. A provider
    id already recorded is never replaced by another one.
    """
    if rows:
        sql.mark_sent(model, [(pk, provider_id[:128]) for pk, provider_id in rows], now,
                      sent=Status.SENT, awaiting=AWAITING_OUTCOME)


def outcome_fields(outcome: Outcome, now: datetime, *, retry: bool) -> dict:
    """What a send that did not go out records: `queued` again (`retry`: a transient error, attempts
    left), `deferred` (held back by the provider: the caller sets when it may go), `unknown` (it may
    have left), else `failed`, with the provider's code and text."""
    fields = {"status_at": now, "error_code": outcome.code[:32], "error_message": outcome.message[:255]}
    if outcome.kind == "deferred":
        fields["status"] = Status.DEFERRED
    elif outcome.kind == "unknown":
        fields["status"] = Status.UNKNOWN
    elif outcome.kind == "retry" and retry:
        fields["status"] = Status.QUEUED
    else:
        fields["status"] = Status.FAILED
    return fields


def record_outcome(model: type[OutboundMessage], pk, fields: dict) -> bool:
    """Write an outcome onto a row still awaiting it; false if a status callback got there first."""
    return bool(awaiting_outcome(model, pk).update(**fields))


# --- status callbacks -----------------------------------------------------------------------


def callback_status_apply(rows: models.QuerySet, *, status: str, occurred_at: datetime, error_code: str = "",
                          error_message: str = "") -> bool:
    """Move the row(s) of `rows` forward to a callback's status; false when that would move back."""
    new = CALLBACK_STATUS.get(str(status or "").lower())
    if new is None:
        return False
    changes = {"status": new, "status_at": occurred_at}
    if error_code:
        changes.update(error_code=str(error_code)[:32], error_message=(error_message or "")[:255])
    return bool(rows.filter(status__in=FORWARD_FROM[new]).update(**changes))


# --- upkeep ---------------------------------------------------------------------------------


def mark_stale_unknown(rows: models.QuerySet, *, cutoff: datetime, now: datetime) -> int:
    """Rows left in `sending` since before `cutoff` (a crash between the provider call and the
    write): `unknown`, never resent."""
    return rows.filter(status=Status.SENDING, status_at__lt=cutoff).update(
        status=Status.UNKNOWN, status_at=now, error_message="no outcome recorded (worker lost)")


# No provider id recorded yet: a status callback may still claim the row by our reference.
UNANSWERED = Q(provider_message_id__isnull=True) | Q(provider_message_id="")

"""Writes for broadcasts: create, schedule, pause/resume/cancel, launch (fan-out), upkeep, status callbacks.

The send path itself (claim, consent gate, provider call, outcome) lives in `sending.py`.
Services take keyword-only arguments and raise django.core.exceptions.ValidationError with a
field → reason mapping for anything a caller could fix.
"""

import logging
from datetime import datetime, timedelta
from datetime import time as dtime
from itertools import pairwise

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, F, Max, OuterRef, Q
from django.utils import timezone

from config.enqueue import enqueue, enqueue_on_commit
from consent.models import Channel, Topic
from consent.selectors import audience_consents
from consent.webhooks import references
from consent.webhooks.registry import OutboundRecord
from messaging import lifecycle
from messaging.providers import whatsapp

from . import content, sql
from .conf import setting
from .models import OPEN_STATUSES, Broadcast, BroadcastStatus, Delivery, DeliveryStatus
from .selectors import attribute_names_present, attribute_names_seen

logger = logging.getLogger(__name__)

# Queued by name (see config.enqueue): broadcasts.tasks imports this module.
LAUNCH_TASK = "broadcasts.tasks.broadcast_launch_task"
FANOUT_TASK = "broadcasts.tasks.broadcast_fanout_task"
SEND_RANGE_TASK = "broadcasts.tasks.broadcast_send_range_task"

# Audience rows inserted per fan-out transaction. Each chunk costs one audience query whatever its
# size, so it is sized in rows, not in send batches: smaller send tasks must not mean more chunks.
FANOUT_CHUNK_ROWS = 20_000
# Placeholder names looked up across every contact at creation (each is one EXISTS query).
MAX_ATTRIBUTE_LOOKUPS = 20


# --- create and lifecycle -------------------------------------------------------------------


def broadcast_content_errors(*, topic: Topic, channel: str, body: str, template: dict | None) -> dict[str, str]:
    """Field → message for content that cannot be sent on `channel` (sizes and placeholders included)."""
    errors = {}
    if channel == Channel.WHATSAPP:
        if body:
            errors["body"] = "WhatsApp broadcasts are always templates: give `template`, not `body`."
        if template is None:
            errors["template"] = "WhatsApp broadcasts need a template {name, language, components}."
        else:
            errors.update(content.template_errors(template))
    else:
        if template is not None:
            errors["template"] = "Templates are for WhatsApp; an SMS broadcast takes `body`."
        if not body or not body.strip():
            errors["body"] = "An SMS broadcast needs a body."
        elif len(body) > content.MAX_SMS_CHARS:
            errors["body"] = f"At most {content.MAX_SMS_CHARS} characters (Twilio's limit for one message); {len(body)} given."
    if errors:
        return errors
    field = "template" if channel == Channel.WHATSAPP else "body"
    try:
        compiled = content.compile_content(body=body if channel != Channel.WHATSAPP else None,
                                           template=template if channel == Channel.WHATSAPP else None, strict=True)
    except content.PlaceholderError as exc:
        return {field: f"Malformed placeholder: {exc}"}
    # A name is known if it is built in, configured, or an attribute some contact has (the
    # audience's first, then anyone's): attributes are free-form, a typo is what no one has.
    configured = {*content.BUILTINS, *setting("BROADCAST_CONTACT_ATTRIBUTES")}
    unknown = [name for name in dict.fromkeys(p.name for p in compiled.placeholders) if name not in configured]
    if unknown:
        seen = attribute_names_seen(topic=topic, channel=channel)
        unknown = [name for name in unknown if name not in seen]
    if unknown:
        present = attribute_names_present(names=unknown[:MAX_ATTRIBUTE_LOOKUPS])
        unknown = [name for name in unknown if name not in present]
    if unknown:
        known = sorted(configured)
        errors[field] = (
            f"Unknown placeholder{'s' if len(unknown) > 1 else ''}: {', '.join('{{ %s }}' % n for n in unknown)}: "
            f"no contact has {'these attributes' if len(unknown) > 1 else 'this attribute'}. "
            f"Known: {', '.join(known)}, and any attribute a contact has."
        )
    return errors


@transaction.atomic
def broadcast_create(*, name: str, topic: Topic, channel: str, body: str = "", template: dict | None = None,
                     send_at: datetime | None = None, local_time: dtime | None = None,
                     respect_quiet_hours: bool = True, frequency_cap: int | None = None,
                     when_capped: str = "defer", actor: str = "system") -> Broadcast:
    """A draft broadcast, its content checked against the channel and the known placeholders."""
    errors = broadcast_content_errors(topic=topic, channel=channel, body=body, template=template)
    if errors:
        raise ValidationError(errors)
    broadcast = Broadcast(name=name, topic=topic, channel=channel, body=body or "", template=template,
                          send_at=send_at, local_time=local_time, respect_quiet_hours=respect_quiet_hours,
                          frequency_cap=frequency_cap, when_capped=when_capped, created_by=actor)
    broadcast.full_clean()
    broadcast.save()
    return broadcast


def _locked(broadcast: Broadcast) -> Broadcast:
    return Broadcast.objects.select_for_update().select_related("topic").get(pk=broadcast.pk)


def _refuse(broadcast: Broadcast, action: str) -> None:
    raise ValidationError({"status": f"A {broadcast.status} broadcast cannot be {action}."})


@transaction.atomic
def broadcast_schedule(*, broadcast: Broadcast, send_at: datetime | None = None, now: datetime | None = None) -> Broadcast:
    """draft → scheduled; it launches at `send_at` (or its own send_at, or now) on the next beat."""
    now = now or timezone.now()
    broadcast = _locked(broadcast)
    if broadcast.status != BroadcastStatus.DRAFT:
        _refuse(broadcast, "scheduled")
    if send_at is not None:
        broadcast.send_at = send_at
    if broadcast.send_at is None:
        broadcast.send_at = now
    broadcast.status = BroadcastStatus.SCHEDULED
    broadcast.scheduled_at = now
    broadcast.status_reason = ""
    broadcast.save(update_fields=["send_at", "status", "scheduled_at", "status_reason", "updated_at"])
    if broadcast.send_at <= now:
        pk = broadcast.pk
        enqueue_on_commit(LAUNCH_TASK, pk)
    return broadcast


@transaction.atomic
def broadcast_pause(*, broadcast: Broadcast, reason: str = "paused by a user") -> Broadcast:
    """scheduled or sending → paused. Send tasks stop before their next claim (well within a second)."""
    broadcast = _locked(broadcast)
    if broadcast.status not in (BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING):
        _refuse(broadcast, "paused")
    broadcast.status = BroadcastStatus.PAUSED
    broadcast.status_reason = reason[:255]
    broadcast.save(update_fields=["status", "status_reason", "updated_at"])
    return broadcast


@transaction.atomic
def broadcast_resume(*, broadcast: Broadcast, now: datetime | None = None) -> Broadcast:
    """paused → sending (or scheduled, if it never started); what was not sent is sent."""
    now = now or timezone.now()
    broadcast = _locked(broadcast)
    if broadcast.status != BroadcastStatus.PAUSED:
        _refuse(broadcast, "resumed")
    broadcast.status = BroadcastStatus.SENDING if broadcast.launched_at else BroadcastStatus.SCHEDULED
    broadcast.status_reason = ""
    # A provider outage that paused the broadcast failed its first rows on transient errors only;
    # they were never handed over, so they are sent with the rest.
    Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.FAILED, retryable=True).update(
        status=DeliveryStatus.QUEUED, retryable=False, attempts=0, not_before=None, error_code="", error_message="",
        status_at=now,
    )
    # Rows in flight now (claimed before this resume) are not in that update; a send task recording
    # their transient failures after this commit sees the count moved and re-queues them itself.
    broadcast.resumes += 1
    broadcast.progress_at = now
    broadcast.save(update_fields=["status", "status_reason", "resumes", "progress_at", "updated_at"])
    if broadcast.status == BroadcastStatus.SENDING:
        pk, fanout_done = broadcast.pk, broadcast.fanout_done
        transaction.on_commit(lambda: _restart_sending(pk, fanout_done))
    elif broadcast.send_at and broadcast.send_at <= now:
        pk = broadcast.pk
        enqueue_on_commit(LAUNCH_TASK, pk)
    return broadcast


def _restart_sending(broadcast_id: int, fanout_done: bool) -> None:
    broadcast = Broadcast.objects.get(pk=broadcast_id)
    if not fanout_done:
        enqueue(FANOUT_TASK, broadcast_id)
    deliveries_enqueue_open(broadcast=broadcast)


@transaction.atomic
def broadcast_cancel(*, broadcast: Broadcast, reason: str = "cancelled by a user", now: datetime | None = None) -> Broadcast:
    """Stop for good: nothing not yet handed to the provider will be sent."""
    now = now or timezone.now()
    broadcast = _locked(broadcast)
    if broadcast.status in (BroadcastStatus.COMPLETED, BroadcastStatus.CANCELLED):
        _refuse(broadcast, "cancelled")
    broadcast.status = BroadcastStatus.CANCELLED
    broadcast.status_reason = reason[:255]
    broadcast.completed_at = now
    broadcast.save(update_fields=["status", "status_reason", "completed_at", "updated_at"])
    Delivery.objects.filter(broadcast=broadcast, status__in=OPEN_STATUSES).update(
        status=DeliveryStatus.CANCELLED, status_at=now
    )
    return broadcast


def _commonest_failure(broadcast_id: int) -> str:
    """"provider error 20500 ×37: Internal Server Error" for the most frequent code among failed rows."""

    row = (Delivery.objects.filter(broadcast_id=broadcast_id, status=DeliveryStatus.FAILED).order_by()
           .values("error_code").annotate(n=Count("id"), message=Max("error_message")).order_by("-n").first())
    if not row:
        return ""
    return f"; provider error {row['error_code'] or '?'} ×{row['n']}: {row['message'] or 'no message'}"


def broadcast_pause_for_errors(*, broadcast_id: int, reason: str) -> bool:
    """Pause a sending broadcast on its own (error rate); true if this call paused it.

    The reason names the provider's commonest error, so that whoever reads the status knows
    whether to fix the content, the numbers or wait for the provider to come back."""
    reason += _commonest_failure(broadcast_id)
    changed = Broadcast.objects.filter(pk=broadcast_id, status=BroadcastStatus.SENDING).update(
        status=BroadcastStatus.PAUSED, status_reason=reason[:255], updated_at=timezone.now()
    )
    if changed:
        logger.warning("broadcast %s paused itself: %s", broadcast_id, reason)
    return bool(changed)


# --- launch and fan-out ---------------------------------------------------------------------


def broadcast_launch(*, broadcast_id: int, now: datetime | None = None) -> bool:
    """scheduled and due → sending, under a row lock that skips a broadcast another process holds.

    True if this call launched it; the fan-out is enqueued once the launch commits.
    """
    now = now or timezone.now()
    with transaction.atomic():
        broadcast = (
            Broadcast.objects.select_for_update(skip_locked=True)
            .filter(pk=broadcast_id, status=BroadcastStatus.SCHEDULED, send_at__lte=now)
            .first()
        )
        if broadcast is None:
            return False
        broadcast.status = BroadcastStatus.SENDING
        broadcast.launched_at = now
        broadcast.progress_at = now
        broadcast.audience_size = 0
        broadcast.save(update_fields=["status", "launched_at", "progress_at", "audience_size", "updated_at"])
        enqueue_on_commit(FANOUT_TASK, broadcast_id)
    logger.info("broadcast %s launched", broadcast_id)
    return True


def broadcast_fanout(*, broadcast_id: int, chunk: int | None = None) -> int:
    """Create the delivery rows of a launched broadcast and enqueue their send tasks.

    The audience is the consent selector's query, walked in keyset chunks of contact ids: each
    chunk is one INSERT … SELECT … RETURNING in the database (only the ids come back, to cut the
    chunk into send batches), committed with the cursor; its send tasks are enqueued on commit.
    Safe to run twice or to resume after a crash: rows are unique and the cursor only moves on.
    """
    batch = int(setting("BROADCAST_BATCH_SIZE"))
    chunk = chunk or max(FANOUT_CHUNK_ROWS, batch)
    created = 0
    while True:
        with transaction.atomic():
            broadcast = Broadcast.objects.select_for_update().select_related("topic").get(pk=broadcast_id)
            if broadcast.status in (BroadcastStatus.CANCELLED, BroadcastStatus.COMPLETED) or broadcast.fanout_done:
                return created
            now = timezone.now()
            cursor = broadcast.fanout_cursor
            audience = (
                audience_consents(topic=broadcast.topic, channel=broadcast.channel, now=now)
                .filter(contact_id__gt=cursor).order_by("contact_id").values("contact_id")[:chunk]
            )
            # Rows above the cursor never exist yet (cursor and rows commit together), so the
            # returned ids are exactly the chunk's audience.
            ids = sql.deliveries_insert_from(*audience.query.sql_with_params(), broadcast_id=broadcast_id, now=now)
            inserted = len(ids)
            if not ids:
                broadcast.fanout_done = True
                broadcast.audience_size = Delivery.objects.filter(broadcast=broadcast).count()
                broadcast.progress_at = now
                broadcast.save(update_fields=["fanout_done", "audience_size", "progress_at", "updated_at"])
                transaction.on_commit(lambda: broadcast_finish_if_done(broadcast_id=broadcast_id))
                return created
            high = ids[-1]
            created += inserted
            broadcast.fanout_cursor = high
            broadcast.audience_size = (broadcast.audience_size or 0) + inserted
            broadcast.progress_at = now
            broadcast.save(update_fields=["fanout_cursor", "audience_size", "progress_at", "updated_at"])
            bounds = [cursor] + [ids[i] for i in range(batch - 1, len(ids), batch)]
            if bounds[-1] != high:
                bounds.append(high)
            ranges = list(pairwise(bounds))
            for lo, hi in ranges:
                enqueue_on_commit(SEND_RANGE_TASK, broadcast_id, lo, hi)


def deliveries_enqueue_open(*, broadcast: Broadcast, wake_only: bool = False, now: datetime | None = None) -> int:
    """Enqueue send tasks covering the broadcast's due open rows (or, with `wake_only`, those whose wait just ended).

    Walks the rows in keyset chunks; with `wake_only`, rows whose `not_before` has passed get it
    cleared in the same transaction so that the next upkeep does not enqueue them again.
    """
    now = now or timezone.now()
    batch = int(setting("BROADCAST_BATCH_SIZE"))
    rows = Delivery.objects.filter(broadcast_id=broadcast.pk, status__in=OPEN_STATUSES)
    if wake_only:
        rows = rows.filter(not_before__lte=now)
    else:  # rows still waiting (quiet hours, local time, Retry-After) are woken by the beat when due
        rows = rows.filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
    cursor, tasks = 0, 0
    while True:
        with transaction.atomic():
            ids = list(rows.filter(contact_id__gt=cursor).order_by("contact_id").values_list("contact_id", flat=True)[:batch])
            if not ids:
                return tasks
            if wake_only:
                rows.filter(contact_id__gt=cursor, contact_id__lte=ids[-1]).update(not_before=None)
            lo, hi = cursor, ids[-1]
            enqueue_on_commit(SEND_RANGE_TASK, broadcast.pk, lo, hi)
        cursor = ids[-1]
        tasks += 1


def broadcast_finish_if_done(*, broadcast_id: int, now: datetime | None = None) -> bool:
    """sending → completed once the fan-out is done and no row is open or in flight.

    One UPDATE whose condition holds both: read apart, the tick could find no rows (the fan-out had
    not inserted them yet), then find the fan-out done (it had since), and complete a broadcast whose
    rows were all still queued, none of them ever sent.
    """
    now = now or timezone.now()
    busy = Delivery.objects.filter(broadcast_id=OuterRef("pk"), status__in=(*OPEN_STATUSES, DeliveryStatus.SENDING))
    done = Broadcast.objects.filter(pk=broadcast_id, status=BroadcastStatus.SENDING, fanout_done=True).filter(
        ~Exists(busy)).update(status=BroadcastStatus.COMPLETED, completed_at=now, updated_at=now)
    if done:
        logger.info("broadcast %s completed", broadcast_id)
    return bool(done)


# --- upkeep (beat) --------------------------------------------------------------------------


def deliveries_mark_stale_unknown(*, broadcast_id: int | None = None, now: datetime | None = None) -> int:
    """Rows left in `sending` by a crash between the provider call and the write: `unknown`, never resent."""
    now = now or timezone.now()
    rows = Delivery.objects.all() if broadcast_id is None else Delivery.objects.filter(broadcast_id=broadcast_id)
    cutoff = now - timedelta(seconds=float(setting("BROADCAST_UNKNOWN_AFTER_SECONDS")))
    return lifecycle.mark_stale_unknown(rows, cutoff=cutoff, now=now)


def broadcast_check_error_rate(*, broadcast_id: int) -> bool:
    """Pause a broadcast whose permanent-failure rate passed the threshold; true if it did."""

    counts = dict(
        Delivery.objects.filter(broadcast_id=broadcast_id, status__in=[
            DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN,
        ]).order_by().values_list("status").annotate(n=Count("id"))
    )
    reason = error_rate_exceeded(failed=counts.get(DeliveryStatus.FAILED, 0), attempted=sum(counts.values()))
    return broadcast_pause_for_errors(broadcast_id=broadcast_id, reason=reason) if reason else False


def error_rate_exceeded(*, failed: int, attempted: int) -> str:
    """Why a broadcast must pause on its failures ("" while the rate is under the threshold or the sample small)."""
    threshold = float(setting("BROADCAST_ERROR_RATE_THRESHOLD"))
    if attempted >= int(setting("BROADCAST_ERROR_RATE_MIN_SAMPLE")) and failed / attempted > threshold:
        return f"error rate {failed}/{attempted} ({failed / attempted:.0%}) passed {threshold:.0%}"
    return ""


def broadcasts_tick(*, now: datetime | None = None) -> dict:
    """The beat job: launch due broadcasts, then for each sending one wake due rows, recover lost
    tasks, mark crashed sends unknown, check the error rate and finish what is done."""
    now = now or timezone.now()
    summary = {"launched": 0, "woken": 0, "restarted": 0, "unknown": 0, "completed": 0}
    for broadcast_id in broadcasts_due_ids(now=now):
        summary["launched"] += broadcast_launch(broadcast_id=broadcast_id, now=now)
    stall = timedelta(seconds=float(setting("BROADCAST_STALL_SECONDS")))
    for broadcast in Broadcast.objects.filter(status=BroadcastStatus.SENDING).order_by("id"):
        summary["unknown"] += deliveries_mark_stale_unknown(broadcast_id=broadcast.pk, now=now)
        if broadcast_check_error_rate(broadcast_id=broadcast.pk):
            continue
        due = Delivery.objects.filter(broadcast=broadcast, status__in=OPEN_STATUSES).filter(
            Q(not_before__isnull=True) | Q(not_before__lte=now))
        stalled = broadcast.progress_at is None or broadcast.progress_at < now - stall
        if stalled and (not broadcast.fanout_done or due.exists()):
            # Touch first, so that the next tick leaves these tasks time to run.
            Broadcast.objects.filter(pk=broadcast.pk).update(progress_at=now)
            if not broadcast.fanout_done:
                enqueue(FANOUT_TASK, broadcast.pk)
            summary["restarted"] += deliveries_enqueue_open(broadcast=broadcast, now=now)
        elif Delivery.objects.filter(broadcast=broadcast, status__in=OPEN_STATUSES, not_before__lte=now).exists():
            summary["woken"] += deliveries_enqueue_open(broadcast=broadcast, wake_only=True, now=now)
        summary["completed"] += broadcast_finish_if_done(broadcast_id=broadcast.pk, now=now)
    return summary


def broadcasts_due_ids(*, now: datetime) -> list[int]:
    return list(
        Broadcast.objects.filter(status=BroadcastStatus.SCHEDULED, send_at__lte=now).order_by("send_at", "id")
        .values_list("id", flat=True)[:100]
    )


# --- provider status callbacks --------------------------------------------------------------

@transaction.atomic
def delivery_status_update(*, channel: str, provider_message_id: str, status: str, error_code: str = "",
                           occurred_at: datetime | None = None, error_message: str = "") -> bool:
    """Apply a provider's delivery status to the broadcast delivery with that message id (idempotent,
    forward only: the lifecycle's one transition map). True if it moved the delivery.

    Opt-out and invalid-number codes are acted on by the webhook itself (consent revoked or number
    suppressed) before this runs; here the delivery only records its status and code.
    """
    if not provider_message_id:
        return False
    rows = Delivery.objects.filter(provider_message_id=provider_message_id, broadcast__channel=channel)
    if channel == Channel.WHATSAPP and str(status).lower() == "failed" and whatsapp.is_held_back_code(error_code) \
            and rows.filter(broadcast__status__in=(BroadcastStatus.SENDING, BroadcastStatus.PAUSED)).exists():
        # A broadcast already over has nobody left to send it again: then it is recorded as failed.
        return delivery_held_back(rows=rows, error_code=error_code, error_message=error_message,
                                  now=occurred_at or timezone.now())
    return lifecycle.callback_status_apply(rows, status=status, occurred_at=occurred_at or timezone.now(),
                                           error_code=error_code, error_message=error_message)


def delivery_held_back(*, rows, error_code: str, error_message: str = "", now: datetime) -> bool:
    """A status webhook says Meta held the message back (WhatsApp 131049, rule 13): not a failure and no
    consent change; the delivery waits (`deferred`) for the held-back backoff and goes through the gate
    again, its provider id cleared (that message never reached the person). Only a row not yet known to
    have reached the handset; true if it moved."""
    delivery = rows.select_for_update(of=("self",)).filter(
        status__in=(DeliveryStatus.SENDING, DeliveryStatus.SENT, DeliveryStatus.UNKNOWN)).first()
    if delivery is None:
        return False
    delay = lifecycle.retry_delay(delivery.deferrals, held_back=True)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.DEFERRED, not_before=now + timedelta(seconds=delay), rule="whatsapp-held-back",
        deferrals=F("deferrals") + 1, provider_message_id=None, sent_at=None, error_code=str(error_code)[:32],
        error_message=(error_message or "")[:255], status_at=now)
    return True


def delivery_match_status(*, update) -> Delivery | None:
    """The broadcast delivery a provider status update is about, row-locked, or None.

    By the provider's message id; else by our reference on the callback (`delivery-<pk>`) when the
    callback came before the send recorded the provider's answer: that delivery must have been
    handed over on the update's channel with no provider id recorded yet and, on SMS, to the
    callback's number. The provider id is then recorded on it, so that the send's own recording
    and later callbacks agree. A reference to a delivery with another provider id is ignored.
    """
    deliveries = Delivery.objects.select_related("contact").filter(broadcast__channel=update.channel)
    return references.record_for(
        update, kind=references.DELIVERY,
        by_id=deliveries.select_for_update(of=("self",)).filter(provider_message_id=update.provider_message_id),
        by_reference=deliveries,
        unclaimed=Delivery.objects.filter(lifecycle.UNANSWERED, status__in=lifecycle.AWAITING_OUTCOME),
    )


def delivery_record_for(update) -> OutboundRecord | None:
    """The status handler's finder: the delivery's contact and when it was handed over."""
    delivery = delivery_match_status(update=update)
    if delivery is None:
        return None
    return OutboundRecord(contact=delivery.contact, sent_at=delivery.sent_at or delivery.claimed_at,
                          evidence={"broadcast_id": delivery.broadcast_id, "delivery_id": delivery.pk})


def delivery_status_apply(*, provider: str, update, contact=None, message=None) -> None:
    """The status handler's applier: a status not about a transactional Message → delivery_status_update."""
    if message is not None:
        return
    delivery_status_update(channel=update.channel, provider_message_id=update.provider_message_id,
                           status=update.status, error_code=getattr(update, "error_code", "") or "",
                           error_message=getattr(update, "error_message", "") or "",
                           occurred_at=getattr(update, "occurred_at", None))

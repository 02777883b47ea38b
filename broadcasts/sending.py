"""The send path of a broadcast: claim → consent gate → provider → outcome.

For one contact-id range of a broadcast, repeatedly:

1. **Claim** (one transaction): lock up to CLAIM_SIZE open rows (`queued`/`deferred`, due now)
   with `SELECT … FOR UPDATE SKIP LOCKED`, read the broadcast's status (paused or cancelled:
   stop), ask the consent selector which of those contacts may receive the topic on the
   channel *now* (rule 7 of docs/design.md: same transaction as the claim), apply the frequency cap, local
   send time and quiet hours, and move the rows that may go to `sending`. Commit.
2. **Send** the claimed rows, concurrently on a thread pool (each thread has its own
   keep-alive provider session), after taking their slots from the shared throttle.
3. **Record** each outcome (one transaction): `sent` with the provider id; `failed` with the
   code (opt-outs revoke consent, invalid numbers are suppressed: rule 10); transient errors
   go back to `queued` with a `not_before` honouring Retry-After; a reply that may have been
   accepted (read timeout, dropped connection) is `unknown`. A status callback may come before
   this (found through our reference, `delivery-<pk>`, on the message): what it recorded stays,
   a `delivered` is not moved back to `sent` nor its provider id replaced.

Never twice (rule 8): only rows in an open status are claimed, and a row leaves `sending` only
to a final status or, for a transient error that proves the provider did not take the message,
back to `queued`. A crash after the provider call leaves the row in `sending`; upkeep later marks
it `unknown`. Duplicate or redelivered tasks find nothing to claim.
"""

from __future__ import annotations

import logging
import os
import threading
import time as clock
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, F, Max, Min, Q
from django.utils import timezone

from consent.intake.fallback import promotions_held
from consent.models import Channel, Consent, Contact
from consent.selectors import contact_get_by_phone, contact_may_receive_promotion, numbers_revoking_unapplied
from consent.services import consents_lock, provider_refusal_apply
from consent.webhooks.references import DELIVERY, twilio_status_callback
from messaging import lifecycle
from messaging.lifecycle import Outcome
from messaging.providers import OutgoingMessage, thread_provider

from . import content, policies, quiet_hours, services, throttle
from .conf import setting
from .models import (
    HANDED_OVER_STATUSES,
    OPEN_STATUSES,
    Broadcast,
    BroadcastStatus,
    Delivery,
    DeliveryStatus,
    SenderLock,
    SkipReason,
    WhenCapped,
)
from .sql import deliveries_mark_claimed

logger = logging.getLogger(__name__)

INBOUND_FALLBACK_RULE = "inbound-fallback"


# --- content --------------------------------------------------------------------------------


def outgoing_for(*, broadcast: Broadcast, phone: str, country: str, attributes: dict | None, reference: str) -> OutgoingMessage:
    """The provider message for one recipient, placeholders filled from the contact.

    Raises content.MissingAttributes when the contact lacks a placeholder that has no fallback.
    """
    values = content.contact_values(phone=phone, country=country, attributes=attributes)
    compiled = broadcast.compiled_content
    if broadcast.channel == Channel.WHATSAPP:
        return OutgoingMessage(to=phone, channel=broadcast.channel, template=compiled.render_template(values),
                               reference=reference)
    return OutgoingMessage(
        to=phone, channel=broadcast.channel, body=compiled.render_body(values), reference=reference,
        status_callback=twilio_status_callback(reference),
    )


# --- provider calls -------------------------------------------------------------------------


def send_one(message: OutgoingMessage) -> Outcome:
    """Hand one message to this thread's provider (its own keep-alive session) and classify what came back."""
    return lifecycle.send(thread_provider(message.channel), message)


_executor: ThreadPoolExecutor | None = None
_executor_key: tuple[int, int] | None = None  # (process id, threads) it was made for
_executor_lock = threading.Lock()


def _pool(size: int) -> ThreadPoolExecutor:
    """This process's sender threads (created after fork, never shared across processes)."""
    global _executor, _executor_key
    with _executor_lock:
        if _executor is None or _executor_key != (os.getpid(), size):
            _executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="broadcast-send")
            _executor_key = (os.getpid(), size)
        return _executor


def send_all(messages: list[OutgoingMessage]) -> list[Outcome]:
    concurrency = int(setting("BROADCAST_SEND_CONCURRENCY"))
    if concurrency <= 1 or len(messages) <= 1:
        return [send_one(m) for m in messages]
    return list(_pool(concurrency).map(send_one, messages))


# --- claim ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Recipient:
    """The contact fields the claim needs (read with the claimed row, no model instance)."""

    pk: int
    phone: str | None
    country: str
    timezone: str
    timezones: list | None
    attributes: dict | None


@dataclass
class Claim:
    delivery_id: int
    contact_id: int
    attempts: int
    message: OutgoingMessage
    deferrals: int = 0
    _contact: object = field(default=None, repr=False)

    @property
    def contact(self):
        """The consent.models.Contact, loaded only when needed (provider opt-outs, invalid numbers)."""
        if self._contact is None:
            self._contact = Contact.objects.get(pk=self.contact_id)
        return self._contact


@dataclass
class ClaimBatch:
    examined: int = 0
    claims: list[Claim] = field(default_factory=list)
    skipped: int = 0
    deferred: int = 0
    held: bool = False  # promotions are held (inbound fallback): nothing of the range may go now


def _zones(contact) -> tuple[str, ...]:
    zones = tuple(z for z in (contact.timezones or []) if isinstance(z, str) and z) or (contact.timezone or "UTC",)
    return zones


def _quiet_hours_until(contact, policy: policies.Policy, now: datetime, cache: dict) -> datetime | None:
    """None if the contact may be messaged now under its policy's window, else the next allowed instant
    (every zone of the number)."""
    zones = policies.zones_for(policy, _zones(contact))
    key = (policy.jurisdiction, zones, now)
    if key not in cache:
        cache[key] = _next_open(policy.window, zones, now, contact.pk)
    return cache[key]


def _next_open(window: quiet_hours.QuietHoursPolicy, zones: tuple[str, ...], now: datetime, contact_id=None) -> datetime | None:
    try:
        return None if quiet_hours.is_allowed(now, zones, window) else quiet_hours.next_allowed_instant(now, zones, window)
    except quiet_hours.NoAllowedWindowError:
        # The zones never share a window: fall back to the first zone, the contact's own (never drop it).
        return _next_open(window, zones[:1], now, contact_id) if len(zones) > 1 else None
    except (ValueError, KeyError):
        logger.warning("contact %s has unusable time zones %s; using UTC", contact_id, zones)
        return _next_open(window, ("UTC",), now, contact_id) if zones != ("UTC",) else None


def policy_book() -> policies.PolicyBook:
    """Every jurisdiction's policy under this brand's settings (checked at start: narrowing only)."""
    return policies.book(setting("BROADCAST_QUIET_HOURS"), setting("BROADCAST_CAPS"))


def sender_key(channel: str) -> str:
    """The sender whose limits (rate, WhatsApp messaging limit) every worker sending for it shares."""
    if channel == Channel.SMS:
        sender = settings.TWILIO_MESSAGING_SERVICE_SID or settings.TWILIO_FROM_NUMBER or "default"
    else:
        sender = settings.WHATSAPP_PHONE_NUMBER_ID or "default"
    return f"{channel}:{sender}"


def local_send_instant(broadcast: Broadcast, contact) -> datetime:
    """The first instant at or after the launch when the contact's wall clock reads `local_time`."""
    try:
        zone = ZoneInfo(contact.timezone or "UTC")
    except (ValueError, KeyError):
        zone = ZoneInfo("UTC")
    start = broadcast.launched_at or timezone.now()
    local_start = start.astimezone(zone)
    candidate = datetime.combine(local_start.date(), broadcast.local_time, tzinfo=zone)
    if candidate < start:
        candidate = datetime.combine(local_start.date() + timedelta(days=1), broadcast.local_time, tzinfo=zone)
    return candidate.astimezone(dt_timezone.utc)


# A delivery whose number has a revocation received and not applied yet waits this long, then is claimed
# again: by then the revocation is applied (and the delivery skipped) or was no revocation after all.
REVOCATION_PENDING_WAIT = timedelta(seconds=5)
REVOCATION_PENDING_RULE = "inbound-revocation-pending"


def _broadcast_status(broadcast_id: int) -> str | None:
    return Broadcast.objects.filter(pk=broadcast_id).values_list("status", flat=True).first()


_ROW_COLUMNS = ("pk", "contact_id", "attempts", "deferrals", "contact__phone", "contact__country", "contact__timezone",
                "contact__timezones", "contact__attributes")


class ClaimQueries:
    """The claim's two queries for one contact-id range of a broadcast, built once per send task.

    1. The due open rows of the range, while the broadcast is sending (read in the same statement),
       locked (`FOR UPDATE OF` the delivery rows only, `SKIP LOCKED`), with their contact's fields.
    2. The send-time gate for those rows' contacts (rule 7): the consent selector's own definition,
       `Consent.objects.promotable().current(now)`, with the sequence number of the ledger event that
       made each consent current (rule 14). No row in the answer: not allowed.

    Both run in the claim's transaction, the gate after the lock, so it sees every change committed
    before the rows were locked (and any committed since). Only the instant and the contact ids change
    from one claim to the next, so the time-free parts are built once here and each claim adds its
    instant: through the ORM, building the whole claim for every claim cost more CPU than a claim's
    share of its provider calls (bench/broadcast.py --smoke, 0 ms: 85 % of the delivered rate of a
    statement compiled once; in-process, 8-11 ms of CPU per 64-row claim against 5 ms this way).
    """

    def __init__(self, broadcast: Broadcast, lo: int, hi: int | None):
        sending = Broadcast.objects.filter(pk=broadcast.pk, status=BroadcastStatus.SENDING)
        rows = Delivery.objects.filter(Exists(sending), broadcast_id=broadcast.pk, contact_id__gt=lo,
                                       status__in=OPEN_STATUSES)
        if hi is not None:
            rows = rows.filter(contact_id__lte=hi)
        self.rows = rows.select_for_update(skip_locked=True, of=("self",)).order_by("contact_id")
        self.gate = Consent.objects.filter(topic_id=broadcast.topic_id, channel=broadcast.channel).order_by().promotable()

    def claimable(self, *, now: datetime, limit: int) -> list[tuple]:
        """(pk, contact_id, attempts, deferrals, authorising seq or None, phone, country, timezone, timezones,
        attributes) of up to `limit` due open rows, locked. Call inside the claim's transaction."""
        rows = list(self.rows.filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
                    .values_list(*_ROW_COLUMNS)[:limit])
        if not rows:
            return []
        authorised = dict(self.gate.filter(contact_id__in=[row[1] for row in rows]).current(now)
                          .values_list("contact_id", "current_event__seq"))
        return [(pk, contact_id, attempts, deferrals, authorised.get(contact_id), *fields)
                for pk, contact_id, attempts, deferrals, *fields in rows]


def claim_batch(*, broadcast: Broadcast, lo: int, hi: int | None, limit: int, now: datetime,
                queries: ClaimQueries | None = None) -> ClaimBatch | None:
    """Claim up to `limit` due open rows of the range, re-checking consent in the same transaction.

    None when the broadcast is no longer sending (paused, cancelled): the caller stops.

    Three statements for a batch that all goes out, in one transaction: the locking read of the due
    open rows and the send-time gate for their contacts (`ClaimQueries`, built once per send task:
    pass `queries`), and one UPDATE moving the claimed rows to `sending` and recording on each the
    ledger sequence number of the event that made its consent current (rule 14).

    Policies (rules 9, 12 and 13) are resolved per batch: each number's jurisdiction from a cache by
    area code or country, the windows from a cache per jurisdiction and zones. Caps cost two more
    statements, only when some row of the batch has a capped jurisdiction: its contacts are locked
    (so that two workers cannot both send the message that passes a cap), then their recent
    promotional messages are read in one query. The WhatsApp messaging limit likewise locks its
    sender's row and counts the day's recipients once per batch.
    """
    batch = ClaimBatch()
    queries = queries or ClaimQueries(broadcast, lo, hi)
    with transaction.atomic():
        rows = queries.claimable(now=now, limit=limit)
        batch.examined = len(rows)
        if not rows:
            return batch if _broadcast_status(broadcast.pk) == BroadcastStatus.SENDING else None
        if promotions_held():
            # Rule 7: a STOP kept in the inbound fallback is not applied yet and counts as applied, and
            # which numbers it holds is not known before the drain: every row waits (one Redis call).
            until = now + timedelta(seconds=float(settings.INBOUND_FALLBACK_HOLD_SECONDS))
            batch.deferred = Delivery.objects.filter(pk__in=[row[0] for row in rows]).update(
                status=DeliveryStatus.DEFERRED, not_before=until, rule=INBOUND_FALLBACK_RULE, status_at=now)
            batch.held = True
            return batch
        recent = {}
        if broadcast.frequency_cap:
            since = now - timedelta(days=int(setting("BROADCAST_FREQUENCY_WINDOW_DAYS")))
            recent = dict(
                Delivery.objects.filter(contact_id__in=[row[1] for row in rows], broadcast__topic_id=broadcast.topic_id,
                                        claimed_at__gte=since, status__in=HANDED_OVER_STATUSES)
                .exclude(broadcast_id=broadcast.pk).order_by().values_list("contact_id").annotate(n=Count("id"))
            )
        # Rule 7: a revocation received (rule 15) and not applied yet counts as applied here.
        held = numbers_revoking_unapplied([row[5] for row in rows], channel=broadcast.channel)
        book = policy_book()
        whatsapp = broadcast.channel == Channel.WHATSAPP
        skipped: dict[tuple[str, str], list[int]] = {}  # (reason, rule) → rows
        waits: dict[tuple[datetime, str], list[int]] = {}  # (until, rule) → rows deferred
        passing: list[tuple] = []  # (pk, attempts, deferrals, contact, authorized_by, policy)
        quiet_cache: dict = {}
        for pk, contact_id, attempts, deferrals, authorized_by, *fields in rows:
            contact = Recipient(contact_id, *fields)
            if contact.phone is None:
                skipped.setdefault((SkipReason.NO_NUMBER, ""), []).append(pk)
            elif authorized_by is None:
                skipped.setdefault((SkipReason.NOT_CURRENT, ""), []).append(pk)
            elif contact.phone in held:
                waits.setdefault((now + REVOCATION_PENDING_WAIT, REVOCATION_PENDING_RULE), []).append(pk)
            elif broadcast.frequency_cap and recent.get(contact_id, 0) >= broadcast.frequency_cap:
                skipped.setdefault((SkipReason.FREQUENCY_CAP, "broadcast-frequency-cap"), []).append(pk)
            elif whatsapp and contact.phone.startswith("+1"):
                # Rule 13: broadcasts are marketing templates, which Meta does not deliver to +1 numbers.
                skipped.setdefault((SkipReason.PLATFORM_RULE, "whatsapp-us-marketing"), []).append(pk)
            else:
                due = local_send_instant(broadcast, contact) if broadcast.local_time else None
                if due is not None and due > now:
                    waits.setdefault((due, "broadcast-local-time"), []).append(pk)
                    continue
                policy = book.for_number(contact.phone, contact.country)
                quiet_until = _quiet_hours_until(contact, policy, now, quiet_cache) if broadcast.respect_quiet_hours else None
                if quiet_until is not None and quiet_until > now:
                    waits.setdefault((quiet_until, policy.window_rule), []).append(pk)
                    continue
                passing.append((pk, attempts, deferrals, contact, authorized_by, policy))
        passing = _apply_caps(broadcast, passing, now, skipped, waits)
        if whatsapp:
            passing = _apply_messaging_limit(broadcast, passing, now, waits)
        claimed: list[tuple[int, int, int, Recipient, int, OutgoingMessage]] = []
        lacking: dict[str, list[int]] = {}  # missing placeholder names → rows skipped for them
        for pk, attempts, deferrals, contact, authorized_by, _ in passing:
            try:
                message = outgoing_for(broadcast=broadcast, phone=contact.phone, country=contact.country,
                                       attributes=contact.attributes, reference=f"{DELIVERY}-{pk}")
            except content.MissingAttributes as exc:
                # Rendered now, at the send: an attribute added while the row waited counts.
                lacking.setdefault(", ".join(exc.names), []).append(pk)
                continue
            claimed.append((pk, attempts, deferrals, contact, authorized_by, message))
        for (reason, rule), pks in skipped.items():
            # A row tried before (a transient error) keeps no authorisation: it never left.
            Delivery.objects.filter(pk__in=pks).update(status=DeliveryStatus.SKIPPED, skip_reason=reason, rule=rule,
                                                       status_at=now, authorized_by=None)
            batch.skipped += len(pks)
        for names, pks in lacking.items():
            Delivery.objects.filter(pk__in=pks).update(status=DeliveryStatus.SKIPPED, skip_reason=SkipReason.MISSING_ATTRIBUTE,
                                                       error_message=f"no value for {names}"[:255], status_at=now,
                                                       authorized_by=None)
            batch.skipped += len(pks)
        for (until, rule), pks in waits.items():
            Delivery.objects.filter(pk__in=pks).update(status=DeliveryStatus.DEFERRED, not_before=until, rule=rule,
                                                       status_at=now)
            batch.deferred += len(pks)
        if claimed:
            deliveries_mark_claimed([(pk, authorized_by) for pk, _, _, _, authorized_by, _ in claimed], now)
        for pk, attempts, deferrals, contact, _, message in claimed:
            batch.claims.append(Claim(delivery_id=pk, contact_id=contact.pk, attempts=attempts + 1, message=message,
                                      deferrals=deferrals))
    return batch


def _apply_caps(broadcast: Broadcast, passing: list[tuple], now: datetime, skipped: dict, waits: dict) -> list[tuple]:
    """The rows whose send passes every cap of their policy (rule 12); the others deferred to when the
    caps allow (inside the window, unless the broadcast lifts windows) or skipped, naming the cap's rule.

    Counted over the promotional messages handed to the provider (every broadcast, every channel) in
    the longest cap period, for the batch's capped contacts only, in one query, after locking those
    contacts in id order: a worker claiming for the same person waits here until this claim commits,
    and then counts what it handed over.
    """
    capped = sorted({row[3].pk for row in passing if row[5].caps})
    if not capped:
        return passing
    list(Contact.objects.select_for_update(no_key=True).filter(pk__in=capped).order_by("pk").values_list("pk", flat=True))
    since = now - max(policies.longest_period(row[5].caps) for row in passing if row[5].caps)
    history: dict[int, list[tuple[int, datetime]]] = {}
    for contact_id, topic_id, at in (Delivery.objects.filter(contact_id__in=capped, claimed_at__gt=since,
                                                             status__in=HANDED_OVER_STATUSES)
                                     .order_by().values_list("contact_id", "broadcast__topic_id", "claimed_at")):
        history.setdefault(contact_id, []).append((topic_id, at))
    kept = []
    for row in passing:
        contact, policy = row[3], row[5]
        wait = policies.cap_wait(policy.caps, history.get(contact.pk, ()), broadcast.topic_id, now) if policy.caps else None
        if wait is None:
            kept.append(row)
            continue
        until, rule = wait
        if broadcast.when_capped == WhenCapped.SKIP:
            skipped.setdefault((SkipReason.POLICY_CAP, rule), []).append(row[0])
            continue
        if broadcast.respect_quiet_hours:
            until = _next_open(policy.window, policies.zones_for(policy, _zones(contact)), until, contact.pk) or until
        waits.setdefault((until, rule), []).append(row[0])
    return kept


def _apply_messaging_limit(broadcast: Broadcast, passing: list[tuple], now: datetime, waits: dict) -> list[tuple]:
    """The rows within the WhatsApp messaging limit (rule 13: unique recipients per rolling 24 h across
    broadcasts, WHATSAPP_MESSAGING_LIMIT, 0 = unlimited); the new recipients beyond it deferred to when
    the first of the day's recipients ages out. Under the sender's lock row, so that claims on several
    workers never share out the same last slots."""
    limit = int(getattr(settings, "WHATSAPP_MESSAGING_LIMIT", 0) or 0)
    if limit <= 0 or not passing:
        return passing
    SenderLock.objects.select_for_update().get_or_create(key=sender_key(Channel.WHATSAPP))
    since = now - timedelta(hours=24)
    day = Delivery.objects.filter(broadcast__channel=Channel.WHATSAPP, claimed_at__gt=since, status__in=HANDED_OVER_STATUSES)
    ids = [row[3].pk for row in passing]
    known = set(day.filter(contact_id__in=ids).order_by().values_list("contact_id", flat=True).distinct())
    room = limit - day.order_by().values("contact_id").distinct().count()
    kept, beyond = [], []
    for row in passing:
        if row[3].pk in known:
            kept.append(row)
        elif room > 0:
            room -= 1
            kept.append(row)
        else:
            beyond.append(row[0])
    if beyond:
        first = (day.order_by().values("contact_id").annotate(last=Max("claimed_at")).aggregate(first=Min("last"))["first"])
        until = (first + timedelta(hours=24)) if first else now + timedelta(hours=24)
        waits.setdefault((max(until, now + timedelta(seconds=1)), "whatsapp-messaging-limit"), []).extend(beyond)
    return kept


# --- record ---------------------------------------------------------------------------------


@dataclass
class Recorded:
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    retried: int = 0
    deferred: int = 0
    retry_in: float | None = None
    rate_limited: bool = False


def _resumed_since_claim(broadcast: Broadcast) -> bool:
    """True if the broadcast is sending and was resumed after these rows were claimed.

    A resume re-queues the rows that failed on transient errors only, but rows in flight at that
    moment are still `sending` and escape it: recorded as failed afterwards, they would stay failed
    and the broadcast would complete without them. So the recorder asks, under the broadcast's row
    lock (taken by a resume too, and first, before any delivery row: no lock-order inversion),
    whether a resume committed since the claim: then the row goes back to `queued` as the resume
    would have put it. A resume that comes after this commit finds the rows failed and re-queues
    them itself. The count known to this task was read before its claim (when the send task loaded
    the broadcast, or at its last check here), so a resume is never missed; at worst a resume that
    landed just before a claim costs that claim's used-up rows one more round of attempts, safe
    because a transient error proves the provider did not take the message.
    """
    row = (Broadcast.objects.select_for_update().filter(pk=broadcast.pk)
           .values_list("status", "resumes").first())
    if row is None:
        return False
    status, resumes = row
    resumed = status == BroadcastStatus.SENDING and resumes != broadcast.resumes
    # Claims made from here on come after every resume counted so far.
    broadcast.resumes = resumes
    return resumed


def record_outcomes(*, broadcast: Broadcast, claims: list[Claim], outcomes: list[Outcome], now: datetime | None = None) -> Recorded:
    """Write each claimed row's outcome; provider opt-outs and invalid numbers act on consent (rule 10)."""
    now = now or timezone.now()
    recorded = Recorded()
    if outcomes and all(outcome.kind == "sent" for outcome in outcomes):
        # The common case is one UPDATE, atomic on its own: no BEGIN / COMMIT round trips.
        lifecycle.record_sent(Delivery, [(claim.delivery_id, outcome.provider_message_id)
                                         for claim, outcome in zip(claims, outcomes, strict=True)], now)
        recorded.sent = len(claims)
        return recorded
    max_attempts = int(setting("BROADCAST_MAX_ATTEMPTS"))
    used_up = any(outcome.kind == "retry" and claim.attempts >= max_attempts for claim, outcome in zip(claims, outcomes, strict=True))
    with transaction.atomic():
        resumed = used_up and _resumed_since_claim(broadcast)
        sent = []
        feedback = []  # (claim, outcome) whose error acts on consent, after every row is written
        for claim, outcome in zip(claims, outcomes, strict=True):
            if outcome.kind == "sent":
                sent.append((claim.delivery_id, outcome.provider_message_id))
                continue
            retry = outcome.kind == "retry" and (claim.attempts < max_attempts or resumed)
            fields = lifecycle.outcome_fields(outcome, now, retry=retry)
            if outcome.kind == "deferred":
                # Rule 13: held back by the provider for the person's sake (WhatsApp 131049). Not a failure,
                # no consent change, no attempt used: it waits longer each time, then goes through the gate again.
                delay = lifecycle.retry_delay(claim.deferrals, held_back=True)
                fields.update(not_before=now + timedelta(seconds=delay), rule="whatsapp-held-back",
                              deferrals=F("deferrals") + 1, attempts=max(0, claim.attempts - 1))
                recorded.deferred += 1
            elif retry:
                delay = lifecycle.retry_delay(claim.attempts - 1, outcome.retry_after)
                fields.update(not_before=now + timedelta(seconds=delay))
                if claim.attempts >= max_attempts:
                    # What the resume does to the rows it finds failed on transient errors only.
                    fields.update(attempts=0, retryable=False)
                recorded.retried += 1
                recorded.retry_in = delay if recorded.retry_in is None else min(recorded.retry_in, delay)
                recorded.rate_limited |= outcome.rate_limited
            elif outcome.kind == "unknown":
                recorded.unknown += 1
            else:
                # Retries used up on transient errors (429, 5xx, refused connections): the provider
                # never took the message, so resuming the broadcast may try it again.
                fields.update(retryable=outcome.kind == "retry")
                recorded.failed += 1
            lifecycle.record_outcome(Delivery, claim.delivery_id, fields)
            if outcome.kind in ("opted_out", "invalid"):
                feedback.append((claim, outcome))
        if sent:
            lifecycle.record_sent(Delivery, sent, now)
            recorded.sent = len(sent)
        # Consent changes come last, as the ledger wants (its head row is locked until commit), and
        # after the delivery rows, in the order a status callback takes the same locks. When one
        # change follows another, every consent they revoke is locked before the first appends.
        opted_out = [claim.contact for claim, outcome in feedback if outcome.kind == "opted_out"]
        if opted_out and len(feedback) > 1:
            consents_lock(contacts=opted_out, channel=broadcast.channel)
        for claim, outcome in feedback:
            evidence = {"provider_error_code": outcome.code, "broadcast_id": broadcast.pk, "delivery_id": claim.delivery_id}
            provider_refusal_apply(contact=claim.contact, channel=broadcast.channel, outcome=outcome.kind,
                                   evidence=evidence, now=now)
    return recorded


# --- one range ------------------------------------------------------------------------------


@dataclass
class RangeResult:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    deferred: int = 0
    retry_in: float | None = None
    stopped: bool = False


def throttle_key(channel: str) -> str:
    """The sender whose rate the throttle limits (every worker sending for it shares the key)."""
    return f"broadcast:{sender_key(channel)}"


def broadcast_send_range(*, broadcast_id: int, lo: int, hi: int | None) -> RangeResult:
    """Send every due open delivery of the broadcast with lo < contact_id <= hi. Safe to run twice."""
    result = RangeResult()
    broadcast = Broadcast.objects.select_related("topic").filter(pk=broadcast_id).first()
    if broadcast is None or broadcast.status != BroadcastStatus.SENDING:
        result.stopped = True
        return result
    rate = float((setting("BROADCAST_RATE_LIMITS") or {}).get(broadcast.channel) or 0)
    size = int(setting("BROADCAST_CLAIM_SIZE"))
    if rate > 0:
        size = max(1, min(size, int(rate / 10)))  # a claim is about a tenth of a second of the allowed rate
    key = throttle_key(broadcast.channel)
    queries = ClaimQueries(broadcast, lo, hi)
    touched = clock.monotonic()
    while True:
        if rate > 0:
            throttle.wait_and_acquire(key, rate, size, burst=size)
        now = timezone.now()
        batch = claim_batch(broadcast=broadcast, lo=lo, hi=hi, limit=size, now=now, queries=queries)
        if batch is None:
            result.stopped = True
            break
        if batch.examined == 0:
            break
        result.skipped += batch.skipped
        result.deferred += batch.deferred
        if batch.held:
            # Deferring the rest of the range row by row, at the send rate, would keep this worker from the
            # drain that ends the hold: the deferred rows are woken again as any deferred row is.
            break
        if batch.claims:
            result.claimed += len(batch.claims)
            outcomes = send_all([claim.message for claim in batch.claims])
            recorded = record_outcomes(broadcast=broadcast, claims=batch.claims, outcomes=outcomes)
            result.sent += recorded.sent
            result.deferred += recorded.deferred
            result.failed += recorded.failed
            result.unknown += recorded.unknown
            if recorded.retry_in is not None:
                result.retry_in = recorded.retry_in if result.retry_in is None else min(result.retry_in, recorded.retry_in)
            if recorded.rate_limited:
                break  # the provider asked us to slow down: come back after Retry-After
            # Judged on the whole broadcast, not this task's share: with jittered retries the failures of
            # an outage are spread over many tasks, none of which alone sees the minimum sample.
            if recorded.failed and services.broadcast_check_error_rate(broadcast_id=broadcast.pk):
                result.stopped = True
                break
        if batch.examined < size:
            # The claim found every due open row of the range that no other task holds: one more would
            # find none (what it put back to wait is not due yet), so it is not made.
            break
        if clock.monotonic() - touched >= 1.0:
            Broadcast.objects.filter(pk=broadcast.pk).update(progress_at=timezone.now())
            touched = clock.monotonic()
    Broadcast.objects.filter(pk=broadcast.pk).update(progress_at=timezone.now())
    if not result.stopped and result.retry_in is None:
        services.broadcast_finish_if_done(broadcast_id=broadcast.pk)
    return result


# --- test send ------------------------------------------------------------------------------


def broadcast_test_send(*, broadcast: Broadcast, phone: str, now: datetime | None = None) -> dict:
    """Send the broadcast's content once to one contact whose consent is current (no delivery row).

    The consent gate applies as to any promotional message; quiet hours do not (a person asked
    for it). Returns what was sent and the provider's message id.
    """
    now = now or timezone.now()
    contact = contact_get_by_phone(phone)
    if contact is None:
        raise ValidationError({"phone": "No contact with this phone number."})
    if not contact_may_receive_promotion(contact_id=contact.pk, topic_id=broadcast.topic_id, channel=broadcast.channel, now=now):
        raise ValidationError({"phone": f"This contact has no current {broadcast.channel} consent for {broadcast.topic.slug}."})
    if promotions_held():
        raise ValidationError({"phone": "Webhooks received during a database outage are still being applied "
                                        "(one may be this contact's STOP): try again in a few seconds."})
    if numbers_revoking_unapplied([contact.phone], channel=broadcast.channel):
        raise ValidationError({"phone": "A revocation from this number was received and is being applied."})
    try:
        message = outgoing_for(broadcast=broadcast, phone=contact.phone, country=contact.country,
                               attributes=contact.attributes, reference=f"broadcast-{broadcast.pk}-test")
    except content.MissingAttributes as exc:
        raise ValidationError({"phone": f"This contact has no value for {exc}, and the placeholder has no fallback: "
                                        "the broadcast would skip it."}) from None
    outcome = send_one(message)
    if outcome.kind != "sent":
        raise ValidationError({"phone": f"The provider refused the test message: {outcome.code} {outcome.message}".strip()})
    return {"phone": contact.phone, "channel": broadcast.channel, "body": message.body, "template": message.template,
            "provider_message_id": outcome.provider_message_id}

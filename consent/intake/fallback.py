"""The inbound fallback: verified webhooks kept in Redis while the database cannot be reached (rule 15).

A verified inbound message is normally recorded at intake (one INSERT of its receipt) before its
200. When that write fails because the database cannot be reached, its intake record (the same
JSON shape, consent/intake/records.py, with its received_at) is appended here instead, to a Redis
stream in arrival order, and the provider still gets its 200. Status callbacks and WhatsApp
updates, applied in the request when the database answers, are kept here the same way.

The drain moves entries back in stream order, many per transaction: each kept record is inserted
into the intake table (idempotently: a receipt already there is not duplicated) and each kept update
applied, and the entries are deleted from the stream only after that transaction committed, so a
crash in between only inserts them again, which is a no-op. The intake's applier then applies the
receipts as it applies any other; the drain applies no effect of a message itself.

While the stream holds anything, promotional sends wait (`promotions_held`) and new webhooks join
the end of the stream (`fallback_pending`), so that a number's STOP kept here reaches the intake
table, and so the applier, before any later message of theirs, and no promotional message goes to
them before the STOP counts at the send-time gate.

Without REDIS_URL (the embedded default) there is no fallback: the webhook answers 503 when its own
store cannot be written. Every Redis call has a timeout (INBOUND_FALLBACK_TIMEOUT).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

# What a failed write means "the database cannot be reached" (Django wraps the driver's errors in these).
DATABASE_UNREACHABLE = (OperationalError, InterfaceError)
FORMAT = 2  # the entry format, stored with each entry (1: whole webhooks, applied by the drain; none left)
DRAIN_BATCH = 200  # entries per drain transaction
DRAIN_LOCK_SECONDS = 10  # renewed after every batch; a killed drain blocks the next one this long
SET_ASIDE = ":set-aside"  # the stream of entries the drain could not apply, beside the fallback's own


class FallbackUnavailable(Exception):
    """No fallback is configured, or Redis could not be reached or did not answer in time."""


@dataclass(frozen=True)
class Entry:
    """One verified webhook (or part of one) kept in the fallback: its kind and its payload."""

    kind: str  # "record" (an intake record's JSON) | "twilio_status" | "whatsapp_updates" (consent/webhooks/accepted.py)
    payload: dict
    received_at: str  # ISO 8601, when the web process kept it
    stream_id: str = ""


_clients: dict[str, redis.Redis] = {}


def configured() -> bool:
    """True when the service has a fallback (REDIS_URL is set)."""
    return bool(settings.REDIS_URL)


def _client() -> redis.Redis:
    if not configured():
        raise FallbackUnavailable("no REDIS_URL: the embedded default has no inbound fallback")
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        timeout = float(settings.INBOUND_FALLBACK_TIMEOUT)
        client = _clients[url] = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return client


def _key(suffix: str = "") -> str:
    return settings.INBOUND_FALLBACK_KEY + suffix


def _call(what: str, function, *args):
    try:
        return function(*args)
    except redis.RedisError as exc:
        raise FallbackUnavailable(f"{what}: {exc}") from exc


def fallback_append(entries: list[tuple[str, dict]]) -> list[str]:
    """Keep (kind, payload) entries of one verified webhook, all or none, in order; their stream ids.

    FallbackUnavailable when they could not be kept.
    """
    kept_at = timezone.now().isoformat()
    pipe = _client().pipeline(transaction=True)
    for kind, payload in entries:
        pipe.xadd(_key(), {"entry": json.dumps({"v": FORMAT, "kind": kind, "payload": payload, "received_at": kept_at},
                                               separators=(",", ":"))})
    return [_text(stream_id) for stream_id in _call("append", pipe.execute)]


def fallback_depth() -> int:
    """How many webhooks wait in the fallback (FallbackUnavailable when it cannot be read)."""
    return int(_call("depth", _client().xlen, _key()))


def fallback_pending() -> bool:
    """True when webhooks wait in the fallback: a new one must then join them, not overtake them.

    Unknowable (Redis unreachable): False, since the database write is then the only durable one left.
    """
    return _waiting(when_unreadable=False, why="webhooks go to the database")


def promotions_held() -> bool:
    """True while promotional sends must wait: webhooks wait in the fallback, or it cannot be read.

    One Redis call. Unreadable counts as held: a STOP may be waiting there (rule 7), and the
    deliveries only wait (INBOUND_FALLBACK_HOLD_SECONDS at a time), they are not dropped.
    """
    return _waiting(when_unreadable=True, why="promotional sends held")


def _waiting(*, when_unreadable: bool, why: str) -> bool:
    if not configured():
        return False
    try:
        return fallback_depth() > 0
    except FallbackUnavailable as exc:
        logger.warning("inbound fallback cannot be read (%s): %s", exc, why)
        return when_unreadable


def inbound_backlog() -> dict:
    """What /readyz/ shows of inbound: webhooks waiting in the fallback and set aside by its drain.

    Each is a count, "unreachable" when Redis does not answer, or null without a fallback (no REDIS_URL).
    """
    if not configured():
        return {"fallback": None, "fallback_set_aside": None}
    pipe = _client().pipeline(transaction=False)
    pipe.xlen(_key())
    pipe.xlen(_key(SET_ASIDE))
    try:
        waiting, set_aside = _call("depth", pipe.execute)
    except FallbackUnavailable:
        return {"fallback": "unreachable", "fallback_set_aside": "unreachable"}
    return {"fallback": int(waiting), "fallback_set_aside": int(set_aside)}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(raw_id, fields: dict) -> Entry | None:
    try:
        raw = json.loads(fields[b"entry"])
        return Entry(kind=raw["kind"], payload=raw["payload"], received_at=raw["received_at"], stream_id=_text(raw_id))
    except (KeyError, TypeError, ValueError):
        return None


def _set_aside(client: redis.Redis, stream_id: str, fields: dict, reason: str) -> None:
    """Move an entry the drain cannot apply to the `:set-aside` stream with the reason, for a person to read."""
    pipe = client.pipeline(transaction=True)
    pipe.xadd(_key(SET_ASIDE), {**fields, "reason": reason[:500], "id": stream_id})
    pipe.xdel(_key(), stream_id)
    _call("set aside", pipe.execute)


def fallback_drain(*, take: Callable[[Entry], None], batch: int = DRAIN_BATCH) -> int:
    """Hand the fallback's entries to `take` in stream order, `batch` per transaction; how many it took.

    Each batch's entries are deleted from the stream only after its transaction committed. One drain
    at a time (a Redis lock with an expiry, renewed after every batch, so that a killed drain does not
    block the next for long). Stops at the first database error, the batch staying first in line, and
    raises it; an entry `take` refuses for any other reason (each has its own savepoint) is set aside
    in the `:set-aside` stream with the reason, never dropped.
    """
    if not configured():
        return 0
    client = _client()
    lock = client.lock(_key(":drain"), timeout=DRAIN_LOCK_SECONDS)
    if not _call("lock", lambda: lock.acquire(blocking=False)):
        return 0
    taken = 0
    try:
        while rows := _call("read", client.xrange, _key(), "-", "+", batch):
            done: list[str] = []
            refused: list[tuple[str, dict, str]] = []  # (stream id, fields, reason)
            with transaction.atomic():
                for raw_id, fields in rows:
                    entry = _decode(raw_id, fields)
                    if entry is None:
                        refused.append((_text(raw_id), fields, "unreadable entry"))
                        continue
                    try:
                        with transaction.atomic():
                            take(entry)
                    except DATABASE_UNREACHABLE:
                        raise
                    except Exception as exc:  # a payload this version cannot take: kept aside, never dropped
                        logger.exception("inbound fallback entry %s set aside", entry.stream_id)
                        refused.append((entry.stream_id, fields, f"{type(exc).__name__}: {exc}"))
                        continue
                    done.append(entry.stream_id)
            # Committed: only now may the entries leave Redis.
            if done:
                _call("delete", client.xdel, _key(), *done)
            for stream_id, fields, reason in refused:
                _set_aside(client, stream_id, fields, reason)
            taken += len(done)
            _call("lock", lock.reacquire)
    finally:
        with contextlib.suppress(redis.RedisError):  # expired meanwhile: another drain may hold it now
            lock.release()
    if taken:
        logger.info("inbound fallback: %d entries moved from Redis to the database", taken)
    return taken

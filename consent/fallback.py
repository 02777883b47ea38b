"""The inbound fallback: verified webhooks kept in Redis while the database cannot be reached (rule 15).

A webhook whose signature verified and whose payload parsed is normally written to the database
before its 200. When that write fails because the database cannot be reached, the verified payload
is appended here instead (a Redis stream, in arrival order) and the provider still gets its 200.
The drain moves the entries back, oldest first, once the database answers: each entry is applied
through the webhook's own path inside a transaction, and deleted from the stream only after that
transaction committed, so a crash in between applies it again, which is a no-op (one record per
provider message id). While the stream holds anything, promotional sends wait
(`promotions_held`) and new webhooks join the end of the stream, so that a number's STOP kept here
is applied before any later message of theirs and before any promotional message to them.

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
FORMAT = 1  # the entry format, stored with each entry
DRAIN_BATCH = 50
DRAIN_LOCK_SECONDS = 10  # renewed after every batch; a killed drain blocks the next one this long
SET_ASIDE = ":set-aside"  # the stream of entries the drain could not apply, beside the fallback's own


class FallbackUnavailable(Exception):
    """No fallback is configured, or Redis could not be reached or did not answer in time."""


@dataclass(frozen=True)
class Entry:
    """One verified webhook kept in the fallback: its kind, its payload as the parser takes it."""

    kind: str  # "twilio_inbound" | "twilio_status" | "whatsapp"
    payload: dict
    received_at: str  # ISO 8601, when the web process took it
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


def fallback_append(*, kind: str, payload: dict) -> str:
    """Keep one verified webhook; its stream id. FallbackUnavailable when it could not be kept."""
    entry = json.dumps({"v": FORMAT, "kind": kind, "payload": payload, "received_at": timezone.now().isoformat()},
                       separators=(",", ":"))
    return _text(_call("append", _client().xadd, _key(), {"entry": entry}))


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


def fallback_drain(*, apply: Callable[[Entry], None], batch: int = DRAIN_BATCH) -> int:
    """Apply the fallback's entries in order, each in its own transaction, removing each after its commit.

    One drain at a time (a Redis lock with an expiry, so that a killed drain does not block the next).
    Stops at the first database error, the entry staying first in line, and raises it; an entry that
    cannot be applied for any other reason is set aside in the `:set-aside` stream. Returns how many
    entries it applied.
    """
    if not configured():
        return 0
    client = _client()
    lock = client.lock(_key(":drain"), timeout=DRAIN_LOCK_SECONDS)
    if not _call("lock", lambda: lock.acquire(blocking=False)):
        return 0
    applied = 0
    try:
        while rows := _call("read", client.xrange, _key(), "-", "+", batch):
            for raw_id, fields in rows:
                entry = _decode(raw_id, fields)
                if entry is None:
                    _set_aside(client, _text(raw_id), fields, "unreadable entry")
                    continue
                try:
                    with transaction.atomic():
                        apply(entry)
                except DATABASE_UNREACHABLE:
                    raise
                except Exception as exc:  # a payload this version cannot apply: kept aside, never dropped
                    logger.exception("inbound fallback entry %s set aside", entry.stream_id)
                    _set_aside(client, entry.stream_id, fields, f"{type(exc).__name__}: {exc}")
                    continue
                _call("delete", client.xdel, _key(), entry.stream_id)
                applied += 1
            _call("lock", lock.reacquire)
    finally:
        with contextlib.suppress(redis.RedisError):  # expired meanwhile: another drain may hold it now
            lock.release()
    if applied:
        logger.info("inbound fallback: %d webhooks applied from Redis", applied)
    return applied

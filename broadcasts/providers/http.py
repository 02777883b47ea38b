"""HTTP plumbing shared by the provider clients: sessions, Retry-After, transport errors."""

from __future__ import annotations

import email.utils
import math
import os
import threading
from datetime import datetime, timezone

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .base import TransientProviderError


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # HTTP-dates are always GMT
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def transport_error(exc: requests.RequestException, provider: str) -> TransientProviderError:
    """A TransientProviderError for a failed HTTP exchange, marking whether the request may have arrived.

    A connect timeout or a refused connection never reached the provider: retrying is safe.
    A read timeout or a connection dropped mid-response may have been accepted by the provider,
    so the error carries `outcome_unknown = True`; a caller that must never send twice
    (DESIGN rule 8) should mark such a delivery `unknown` rather than resend it.
    """
    if isinstance(exc, requests.ConnectTimeout):
        code, unknown = "connect_timeout", False
    elif isinstance(exc, requests.Timeout):
        code, unknown = "read_timeout", True
    elif isinstance(exc, requests.ConnectionError):
        # requests wraps urllib3's MaxRetryError, whose `reason` says what failed. A failure to
        # open the connection (refused, DNS) is safe to retry; anything later (reset, remote
        # disconnect, including a kept-alive socket the server had just closed) may not be.
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(reason, urllib3.exceptions.NewConnectionError):
            code, unknown = "connection_refused", False
        else:
            code, unknown = "connection_error", True
    else:
        code, unknown = "request_error", True
    error = TransientProviderError(f"{provider}: {code}: {exc}", code=code)
    error.outcome_unknown = unknown
    return error


_per_process: dict = {}
_per_process_lock = threading.Lock()


def per_process(key: tuple, factory):
    """One instance per (process, key): keeps keep-alive connections across get_provider() calls.

    Keyed by pid so that a forked worker (Celery prefork) never reuses its parent's sockets,
    and by the configuration so that changed settings (tests) get a fresh client.
    """
    key = (os.getpid(), *key)
    with _per_process_lock:
        instance = _per_process.get(key)
        if instance is None:
            if len(_per_process) > 32:  # settings changed many times (tests): forget old clients
                _per_process.clear()
            instance = _per_process[key] = factory()
        return instance


def new_session(pool_maxsize: int = 10) -> requests.Session:
    """A keep-alive session that never retries by itself (a retried POST could send twice)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def post(session: requests.Session, url: str, *, provider: str, timeout, **kwargs) -> requests.Response:
    """POST once (never retried here); a transport failure becomes the TransientProviderError it means."""
    try:
        return session.post(url, timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        raise transport_error(exc, provider) from exc


def json_object(response: requests.Response) -> dict:
    """The reply's JSON object, or {} when the body is not one (providers' error pages are HTML)."""
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}

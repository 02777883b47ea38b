"""HTTP plumbing shared by the provider clients: one urllib3 pool per client, Retry-After, transport errors.

The clients talk to urllib3 directly rather than through `requests`: a broadcast makes one POST per
recipient, and `requests` spends about half a millisecond of CPU per call on work these calls do not
need (environment proxy look-ups, cookie jars, hooks, request preparation); urllib3 costs a fraction
of it. What `requests` did that matters is kept: keep-alive pooling, certificate verification against
certifi's bundle, proxies from the environment (read once, when the client is made), and a timeout
(connect, read) on every call. Nothing is ever retried or redirected here: a retried POST could send
twice.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import threading
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlencode, urlsplit

import urllib3

from .base import TransientProviderError

USER_AGENT = "consent-manager/1 (+urllib3)"


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


def transport_error(exc: Exception, provider: str) -> TransientProviderError:
    """A TransientProviderError for a failed HTTP exchange, marking whether the request may have arrived.

    A connect timeout or a refused connection never reached the provider: retrying is safe.
    A read timeout or a connection dropped mid-response may have been accepted by the provider,
    so the error carries `outcome_unknown = True`; a caller that must never send twice
    (DESIGN rule 8) should mark such a delivery `unknown` rather than resend it.
    """
    errors = urllib3.exceptions
    # NewConnectionError (refused, DNS) subclasses ConnectTimeoutError: test it first.
    if isinstance(exc, errors.NewConnectionError):
        code, unknown = "connection_refused", False
    elif isinstance(exc, errors.ConnectTimeoutError):
        code, unknown = "connect_timeout", False
    elif isinstance(exc, errors.TimeoutError):
        code, unknown = "read_timeout", True
    elif isinstance(exc, (errors.ProtocolError, errors.SSLError, errors.ProxyError, OSError)):
        # Anything after the connection opened (reset, remote disconnect, including a kept-alive
        # socket the server had just closed) may have delivered the request: never resend.
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


def _ca_certs() -> str | None:
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi is pinned in requirements.txt
        return None
    return certifi.where()


def _proxy_for(url: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) names for `url`, as requests would pick it."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
        return None
    return proxy


@dataclass
class Reply:
    """What came back: status, reason, headers (case-insensitive) and the raw body."""

    status: int
    reason: str
    headers: urllib3.HTTPHeaderDict
    data: bytes

    def json_object(self) -> dict:
        """The reply's JSON object, or {} when the body is not one (providers' error pages are HTML)."""
        try:
            payload = json.loads(self.data)
        except ValueError:
            return {}
        return payload if isinstance(payload, dict) else {}


class HttpClient:
    """One keep-alive connection pool to one provider endpoint (`url`), with fixed headers.

    Thread-safe: urllib3 pools lock their connection queue. Not to be shared across a fork:
    create it after the worker process starts (get_provider() does), not at import.
    """

    def __init__(self, url: str, *, timeout, headers: dict[str, str] | None = None, pool_maxsize: int = 10):
        self.url = url
        parts = urlsplit(url)
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        if isinstance(timeout, (tuple, list)):
            connect, read = timeout
        else:
            connect = read = timeout
        self.timeout = urllib3.Timeout(connect=float(connect), read=float(read))
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": "gzip, deflate",
                        **(headers or {})}
        options = {"maxsize": pool_maxsize, "block": False, "retries": False, "timeout": self.timeout}
        if parts.scheme == "https":
            options.update(cert_reqs="CERT_REQUIRED", ca_certs=_ca_certs())
        proxy = _proxy_for(url)
        if proxy:
            # The manager picks the request form (an absolute URL for http, a CONNECT tunnel for https).
            self._manager = urllib3.ProxyManager(proxy, num_pools=1, **options)
            self.pool = self._manager.connection_from_url(url)
            self._urlopen, self._target = self._manager.urlopen, url
        else:
            self._manager = None
            self.pool = urllib3.connection_from_url(url, **options)
            self._urlopen, self._target = self.pool.urlopen, self.path

    def post(self, body: bytes, content_type: str, *, provider: str) -> Reply:
        """POST once (never retried, never redirected); a transport failure becomes the TransientProviderError it means."""
        headers = dict(self.headers)
        headers["Content-Type"] = content_type
        try:
            response = self._urlopen("POST", self._target, body=body, headers=headers, retries=False, redirect=False,
                                     timeout=self.timeout, preload_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise transport_error(exc, provider) from exc
        return Reply(response.status, response.reason or "", response.headers, response.data)

    def post_form(self, form: dict[str, str], *, provider: str) -> Reply:
        return self.post(urlencode(form).encode(), "application/x-www-form-urlencoded", provider=provider)

    def post_json(self, payload, *, provider: str) -> Reply:
        return self.post(json.dumps(payload, separators=(",", ":")).encode(), "application/json", provider=provider)

    def close(self) -> None:
        self.pool.close()
        if self._manager is not None:
            self._manager.clear()

"""HTTP plumbing shared by the provider clients: keep-alive connections, Retry-After, transport errors.

The clients speak HTTP/1.1 through the standard library's http.client, with a small pool of
kept-alive connections per client, rather than through `requests` (or urllib3, which requests
sits on): a broadcast makes one POST per recipient, and each layer above http.client costs CPU
per call that these calls do not need (requests ~0.5 ms: environment proxy look-ups, cookies,
hooks; urllib3 ~0.1 ms more than http.client alone). What those layers did that matters is kept:
keep-alive pooling with a check that a pooled connection was not closed by the server before it is
reused, certificate verification against certifi's bundle, proxies from the environment (read once,
when the client is made), and a (connect, read) timeout on every call. Nothing is ever retried or
redirected here: a retried POST could send twice.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import math
import os
import select
import socket
import ssl
import threading
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import unquote, urlencode, urlsplit

from .base import TransientProviderError

USER_AGENT = "consent-manager/1"


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


class TransportError(Exception):
    """A failed HTTP exchange: `code` says what failed, `unknown` whether the request may have arrived."""

    def __init__(self, code: str, unknown: bool, cause: BaseException):
        super().__init__(f"{code}: {cause}")
        self.code = code
        self.unknown = unknown


def transport_error(exc: TransportError, provider: str) -> TransientProviderError:
    """A TransientProviderError for a failed HTTP exchange, marking whether the request may have arrived.

    A connect timeout or a refused connection never reached the provider: retrying is safe.
    A read timeout or a connection dropped mid-response may have been accepted by the provider,
    so the error carries `outcome_unknown = True`; a caller that must never send twice
    (DESIGN rule 8) should mark such a delivery `unknown` rather than resend it.
    """
    error = TransientProviderError(f"{provider}: {exc}", code=exc.code)
    error.outcome_unknown = exc.unknown
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


def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi is pinned in requirements.txt
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def _proxy_for(url: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) names for `url`, as requests would pick it."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether a kept-alive connection was closed (or spoke out of turn) while it sat in the pool."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


@dataclass
class Reply:
    """What came back: status, reason, headers (case-insensitive `get`) and the raw body."""

    status: int
    reason: str
    headers: object
    data: bytes

    def json_object(self) -> dict:
        """The reply's JSON object, or {} when the body is not one (providers' error pages are HTML)."""
        try:
            payload = json.loads(self.data)
        except ValueError:
            return {}
        return payload if isinstance(payload, dict) else {}


class HttpClient:
    """Keep-alive HTTP/1.1 connections (at most `pool_maxsize` kept idle) to one provider endpoint (`url`).

    Thread-safe: a connection is used by one thread at a time, the idle list is locked. Not to be
    shared across a fork: create it after the worker process starts (get_provider() does).
    """

    def __init__(self, url: str, *, timeout, headers: dict[str, str] | None = None, pool_maxsize: int = 10):
        self.url = url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if isinstance(timeout, (tuple, list)):
            connect, read = timeout
        else:
            connect = read = timeout
        self.connect_timeout, self.read_timeout = float(connect), float(read)
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        self.pool_maxsize = max(1, int(pool_maxsize))
        self._context = _ssl_context() if self.https else None
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self.connections_made = 0
        self.proxy = None
        self._target = self.path
        proxy = _proxy_for(url)
        if proxy:
            proxy_parts = urlsplit(proxy)
            self.proxy = (proxy_parts.hostname, proxy_parts.port or 80)  # spoken to in plain HTTP, as requests does
            self._proxy_headers = {}
            if proxy_parts.username:
                credentials = f"{unquote(proxy_parts.username)}:{unquote(proxy_parts.password or '')}"
                self._proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
            if not self.https:  # plain HTTP through a proxy: the request line names the whole URL
                self._target = url
                self.headers.update(self._proxy_headers)

    def _new_connection(self) -> http.client.HTTPConnection:
        if self.proxy is None:
            if self.https:
                return http.client.HTTPSConnection(self.host, self.port, timeout=self.connect_timeout, context=self._context)
            return http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
        proxy_host, proxy_port = self.proxy
        if self.https:  # a CONNECT tunnel through the proxy, then TLS with the provider inside it
            conn = http.client.HTTPSConnection(proxy_host, proxy_port, timeout=self.connect_timeout, context=self._context)
            conn.set_tunnel(self.host, self.port, headers=self._proxy_headers)
            return conn
        return http.client.HTTPConnection(proxy_host, proxy_port, timeout=self.connect_timeout)

    def _checkout(self) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._new_connection()
                try:
                    conn.connect()
                except TimeoutError as exc:
                    conn.close()
                    raise TransportError("connect_timeout", False, exc) from exc
                except (ConnectionRefusedError, socket.gaierror) as exc:
                    conn.close()
                    raise TransportError("connection_refused", False, exc) from exc
                except (OSError, http.client.HTTPException) as exc:  # unreachable, TLS or proxy refusal: nothing sent
                    conn.close()
                    raise TransportError("connect_error", False, exc) from exc
                self.connections_made += 1
                conn.sock.settimeout(self.read_timeout)
                return conn
            if not _dropped(conn):
                return conn
            conn.close()  # the server closed it while it sat idle: never send on it

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.pool_maxsize:
                self._idle.append(conn)
                return
        conn.close()

    def post(self, body: bytes, content_type: str, *, provider: str) -> Reply:
        """POST once (never retried, never redirected); a transport failure becomes the TransientProviderError it means."""
        headers = dict(self.headers)
        headers["Content-Type"] = content_type
        try:
            conn = self._checkout()
            try:
                conn.request("POST", self._target, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except TimeoutError as exc:
                conn.close()
                raise TransportError("read_timeout", True, exc) from exc
            except (OSError, http.client.HTTPException) as exc:
                # Reset, remote disconnect, broken reply: the request may have arrived. Never resend.
                conn.close()
                raise TransportError("connection_error", True, exc) from exc
        except TransportError as exc:
            raise transport_error(exc, provider) from exc
        if response.will_close:
            conn.close()
        else:
            self._checkin(conn)
        return Reply(response.status, response.reason or "", response.headers, data)

    def post_form(self, form: dict[str, str], *, provider: str) -> Reply:
        return self.post(urlencode(form).encode(), "application/x-www-form-urlencoded", provider=provider)

    def post_json(self, payload, *, provider: str) -> Reply:
        return self.post(json.dumps(payload, separators=(",", ":")).encode(), "application/json", provider=provider)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

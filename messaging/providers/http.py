"""HTTP plumbing shared by the provider clients: a keep-alive requests.Session per client, Retry-After,
transport errors.

Each client owns one `requests.Session` with an `HTTPAdapter` whose pool holds as many kept-alive
connections as the calls it may have in flight (`pool_maxsize`), `max_retries=0` and no redirects:
a retried or redirected POST could send a message twice. TLS is verified against certifi's bundle
and proxies come from the environment (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE...), both by
requests' own defaults (`verify=True`, `trust_env=True`). Every call has a (connect, read) timeout.

A broadcast makes one POST per recipient, so the per-call work is kept to what requests must do:
the request is prepared once per client (URL, fixed headers, auth) and only the body changes per
call, and the environment settings are resolved once per client with requests' own
`Session.merge_environment_settings` (the "prepared requests" pattern of requests' documentation)
rather than on every call.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import ssl
import threading
from datetime import datetime, timezone
from urllib.parse import urlencode

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter

from .base import TransientProviderError

try:
    from urllib3.util.ssl_match_hostname import CertificateError as _HostnameMismatch
except ImportError:  # pragma: no cover - urllib3 without its own hostname matcher
    _HostnameMismatch = ssl.CertificateError

USER_AGENT = f"consent-manager/1 {requests.utils.default_user_agent()}"  # e.g. "consent-manager/1 python-requests/2.34.2"
# Provider calls in flight at once per worker process; settings may override it (BROADCAST_SEND_CONCURRENCY).
SEND_CONCURRENCY_DEFAULT = 32


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


def _reason(exc: requests.RequestException):
    """The urllib3 error behind a requests exception (requests wraps urllib3's MaxRetryError)."""
    inner = exc.args[0] if exc.args else None
    return getattr(inner, "reason", inner)


# OpenSSL reasons (`ssl.SSLError.reason`) that only negotiating a connection raises: alerts RFC 8446
# §6.2 defines for the handshake, and no protocol, cipher or parameters in common. A reason a broken
# record can also raise (WRONG_VERSION_NUMBER, BAD_RECORD_MAC, an EOF) is not one of them.
TLS_HANDSHAKE_REASONS = frozenset({
    "SSLV3_ALERT_HANDSHAKE_FAILURE",  # handshake_failure (40): no acceptable security parameters
    "TLSV1_ALERT_PROTOCOL_VERSION",  # protocol_version (70)
    "TLSV1_ALERT_INSUFFICIENT_SECURITY",  # insufficient_security (71)
    "TLSV1_ALERT_INAPPROPRIATE_FALLBACK",  # inappropriate_fallback (86)
    "TLSV1_UNRECOGNIZED_NAME",  # unrecognized_name (112): the server name we asked for
    "TLSV1_ALERT_NO_APPLICATION_PROTOCOL",  # no_application_protocol (120)
    "TLSV1_ALERT_DECRYPT_ERROR",  # decrypt_error (51): a handshake signature or Finished that failed
    "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE",  # our own side: nothing in common
    "DH_KEY_TOO_SMALL", "UNSAFE_LEGACY_RENEGOTIATION_DISABLED",  # the server's key exchange refused
})


def _tls_failed_before_sending(exc: requests.exceptions.SSLError) -> bool:
    """Whether a TLS error happened while the connection was being set up (nothing sent yet).

    Decided from what the exceptions carry: a certificate the bundle does not trust or a name that
    does not match (`ssl.SSLCertVerificationError`, urllib3's `CertificateError`), or an OpenSSL
    reason only a handshake raises (TLS_HANDSHAKE_REASONS). Any other TLS error (a bad record, an
    abrupt EOF, a reason we do not know) may have come after the request left: the outcome is unknown.
    Left open: a TLS 1.2 server renegotiating mid-reply (TLS 1.3 has no renegotiation) raises those late.
    """
    error = _reason(exc)
    while error is not None:
        if isinstance(error, (ssl.SSLCertVerificationError, _HostnameMismatch)):
            return True
        if isinstance(error, ssl.SSLError):
            return getattr(error, "reason", None) in TLS_HANDSHAKE_REASONS
        error = error.args[0] if getattr(error, "args", None) and isinstance(error.args[0], BaseException) else None
    return False


def transport_error(exc: requests.RequestException, provider: str) -> TransientProviderError:
    """A TransientProviderError for a failed HTTP exchange, marking whether the request may have arrived.

    Failures before the request left are safe to retry: a refused connection or failed DNS look-up,
    a connect timeout, a TLS handshake failure (untrusted certificate...), a proxy that would not
    connect us. Failures after it left may have been accepted by the provider: a read timeout, a
    connection reset or dropped mid-response. Those carry `outcome_unknown = True`; a caller that
    must never send twice (rule 8 of docs/design.md) marks such a delivery `unknown` rather than resending it.
    """
    reason = _reason(exc)
    if isinstance(exc, requests.ConnectTimeout):
        code, unknown = "connect_timeout", False
    elif isinstance(exc, requests.Timeout):
        code, unknown = "read_timeout", True
    elif isinstance(exc, requests.exceptions.ProxyError):
        # urllib3 raises ProxyError only while reaching the proxy or setting up the tunnel.
        code, unknown = "proxy_error", False
    elif isinstance(exc, requests.exceptions.SSLError):
        code, unknown = ("tls_error", False) if _tls_failed_before_sending(exc) else ("connection_error", True)
    elif isinstance(exc, requests.ConnectionError) and isinstance(reason, urllib3.exceptions.NewConnectionError):
        # Refused, unreachable, DNS failure (NameResolutionError subclasses NewConnectionError).
        code, unknown = "connection_refused", False
    elif isinstance(exc, requests.ConnectionError):
        # Reset, remote disconnect, a broken reply: the request may have arrived. urllib3 never
        # sends on a kept-alive connection the server closed while it sat in the pool (it checks
        # before reusing it), so this is not the ordinary idle-timeout race.
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


def shared_pool_size() -> int:
    """Connections to keep alive in a process-wide client: the broadcast send concurrency."""
    try:
        return max(1, int(getattr(settings, "BROADCAST_SEND_CONCURRENCY", SEND_CONCURRENCY_DEFAULT)))
    except Exception:  # settings not configured (a script): requests' default pool
        return 10


def new_session(pool_maxsize: int = 10) -> requests.Session:
    """A keep-alive session that never retries by itself (a retried POST could send twice).

    `pool_maxsize` is how many connections are kept alive: make it at least the number of calls
    the session may have in flight at once, or the surplus connections are closed after each call
    and the next calls reconnect. Verification (certifi) and environment proxies stay requests'
    defaults.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(1, int(pool_maxsize)), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def json_object(response: requests.Response) -> dict:
    """The reply's JSON object, or {} when the body is not one (providers' error pages are HTML)."""
    try:
        payload = json.loads(response.content)
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


class HttpClient:
    """POSTs to one provider endpoint (`url`) through a keep-alive `requests.Session`.

    Threads: the session may be shared by the threads of one process. Each call only reads the
    session's fixed state (headers, auth, adapters, all set here) and sends a request of its own;
    the adapter's urllib3 pool hands each thread a connection of its own under a lock, and requests
    sessions are used this way in practice for plain POSTs. Size `pool_maxsize` to the number of
    threads sharing it. (The broadcast sender goes further and gives each of its threads a client
    of its own, see broadcasts/sending.py `_provider`.) Not to be shared across a fork: create it
    after the worker process starts (get_provider() does).
    """

    def __init__(self, url: str, *, timeout, headers: dict[str, str] | None = None, auth=None, pool_maxsize: int = 10):
        self.url = url
        if isinstance(timeout, (tuple, list)):
            connect, read = timeout
        else:
            connect = read = timeout
        self.timeout = (float(connect), float(read))
        self.pool_maxsize = max(1, int(pool_maxsize))
        self.session = new_session(self.pool_maxsize)
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})})
        if auth is not None:
            self.session.auth = auth
        # Proxies, verify and cert as requests would pick them for this URL on every call
        # (trust_env: HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, ...), looked up once per client.
        merged = self.session.merge_environment_settings(url, {}, None, None, None)
        self.send_options = {name: merged[name] for name in ("verify", "cert", "proxies")}
        # URL, session headers and auth, prepared once; each call copies it and adds its body.
        self._prepared = self.session.prepare_request(requests.Request("POST", url))
        # Calls go straight to the session's transport adapter (requests' documented Transport
        # Adapter API): Session.send would only add cookie and redirect handling these POSTs never
        # use, at about 80 us per call, a tenth of a broadcast message's cost.
        self._adapter = self.session.get_adapter(url)

    def post(self, body: bytes, content_type: str, *, provider: str) -> requests.Response:
        """POST once (never retried, never redirected); a transport failure becomes the TransientProviderError it means."""
        prepared = self._prepared.copy()
        prepared.headers["Content-Type"] = content_type
        prepared.prepare_body(body, None)  # bytes as they are, Content-Length set
        try:
            response = self._adapter.send(prepared, stream=False, timeout=self.timeout, **self.send_options)
            _ = response.content  # read the whole reply now, so that the connection goes back to the pool
        except requests.RequestException as exc:
            raise transport_error(exc, provider) from exc
        return response

    def post_form(self, form: dict[str, str], *, provider: str) -> requests.Response:
        return self.post(urlencode(form).encode(), "application/x-www-form-urlencoded", provider=provider)

    def post_json(self, payload, *, provider: str) -> requests.Response:
        return self.post(json.dumps(payload, separators=(",", ":")).encode(), "application/json", provider=provider)

    def close(self) -> None:
        self.session.close()

"""A fast loopback stand-in for the Twilio Messages API and the WhatsApp Cloud API.

Standard library only (asyncio). One event loop serves every connection, so a configured
latency delays a response without blocking other connections. HTTP/1.1 keep-alive and
pipelining are supported (responses on one connection keep their order).

Endpoints it imitates (any path prefix before them is accepted, e.g. `/v23.0`):
- `POST .../2010-04-01/Accounts/{sid}/Messages.json` (form; basic auth required) -> 201
  `{"sid": "SM...", "status": "queued", ...}`, errors as `{"code", "message", "more_info", "status"}`.
- `POST .../{phone_number_id}/messages` (JSON; bearer token required) -> 200
  `{"messaging_product": "whatsapp", "contacts": [...], "messages": [{"id": "wamid..."}]}`,
  errors as `{"error": {"message", "type", "code", "error_data", "fbtrace_id"}}`.

Control endpoints (also available in-process as methods of `StandIn`):
- `GET /__stand_in/messages[?to=+1555...&api=twilio|whatsapp]` -> `{"messages": [...]}`
- `GET /__stand_in/stats` -> counters
- `POST /__stand_in/reset` -> forget messages, counters, faults and per-recipient errors
- `POST /__stand_in/config` with JSON, any of:
    `{"latency_ms": 50,
      "faults": [{"kind": "429", "count": 2, "retry_after": "1"},
                 {"kind": "500", "count": 1},
                 {"kind": "timeout", "count": 1, "delay_ms": 15000},
                 {"kind": "reset", "count": 1}],
      "recipients": {"+15550000001": "opted_out", "+15550000002": "invalid", "+15550000003": 21612}}`
  Faults apply to the next N provider requests, in order. A recipient entry makes every message
  to that number fail: "opted_out" (21610 / 131050), "invalid" (21211 / 131026), "held_back"
  (WhatsApp 131049, the per-user marketing limit; Twilio 30007, filtered) or an explicit provider
  error code. `"append": true` adds faults instead of replacing them.

Run alone (prints the base URL on the first stdout line, then serves until killed):
    python -m tests.stand_in --port 0 --latency-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from email.utils import formatdate
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

TWILIO_ERRORS = {
    20003: (401, "Authenticate"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    21211: (400, "The 'To' number is not a valid phone number."),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21612: (400, "The 'To' phone number is not currently reachable using the 'From' phone number via SMS."),
    21614: (400, "'To' number is not a valid mobile number"),
}
WHATSAPP_ERRORS = {
    2: (503, "API Service", "Service temporarily unavailable"),
    100: (400, "Invalid parameter", "The request included one or more unsupported or misspelled parameters."),
    190: (401, "Access token has expired", "Invalid OAuth access token."),
    130429: (429, "Rate limit hit", "Cloud API message throughput has been reached."),
    131000: (500, "Something went wrong", "Message failed to send due to an unknown error."),
    131009: (400, "Parameter value is not valid", "One or more parameter values are invalid."),
    131026: (400, "Message Undeliverable", "Unable to deliver message."),
    131049: (400, "Meta chose not to deliver.",
             "This message was not delivered to maintain healthy ecosystem engagement."),
    131050: (
        400,
        "User stopped marketing messages",
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
    ),
}
RECIPIENT_ALIASES = {"opted_out": (21610, 131050), "invalid": (21211, 131026), "held_back": (30007, 131049)}
REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
MAX_BODY = 1 << 20
MAX_HEAD = 64 << 10
CONTROL_PREFIX = "/__stand_in/"


def _form(body: bytes) -> dict[str, str]:
    """An urlencoded form as {name: last value}, blanks kept (parse_qs's answer, at a fraction of its cost)."""
    form = {}
    for pair in body.decode("utf-8", "replace").split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        form[name] = value
    return form


_BASIC_USERS: dict[str, str] = {}


def _basic_user(auth: str) -> str:
    """The user name of a Basic Authorization header ('' if there is none); cached per header value."""
    user = _BASIC_USERS.get(auth)
    if user is None:
        try:
            user = base64.b64decode(auth[6:]).decode().partition(":")[0] if auth[:6].lower() == "basic " else ""
        except ValueError:
            user = ""
        if len(_BASIC_USERS) < 1024:
            _BASIC_USERS[auth] = user
    return user


_date_cache = [0, ""]


def _http_date() -> str:
    """formatdate(usegmt=True), computed once per second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0], _date_cache[1] = now, formatdate(now, usegmt=True)
    return _date_cache[1]


class _State:
    """Configuration, faults and recordings; touched by the loop thread and by control callers."""

    def __init__(self, latency_ms: float = 0.0):
        self.lock = threading.Lock()
        self.default_latency_ms = float(latency_ms)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.latency = self.default_latency_ms / 1000.0
            self.faults: collections.deque[dict] = collections.deque()
            self.recipients: dict[str, object] = {}
            self.messages: list[dict] = []
            self.counters = collections.Counter()
            self.started_at = time.time()
            self.open_connections = 0
            self.max_open_connections = 0

    def configure(self, config: dict) -> None:
        with self.lock:
            if "latency_ms" in config:
                self.latency = max(0.0, float(config["latency_ms"])) / 1000.0
            if "faults" in config:
                faults = [dict(f) for f in config["faults"]]
                for fault in faults:
                    if str(fault.get("kind")) not in {"429", "500", "503", "timeout", "reset"}:
                        raise ValueError(f"unknown fault kind {fault.get('kind')!r}")
                    fault["count"] = int(fault.get("count", 1))
                if not config.get("append"):
                    self.faults.clear()
                self.faults.extend(f for f in faults if f["count"] > 0)
            if "recipients" in config:
                if not config.get("append"):
                    self.recipients.clear()
                for number, outcome in config["recipients"].items():
                    if outcome is None:
                        self.recipients.pop(number, None)
                    elif outcome in RECIPIENT_ALIASES or str(outcome).isdigit():
                        self.recipients[number] = outcome
                    else:
                        raise ValueError(f"unknown recipient outcome {outcome!r}")

    def take_fault(self) -> dict | None:
        with self.lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            fault["count"] -= 1
            if fault["count"] <= 0:
                self.faults.popleft()
            return fault

    def stats(self) -> dict:
        with self.lock:
            elapsed = max(time.time() - self.started_at, 1e-9)
            counters = dict(self.counters)
            return {
                "requests": counters.get("requests", 0),
                "accepted": counters.get("accepted", 0),
                "rejected": counters.get("rejected", 0),
                "faults": counters.get("faults", 0),
                "by_api": {k[4:]: v for k, v in counters.items() if k.startswith("api:")},
                "by_status": {k[7:]: v for k, v in counters.items() if k.startswith("status:")},
                "connections": counters.get("connections", 0),
                "open_connections": self.open_connections,
                "max_open_connections": self.max_open_connections,
                "messages": len(self.messages),
                "latency_ms": self.latency * 1000.0,
                "pending_faults": [dict(f) for f in self.faults],
                "elapsed_s": elapsed,
                "requests_per_s": counters.get("requests", 0) / elapsed,
            }


def _response(status: int, body: bytes, content_type: str = "application/json", extra: tuple = (), close: bool = False) -> bytes:
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    head.extend(extra)
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _json(status: int, payload, extra: tuple = (), close: bool = False) -> bytes:
    return _response(status, json.dumps(payload, separators=(",", ":")).encode(), extra=extra, close=close)


def _twilio_error(code: int, status: int | None = None, extra: tuple = ()) -> bytes:
    default_status, message = TWILIO_ERRORS.get(code, (400, "Error"))
    status = status or default_status
    payload = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
    return _json(status, payload, extra)


def _whatsapp_error(code: int, status: int | None = None, extra: tuple = ()) -> bytes:
    default_status, title, details = WHATSAPP_ERRORS.get(code, (400, "Error", "Error"))
    status = status or default_status
    payload = {
        "error": {
            "message": f"(#{code}) {title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": secrets.token_urlsafe(12),
        }
    }
    return _json(status, payload, extra)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: parses requests, queues responses in order, honours latency."""

    def __init__(self, server: StandIn):
        self.server = server
        self.state = server.state
        self.buffer = bytearray()
        self.pending: collections.deque = collections.deque()  # (ready_at, data, close, reset)
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        with self.state.lock:
            self.state.counters["connections"] += 1
            self.state.open_connections += 1
            self.state.max_open_connections = max(self.state.max_open_connections, self.state.open_connections)

    def connection_lost(self, exc):
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        with self.state.lock:
            self.state.open_connections -= 1

    def data_received(self, data: bytes):
        self.buffer += data
        while not self.closed:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._queue(_json(413, {"error": "headers too large"}, close=True), 0.0, close=True)
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                self._queue(_json(400, {"error": "bad request line"}, close=True), 0.0, close=True)
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._queue(_json(411, {"error": "chunked bodies are not supported"}, close=True), 0.0, close=True)
                return
            try:
                length = int(headers.get("content-length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._queue(_json(413, {"error": "bad content-length"}, close=True), 0.0, close=True)
                return
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            self.server._handle(self, method, target, headers, body, close)

    # Responses leave in request order; each becomes ready `delay` seconds after its request.
    def _queue(self, data: bytes | None, delay: float, close: bool = False, reset: bool = False) -> None:
        if self.closed:
            return
        if delay <= 0 and not self.pending:
            self._emit(data, close, reset)
            return
        self.pending.append((self.loop.time() + delay, data, close, reset))
        if self.timer is None:
            self._arm()

    def _arm(self) -> None:
        ready_at = self.pending[0][0]
        self.timer = self.loop.call_at(ready_at, self._flush)

    def _flush(self) -> None:
        self.timer = None
        now = self.loop.time()
        while self.pending and self.pending[0][0] <= now and not self.closed:
            _, data, close, reset = self.pending.popleft()
            self._emit(data, close, reset)
        if self.pending and not self.closed:
            self._arm()

    def _emit(self, data: bytes | None, close: bool, reset: bool) -> None:
        if self.closed:
            return
        if reset:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                try:  # SO_LINGER 0: close() sends RST instead of FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            self.closed = True
            self.transport.abort()
            return
        if data:
            self.transport.write(data)
        if close:
            self.closed = True
            self.transport.close()


class StandIn:
    """The stand-in server. `start()` runs it on a background thread; `stop()` ends it.

    Use as a context manager, or `serve_forever()` in the foreground (the CLI does).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0.0):
        self.host = host
        self.port = port
        self.state = _State(latency_ms)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _Connection(self), self.host, self.port, backlog=1024, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def start(self) -> StandIn:
        """Serve on a daemon thread; returns once the port is bound."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run_thread, name="provider-stand-in", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError("stand-in failed to start") from self._error
        return self

    def _run_thread(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._open())
        except BaseException as exc:  # report bind errors to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None
        self._loop = None

    def serve_forever(self, on_ready=None) -> None:
        """Serve in the foreground until SIGINT/SIGTERM."""

        async def main():
            await self._open()
            if on_ready:
                on_ready(self)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, stop.set)
                except (NotImplementedError, RuntimeError):
                    pass
            await stop.wait()
            self._server.close()

        try:
            import uvloop  # a faster event loop when installed (requirements-dev): the stand-in shares the cores
        except ImportError:
            asyncio.run(main())
        else:
            uvloop.run(main())

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- in-process control (same semantics as the HTTP control endpoints) --------------------
    def reset(self) -> None:
        self.state.reset()

    def configure(self, **config) -> None:
        self.state.configure(config)

    def messages(self, to: str | None = None, api: str | None = None) -> list[dict]:
        with self.state.lock:
            items = list(self.state.messages)
        return [m for m in items if (to is None or m["to"] == to) and (api is None or m["api"] == api)]

    def stats(self) -> dict:
        return self.state.stats()

    # -- request handling ----------------------------------------------------------------------
    def _handle(self, conn: _Connection, method: str, target: str, headers: dict, body: bytes, close: bool) -> None:
        state = self.state
        split = urlsplit(target)
        path = unquote(split.path)
        if path.startswith(CONTROL_PREFIX):
            conn._queue(self._control(method, path[len(CONTROL_PREFIX) :], split.query, body, close), 0.0, close)
            return
        segments = [s for s in path.split("/") if s]
        if len(segments) >= 4 and segments[-1] == "Messages.json" and segments[-3] == "Accounts" and segments[-4] == "2010-04-01":
            api = "twilio"
        elif len(segments) >= 2 and segments[-1] == "messages":
            api = "whatsapp"
        else:
            conn._queue(_json(404, {"error": f"no stand-in route for {path}"}, close=close), 0.0, close)
            return
        if method != "POST":
            conn._queue(_json(405, {"error": "POST only"}, close=close), 0.0, close)
            return
        with state.lock:
            counters = state.counters
            counters["requests"] += 1
            counters["api:" + api] += 1
            latency = state.latency
        fault = state.take_fault() if state.faults else None
        if fault is not None:
            with state.lock:
                state.counters["faults"] += 1
            kind = str(fault["kind"])
            if kind == "reset":
                conn._queue(None, latency, reset=True)
                return
            if kind == "timeout":
                delay = float(fault.get("delay_ms", 30000)) / 1000.0
                with state.lock:
                    state.counters["status:timeout"] += 1
                conn._queue(_json(504, {"error": "stand-in timeout fault"}, close=close), delay, close)
                return
            status = int(kind)
            extra = ()
            if status == 429:
                retry_after = fault.get("retry_after", "1")
                extra = (f"Retry-After: {retry_after}",)
            elif fault.get("retry_after") is not None:
                extra = (f"Retry-After: {fault['retry_after']}",)
            with state.lock:
                state.counters[f"status:{status}"] += 1
            if api == "twilio":
                data = _twilio_error({429: 20429}.get(status, 20500), status, extra)
            else:
                data = _whatsapp_error({429: 130429, 503: 2}.get(status, 131000), status, extra)
            conn._queue(data, latency, close)
            return
        if api == "twilio":
            status, data = self._twilio(segments[-2], headers, body)
        else:
            status, data = self._whatsapp(segments[-2], headers, body)
        with state.lock:
            state.counters[f"status:{status}"] += 1
        conn._queue(data, latency, close)

    def _record(self, api: str, to: str, *, body: str = "", template=None, sender: str = "", status: int, message_id: str = "", error_code=None, extra=None) -> None:
        record = {
            "api": api,
            "to": to,
            "from": sender,
            "body": body,
            "template": template,
            "time": time.time(),
            "status": status,
            "message_id": message_id,
            "error_code": error_code,
        }
        if extra:
            record.update(extra)
        with self.state.lock:
            self.state.messages.append(record)
            self.state.counters["accepted" if 200 <= status < 300 else "rejected"] += 1

    def _recipient_error(self, to: str, api: str) -> int | None:
        outcome = self.state.recipients.get(to)
        if outcome is None and api == "whatsapp":
            outcome = self.state.recipients.get("+" + to)
        if outcome is None:
            return None
        if outcome in RECIPIENT_ALIASES:
            return RECIPIENT_ALIASES[outcome][0 if api == "twilio" else 1]
        return int(outcome)

    def _twilio(self, account_sid: str, headers: dict, body: bytes) -> tuple[int, bytes]:
        if _basic_user(headers.get("authorization", "")) != account_sid:
            return 401, _twilio_error(20003)
        form = _form(body)
        to, text = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From", ""), form.get("MessagingServiceSid", "")
        code = None
        if not to:
            code = 21604
        elif not sender and not service:
            code = 21603
        elif not text:
            code = 21602
        else:
            code = self._recipient_error(to, "twilio")
        if code is not None:
            data = _twilio_error(code)
            status = TWILIO_ERRORS.get(code, (400,))[0]
            self._record("twilio", to, body=text, sender=sender or service, status=status, error_code=code)
            return status, data
        sid = "SM" + secrets.token_hex(16)
        now = _http_date()
        payload = {
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "body": text,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender or None,
            "messaging_service_sid": service or None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service and not sender else "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json"},
            "to": to,
            "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
        }
        self._record(
            "twilio", to, body=text, sender=sender or service, status=201, message_id=sid,
            extra={"status_callback": form.get("StatusCallback", "")},
        )
        return 201, _json(201, payload)

    def _whatsapp(self, phone_number_id: str, headers: dict, body: bytes) -> tuple[int, bytes]:
        auth = headers.get("authorization", "")
        if auth[:7].lower() != "bearer " or not auth[7:].strip():
            return 401, _whatsapp_error(190)
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or payload.get("messaging_product") != "whatsapp" or not payload.get("to"):
            return 400, _whatsapp_error(100)
        to = str(payload["to"])
        kind = payload.get("type", "text")
        text, template = "", None
        if kind == "text":
            text = (payload.get("text") or {}).get("body", "") if isinstance(payload.get("text"), dict) else ""
            if not text:
                return 400, _whatsapp_error(100)
        elif kind == "template":
            template = payload.get("template")
            if not isinstance(template, dict) or not template.get("name") or not isinstance(template.get("language"), dict):
                return 400, _whatsapp_error(131009)
        code = self._recipient_error(to, "whatsapp")
        if code is not None:
            status = WHATSAPP_ERRORS.get(code, (400,))[0]
            self._record("whatsapp", to, body=text, template=template, sender=phone_number_id, status=status, error_code=code, extra={"type": kind})
            return status, _whatsapp_error(code)
        message_id = "wamid.HBgL" + secrets.token_hex(20).upper()
        self._record("whatsapp", to, body=text, template=template, sender=phone_number_id, status=200, message_id=message_id,
                     extra={"type": kind, "callback_data": payload.get("biz_opaque_callback_data", "")})
        reply = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": message_id, "message_status": "accepted"}],
        }
        return 200, _json(200, reply)

    def _control(self, method: str, name: str, query: str, body: bytes, close: bool) -> bytes:
        try:
            if method == "GET" and name == "messages":
                params = {k: v[-1] for k, v in parse_qs(query).items()}
                return _json(200, {"messages": self.messages(to=params.get("to"), api=params.get("api"))}, close=close)
            if method == "GET" and name == "stats":
                return _json(200, self.stats(), close=close)
            if method == "POST" and name == "reset":
                self.reset()
                return _json(200, {"ok": True}, close=close)
            if method == "POST" and name == "config":
                config = json.loads(body or b"{}")
                if not isinstance(config, dict):
                    raise ValueError("config must be a JSON object")
                self.state.configure(config)
                return _json(200, {"ok": True, "stats": self.stats()}, close=close)
        except (ValueError, TypeError, KeyError) as exc:
            return _json(400, {"error": str(exc)}, close=close)
        return _json(404, {"error": f"unknown control endpoint {name}"}, close=close)


class StandInProcess:
    """The stand-in in a child process (its own GIL: use this for benchmarks).

    `with StandInProcess(latency_ms=50) as url: ...`; control it over HTTP with `control()`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0.0):
        self.args = [sys.executable, "-m", "tests.stand_in", "--host", host, "--port", str(port), "--latency-ms", str(latency_ms)]
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> str:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.process = subprocess.Popen(self.args, cwd=root, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"stand-in did not start: {line!r}")
        self.url = line
        return line

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def control(self, name: str, payload: dict | None = None) -> dict:
        return control(self.url, name, payload)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def control(url: str, name: str, payload: dict | None = None) -> dict:
    """Call a control endpoint of a stand-in at `url`: "messages"/"stats" (GET), "reset"/"config" (POST)."""
    data = None if payload is None and name in ("messages", "stats") else json.dumps(payload or {}).encode()
    request = urllib.request.Request(f"{url}{CONTROL_PREFIX}{name}", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    stand_in = StandIn(args.host, args.port, args.latency_ms)
    stand_in.serve_forever(on_ready=lambda s: print(s.url, flush=True))


if __name__ == "__main__":
    main()

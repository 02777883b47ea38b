"""Twilio and WhatsApp Cloud clients: request shape, reply-to-error mapping, and a loopback round trip."""

import base64
import json
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import urllib3

from messaging.providers import (
    InvalidRecipientError,
    OutgoingMessage,
    PermanentProviderError,
    RecipientOptedOutError,
    TransientProviderError,
    get_provider,
)
from messaging.providers.http import parse_retry_after
from messaging.providers.twilio import TwilioProvider
from messaging.providers.whatsapp import WhatsAppCloudProvider

TWILIO_PATH = "/2010-04-01/Accounts/AC123/Messages.json"
WHATSAPP_PATH = "/v23.0/555000/messages"

SMS = OutgoingMessage(to="+15551234567", channel="sms", body="Sale today. Reply STOP to opt out.")
WA_TEMPLATE = OutgoingMessage(
    to="+33 6 12 34 56 78",
    channel="whatsapp",
    template={"name": "promo_fr", "language": "fr", "components": [{"type": "body", "parameters": [{"type": "text", "text": "20%"}]}]},
)
WA_TEXT = OutgoingMessage(to="+15551234567", channel="whatsapp", body="Thanks, you're in.")


class CannedProvider:
    """A loopback HTTP server that answers every request with the reply it was given, and records
    what it received (method, path, headers, body). `reply(..., hang=seconds)` answers that late;
    `reply(..., drop=True)` reads the request and closes the connection without a word."""

    def __init__(self):
        self.requests = []
        self.replies = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                canned.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body,
                                        "client": self.client_address})
                status, headers, data, hang, drop, close_after = (
                    canned.replies.pop(0) if canned.replies else (404, {}, b"", 0, False, False))
                if drop:
                    self.close_connection = True
                    return
                if hang:
                    time.sleep(hang)  # the client has given up by now: writing may fail
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if close_after:  # hang up after a reply that promised keep-alive (an idle timeout)
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def reply(self, status=200, *, json=None, body=b"", headers=None, hang=0, drop=False, close_after=False):
        headers = dict(headers or {})
        if json is not None:
            import json as _json

            body = _json.dumps(json).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        self.replies.append((status, headers, body, hang, drop, close_after))

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canned():
    server = CannedProvider()
    yield server
    server.stop()


def twilio(canned, **kwargs):
    options = {"from_number": "+15550000000", "api_base": canned.url, "timeout": (1, 1)}
    options.update(kwargs)
    return TwilioProvider("AC123", "secret", **options)


def whatsapp(canned, **kwargs):
    options = {"api_base": f"{canned.url}/v23.0", "timeout": (1, 1)}
    options.update(kwargs)
    return WhatsAppCloudProvider("wa-token", "555000", **options)


def twilio_error(code, status=400):
    return {"code": code, "message": f"error {code}", "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


def whatsapp_error(code):
    return {"error": {"message": f"(#{code}) title", "type": "OAuthException", "code": code, "error_data": {"messaging_product": "whatsapp", "details": "details"}, "fbtrace_id": "x"}}


# -- Twilio ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message, expected",
    [
        ({}, SMS, {"To": "+15551234567", "From": "+15550000000", "Body": SMS.body}),
        (
            {"from_number": "", "messaging_service_sid": "MG1"},
            SMS,
            {"To": "+15551234567", "MessagingServiceSid": "MG1", "Body": SMS.body},
        ),
        (
            {},
            OutgoingMessage(to="+15551234567", channel="sms", body="hi", status_callback="https://x.test/webhooks/twilio/status/"),
            {"To": "+15551234567", "From": "+15550000000", "Body": "hi", "StatusCallback": "https://x.test/webhooks/twilio/status/"},
        ),
    ],
)
def test_twilio_posts_the_message_form_with_basic_auth(canned, kwargs, message, expected):
    canned.reply(201, json={"sid": "SM1", "status": "queued"})

    result = twilio(canned, **kwargs).send(message)

    [request] = canned.requests
    assert (request["method"], request["path"]) == ("POST", TWILIO_PATH)
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert {k: v[0] for k, v in parse_qs(request["body"].decode()).items()} == expected
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"AC123:secret").decode()
    assert (result.provider_message_id, result.status) == ("SM1", "queued")


PAST_HTTP_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"


@pytest.mark.parametrize(
    "status, body, headers, error, code, retry_after",
    [
        (429, twilio_error(20429, 429), {"Retry-After": "7"}, TransientProviderError, "20429", 7.0),
        (503, "<html>down</html>", {"Retry-After": PAST_HTTP_DATE}, TransientProviderError, "503", 0.0),
        (500, twilio_error(20500, 500), {}, TransientProviderError, "20500", None),
        (400, twilio_error(21610), {}, RecipientOptedOutError, "21610", None),
        (400, twilio_error(21211), {}, InvalidRecipientError, "21211", None),
        (400, twilio_error(21614), {}, InvalidRecipientError, "21614", None),
        (400, twilio_error(21612), {}, PermanentProviderError, "21612", None),
        (400, twilio_error(21408), {}, PermanentProviderError, "21408", None),
        (401, twilio_error(20003, 401), {}, PermanentProviderError, "20003", None),
        (400, "not json at all", {}, PermanentProviderError, "400", None),
        (404, ["unexpected", "list"], {}, PermanentProviderError, "404", None),
        (201, "{broken", {}, PermanentProviderError, "malformed_response", None),
        (201, {"status": "queued"}, {}, PermanentProviderError, "malformed_response", None),
    ],
)
def test_twilio_maps_replies_to_provider_errors(canned, status, body, headers, error, code, retry_after):
    kwargs = {"json": body} if isinstance(body, (dict, list)) else {"body": body}
    canned.reply(status, headers=headers, **kwargs)

    with pytest.raises(error) as raised:
        twilio(canned).send(SMS)

    assert type(raised.value) is error
    assert raised.value.code == code
    assert raised.value.http_status == status
    if error is TransientProviderError:
        assert raised.value.retry_after == retry_after


def _connect_times_out(*args, **kwargs):
    raise socket.timeout("timed out")  # what a TCP connect that never completes raises


@pytest.mark.parametrize(
    "failure, code, outcome_unknown",
    [
        ("connect_timeout", "connect_timeout", False),  # the TCP connect never completes
        ("read_timeout", "read_timeout", True),  # the request went out, the reply comes too late
        ("drop", "connection_error", True),  # the request went out, the server hung up without a reply
    ],
)
@pytest.mark.parametrize("provider, message", [(twilio, SMS), (whatsapp, WA_TEXT)])
def test_transport_failures_are_transient_and_say_whether_the_request_may_have_arrived(
        canned, monkeypatch, failure, code, outcome_unknown, provider, message):
    client = provider(canned, timeout=(0.5, 0.3))
    if failure == "connect_timeout":
        # urllib3 opens its sockets through its own create_connection (looked up at call time).
        monkeypatch.setattr(urllib3.util.connection, "create_connection", _connect_times_out)
    elif failure == "read_timeout":
        canned.reply(201, json={"sid": "SM1"}, hang=0.6)
    else:
        canned.reply(drop=True)

    started = time.monotonic()
    with pytest.raises(TransientProviderError) as raised:
        client.send(message)

    assert raised.value.code == code
    assert raised.value.outcome_unknown is outcome_unknown
    assert time.monotonic() - started < 0.55  # the read timeout bounded the wait
    assert len(canned.requests) == (0 if failure == "connect_timeout" else 1)  # never retried by itself


@pytest.mark.parametrize(
    "value, expected",
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Wed, 25 Nov 2026 18:00:30 GMT", 30.0),
        ("Wed, 25 Nov 2026 17:59:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after_accepts_seconds_and_http_dates(value, expected):
    now = datetime(2026, 11, 25, 18, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after(value, now=now) == expected


def test_twilio_requires_credentials_and_a_sender():
    with pytest.raises(ValueError):
        TwilioProvider("", "secret", from_number="+1555")
    with pytest.raises(ValueError):
        TwilioProvider("AC1", "secret")


def test_twilio_keeps_one_connection_across_sends(canned):
    provider = twilio(canned)
    canned.reply(201, json={"sid": "SM1"})
    canned.reply(201, json={"sid": "SM2"})

    assert [provider.send(SMS).provider_message_id for _ in range(2)] == ["SM1", "SM2"]
    assert len({request["client"] for request in canned.requests}) == 1  # one TCP connection, kept alive


def test_a_pooled_connection_the_server_closed_is_not_used(canned):
    """A kept-alive connection the server closed while it sat idle would fail after the request
    left (an unknown outcome): the client notices before sending and opens a new one."""
    provider = twilio(canned)
    canned.reply(201, json={"sid": "SM1"}, close_after=True)
    assert provider.send(SMS).provider_message_id == "SM1"
    time.sleep(0.1)  # the server's FIN arrives while the connection sits in the pool
    canned.reply(201, json={"sid": "SM2"})

    assert provider.send(SMS).provider_message_id == "SM2"
    assert len(canned.requests) == 2  # SM2 was sent once, on a new connection
    assert len({request["client"] for request in canned.requests}) == 2


# -- WhatsApp Cloud ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message, expected",
    [
        (
            WA_TEMPLATE,
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "33612345678",
                "type": "template",
                "template": {"name": "promo_fr", "language": {"code": "fr"}, "components": WA_TEMPLATE.template["components"]},
            },
        ),
        (
            OutgoingMessage(to="+15551234567", channel="whatsapp", template={"name": "optin_confirmation", "language": {"code": "en_US"}}),
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "15551234567",
                "type": "template",
                "template": {"name": "optin_confirmation", "language": {"code": "en_US"}},
            },
        ),
        (
            WA_TEXT,
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "15551234567",
                "type": "text",
                "text": {"body": WA_TEXT.body, "preview_url": False},
            },
        ),
    ],
)
def test_whatsapp_posts_json_with_bearer_token(canned, message, expected):
    canned.reply(
        200,
        json={"messaging_product": "whatsapp", "contacts": [{"input": expected["to"], "wa_id": expected["to"]}], "messages": [{"id": "wamid.ABC"}]},
    )

    result = whatsapp(canned).send(message)

    [request] = canned.requests
    assert (request["method"], request["path"]) == ("POST", WHATSAPP_PATH)
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == expected
    assert request["headers"]["Authorization"] == "Bearer wa-token"
    assert (result.provider_message_id, result.status) == ("wamid.ABC", "accepted")


@pytest.mark.parametrize(
    "status, body, headers, error, code, retry_after",
    [
        (400, whatsapp_error(131050), {}, RecipientOptedOutError, "131050", None),
        (400, whatsapp_error(131026), {}, InvalidRecipientError, "131026", None),
        (400, whatsapp_error(130429), {}, TransientProviderError, "130429", None),
        (400, whatsapp_error(131048), {}, TransientProviderError, "131048", None),
        (400, whatsapp_error(131056), {}, TransientProviderError, "131056", None),
        (400, whatsapp_error(80007), {}, TransientProviderError, "80007", None),
        (429, whatsapp_error(4), {"Retry-After": "3"}, TransientProviderError, "4", 3.0),
        (429, "", {"Retry-After": "3"}, TransientProviderError, "429", 3.0),
        (500, whatsapp_error(131000), {}, TransientProviderError, "131000", None),
        (502, "<html>bad gateway</html>", {}, TransientProviderError, "502", None),
        (400, whatsapp_error(131009), {}, PermanentProviderError, "131009", None),
        (400, whatsapp_error(132001), {}, PermanentProviderError, "132001", None),
        (401, whatsapp_error(190), {}, PermanentProviderError, "190", None),
        (400, "{not json", {}, PermanentProviderError, "400", None),
        (400, {"error": "a string"}, {}, PermanentProviderError, "400", None),
        (200, {"messages": []}, {}, PermanentProviderError, "malformed_response", None),
        (200, "{not json", {}, PermanentProviderError, "malformed_response", None),
    ],
)
def test_whatsapp_maps_replies_to_provider_errors(canned, status, body, headers, error, code, retry_after):
    kwargs = {"json": body} if isinstance(body, (dict, list)) else {"body": body}
    canned.reply(status, headers=headers, **kwargs)

    with pytest.raises(error) as raised:
        whatsapp(canned).send(WA_TEMPLATE)

    assert type(raised.value) is error
    assert raised.value.code == code
    if error is TransientProviderError:
        assert raised.value.retry_after == retry_after


# -- settings and the loopback stand-in --------------------------------------------------------


def test_from_settings_reads_provider_settings(settings):
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "AC9", "tok"
    settings.TWILIO_FROM_NUMBER, settings.TWILIO_MESSAGING_SERVICE_SID = "", "MG9"
    settings.TWILIO_API_BASE = "http://127.0.0.1:9/"
    settings.WHATSAPP_ACCESS_TOKEN, settings.WHATSAPP_PHONE_NUMBER_ID = "wa", "42"
    settings.WHATSAPP_API_BASE = "http://127.0.0.1:9/v23.0"
    settings.PROVIDER_TIMEOUT = (1.5, 4.0)

    sms, wa = TwilioProvider.from_settings(), WhatsAppCloudProvider.from_settings()

    assert sms.url == "http://127.0.0.1:9/2010-04-01/Accounts/AC9/Messages.json"
    assert (sms.messaging_service_sid, sms.timeout) == ("MG9", (1.5, 4.0))
    assert (wa.url, wa.timeout) == ("http://127.0.0.1:9/v23.0/42/messages", (1.5, 4.0))


def test_from_settings_shares_one_client_per_process_and_configuration(settings):
    settings.WHATSAPP_ACCESS_TOKEN, settings.WHATSAPP_PHONE_NUMBER_ID = "wa", "42"
    first, again = WhatsAppCloudProvider.from_settings(), WhatsAppCloudProvider.from_settings()
    settings.WHATSAPP_PHONE_NUMBER_ID = "43"
    changed = WhatsAppCloudProvider.from_settings()

    assert first is again
    assert changed is not first and changed.phone_number_id == "43"
    assert WhatsAppCloudProvider.from_settings(shared=False) is not changed


def test_refused_connection_is_safe_to_retry():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = TwilioProvider("AC1", "t", from_number="+1555", api_base=f"http://127.0.0.1:{port}", timeout=(1, 1))

    with pytest.raises(TransientProviderError) as raised:
        provider.send(SMS)

    assert (raised.value.code, raised.value.outcome_unknown) == ("connection_refused", False)


def _self_signed_certificate(tmp_path):
    """A certificate for 127.0.0.1 that no CA bundle trusts (cert file, key file)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_an_untrusted_certificate_fails_before_anything_is_sent(canned, tmp_path):
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed_certificate(tmp_path))
    canned.server.socket = context.wrap_socket(canned.server.socket, server_side=True)
    provider = TwilioProvider("AC1", "t", from_number="+1555", api_base=canned.url.replace("http:", "https:"),
                              timeout=(1, 1))

    with pytest.raises(TransientProviderError) as raised:
        provider.send(SMS)

    assert (raised.value.code, raised.value.outcome_unknown) == ("tls_error", False)
    assert canned.requests == []  # the handshake failed: nothing was sent


def _tls_server(tmp_path, *, server_context=None, after_request=None):
    """A loopback server for one connection: a TLS handshake with `server_context` (our certificate),
    then it reads the request (kept in the returned list) and does `after_request(tls_socket)`.
    With neither, a plain HTTP server on the https port."""
    import ssl

    cert_file, key_file = _self_signed_certificate(tmp_path)
    context = server_context or ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received = []

    def serve():
        raw, _ = listener.accept()
        raw.settimeout(5)
        try:
            if after_request is None and server_context is None:  # no TLS at all: a plain HTTP server
                received.append(raw.recv(65536))
                raw.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                return
            tls = context.wrap_socket(raw, server_side=True)
            received.append(tls.recv(65536))
            after_request(tls)
            time.sleep(0.2)
            tls.close()
        except (OSError, ssl.SSLError):
            pass  # the handshake the client refused
        finally:
            raw.close()
            listener.close()

    threading.Thread(target=serve, daemon=True).start()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REQUESTS_CA_BUNDLE", cert_file)  # trusted: read once, when the client is built
        provider = TwilioProvider("AC1", "t", from_number="+1555", api_base=f"https://127.0.0.1:{listener.getsockname()[1]}",
                                  timeout=(2, 2))
    return provider, received


def _corrupt_record(tls):
    """A TLS application-data record whose bytes were garbled on the way: it fails its integrity check."""
    import os

    socket.socket(fileno=os.dup(tls.fileno())).sendall(b"\x17\x03\x03\x00\x20" + os.urandom(32))


def test_a_handshake_the_server_refuses_fails_before_anything_is_sent(tmp_path):
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA")  # a SHA-1 suite only: the client offers none of those
    provider, received = _tls_server(tmp_path, server_context=context, after_request=lambda tls: None)

    with pytest.raises(TransientProviderError) as raised:
        provider.send(SMS)

    assert (raised.value.code, raised.value.outcome_unknown) == ("tls_error", False)
    assert "HANDSHAKE_FAILURE" in str(raised.value) and received == []


def test_a_broken_record_in_the_reply_leaves_the_outcome_unknown(tmp_path):
    provider, received = _tls_server(tmp_path, after_request=_corrupt_record)

    with pytest.raises(TransientProviderError) as raised:
        provider.send(SMS)

    assert (raised.value.code, raised.value.outcome_unknown) == ("connection_error", True)
    assert len(received) == 1 and received[0].startswith(b"POST ")  # the request had arrived


def test_a_tls_reason_a_broken_record_can_also_raise_leaves_the_outcome_unknown(tmp_path):
    """WRONG_VERSION_NUMBER comes from a plain HTTP server on the https port during the handshake, and
    from a garbled record header after the request left: the exception alone cannot tell which."""
    provider, _ = _tls_server(tmp_path)  # plain HTTP

    with pytest.raises(TransientProviderError) as raised:
        provider.send(SMS)

    assert "WRONG_VERSION_NUMBER" in str(raised.value)
    assert (raised.value.code, raised.value.outcome_unknown) == ("connection_error", True)


@pytest.mark.parametrize("reason, before_sending", [
    ("SSLV3_ALERT_HANDSHAKE_FAILURE", True),
    ("TLSV1_ALERT_PROTOCOL_VERSION", True),
    ("TLSV1_UNRECOGNIZED_NAME", True),
    ("DECRYPTION_FAILED_OR_BAD_RECORD_MAC", False),
    ("WRONG_VERSION_NUMBER", False),
    ("UNEXPECTED_EOF_WHILE_READING", False),
    (None, False),
])
def test_the_tls_decision_reads_the_exceptions_not_where_they_were_raised(reason, before_sending):
    """The chain requests and urllib3 build (requests SSLError > MaxRetryError > urllib3 SSLError >
    ssl.SSLError), built here without ever being raised."""
    import ssl

    import requests

    from messaging.providers.http import transport_error

    tls = ssl.SSLError(1, f"[SSL: {reason}] ...")
    tls.reason, tls.library = reason, "SSL"
    inner = urllib3.exceptions.SSLError(tls)
    exc = requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, "/x", inner))

    error = transport_error(exc, "twilio")

    assert error.outcome_unknown is (not before_sending)
    assert error.code == ("tls_error" if before_sending else "connection_error")


def test_a_certificate_verification_error_is_before_sending_wherever_it_was_built():
    import ssl

    import requests

    from messaging.providers.http import transport_error

    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    exc = requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, "/x", urllib3.exceptions.SSLError(verify)))

    assert (transport_error(exc, "twilio").code, transport_error(exc, "twilio").outcome_unknown) == ("tls_error", False)


def test_twilio_round_trip_through_the_stand_in(use_stand_in):
    use_stand_in.configure(faults=[{"kind": "429", "count": 1, "retry_after": "2"}], recipients={"+15550000001": "opted_out"})
    assert isinstance(get_provider("sms"), TwilioProvider)

    with pytest.raises(TransientProviderError) as throttled:
        get_provider("sms").send(SMS)
    result = get_provider("sms").send(SMS)
    with pytest.raises(RecipientOptedOutError):
        get_provider("sms").send(OutgoingMessage(to="+15550000001", channel="sms", body="hi"))

    assert throttled.value.retry_after == 2.0
    assert result.provider_message_id.startswith("SM") and result.status == "queued"
    sent = use_stand_in.messages(to=SMS.to)
    assert [(m["api"], m["body"], m["message_id"]) for m in sent] == [("twilio", SMS.body, result.provider_message_id)]
    assert use_stand_in.stats()["connections"] <= 1  # one keep-alive connection across get_provider() calls


def test_whatsapp_round_trip_through_the_stand_in(use_stand_in):
    use_stand_in.configure(recipients={"+15550000002": "invalid"})
    provider = get_provider("whatsapp")
    assert isinstance(provider, WhatsAppCloudProvider)

    result = provider.send(WA_TEMPLATE)
    with pytest.raises(InvalidRecipientError) as invalid:
        provider.send(OutgoingMessage(to="+15550000002", channel="whatsapp", body="hi"))

    assert result.provider_message_id.startswith("wamid.")
    assert invalid.value.code == "131026"
    [sent] = use_stand_in.messages(to="33612345678")
    assert sent["template"] == {"name": "promo_fr", "language": {"code": "fr"}, "components": WA_TEMPLATE.template["components"]}


def test_console_provider_shows_the_whole_message_in_development_only(settings, capsys):
    from messaging.providers import OutgoingMessage
    from messaging.providers.console import ConsoleProvider

    message = OutgoingMessage(to="+14155550123", channel="sms", body="Reply YES http://x/optin/confirm/tok3n/")
    settings.DEBUG = True
    ConsoleProvider("sms").send(message)
    settings.DEBUG = False
    ConsoleProvider("sms").send(message)
    out = capsys.readouterr().out
    assert "+14155550123" not in out  # outside development the number is masked


def test_proxies_come_from_the_environment_once_per_client(monkeypatch):
    from messaging.providers.http import HttpClient

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "graph.test")
    proxied = HttpClient("https://api.twilio.test/2010-04-01/Accounts/AC1/Messages.json", timeout=(1, 1))
    direct = HttpClient("https://graph.test/v23.0/1/messages", timeout=(1, 1))
    monkeypatch.setenv("HTTPS_PROXY", "http://changed.internal:3128")

    assert proxied.send_options["proxies"].get("https") == "http://proxy.internal:3128"
    assert "https" not in direct.send_options["proxies"]
    # Certificates are verified: against certifi's bundle, or REQUESTS_CA_BUNDLE when the environment names one.
    assert proxied.send_options["verify"] not in (False, None, "") and direct.send_options["verify"] not in (False, None, "")
    assert (proxied.timeout, direct.timeout) == ((1.0, 1.0), (1.0, 1.0))


def test_an_unreachable_proxy_is_safe_to_retry(monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    provider = TwilioProvider("AC1", "t", from_number="+1555", api_base="https://api.twilio.test", timeout=(1, 1))

    with pytest.raises(TransientProviderError) as raised:
        provider.send(SMS)

    assert (raised.value.code, raised.value.outcome_unknown) == ("proxy_error", False)


def test_the_shared_client_keeps_as_many_connections_as_the_send_concurrency(settings):
    settings.WHATSAPP_ACCESS_TOKEN, settings.WHATSAPP_PHONE_NUMBER_ID = "wa", "44"
    settings.BROADCAST_SEND_CONCURRENCY = 48

    shared = WhatsAppCloudProvider.from_settings()
    adapter = shared.client.session.get_adapter(shared.url)

    assert adapter._pool_maxsize == 48 and adapter.max_retries.total == 0
    assert shared.client.session.trust_env is True


def test_whatsapp_sends_our_reference_as_callback_data_for_its_status_webhooks(canned):
    """Meta returns biz_opaque_callback_data in the message's statuses: our reference finds the
    message when a status comes before this call's answer (with the message id) is recorded."""
    canned.reply(200, json={"messaging_product": "whatsapp", "messages": [{"id": "wamid.ABC"}]})
    whatsapp(canned).send(OutgoingMessage(to="+15551234567", channel="whatsapp", template=WA_TEMPLATE.template,
                                          reference="delivery-456"))
    [request] = canned.requests
    assert json.loads(request["body"])["biz_opaque_callback_data"] == "delivery-456"


def test_whatsapp_callback_data_reaches_the_stand_in(use_stand_in):
    get_provider("whatsapp").send(OutgoingMessage(to="+33612345678", channel="whatsapp", template=WA_TEMPLATE.template,
                                                  reference="delivery-7"))
    [sent] = use_stand_in.messages(to="33612345678")
    assert sent["callback_data"] == "delivery-7"

"""The provider stand-in itself: protocol, keep-alive, latency, faults, recording and control."""

import base64
import json
import socket
import threading
import time

import pytest
import requests

from tests.stand_in import StandIn, StandInProcess, control

AUTH = ("AC1", "token")


def twilio_url(server, sid="AC1"):
    return f"{server.url}/2010-04-01/Accounts/{sid}/Messages.json"


def whatsapp_url(server):
    return f"{server.url}/v23.0/12345/messages"


def send_sms(session, server, to="+15551234567", body="hello", timeout=5):
    return session.post(twilio_url(server), data={"To": to, "From": "+15550000000", "Body": body}, auth=AUTH, timeout=timeout)


@pytest.fixture
def server(provider_stand_in):
    return provider_stand_in


@pytest.mark.parametrize(
    "kwargs, status, code",
    [
        ({"data": {"To": "+1555", "From": "+1444", "Body": "x"}, "auth": AUTH}, 201, None),
        ({"data": {"To": "+1555", "MessagingServiceSid": "MG1", "Body": "x"}, "auth": AUTH}, 201, None),
        ({"data": {"To": "+1555", "From": "+1444", "Body": "x"}}, 401, 20003),
        ({"data": {"To": "+1555", "From": "+1444", "Body": "x"}, "auth": ("ACother", "t")}, 401, 20003),
        ({"data": {"From": "+1444", "Body": "x"}, "auth": AUTH}, 400, 21604),
        ({"data": {"To": "+1555", "Body": "x"}, "auth": AUTH}, 400, 21603),
        ({"data": {"To": "+1555", "From": "+1444"}, "auth": AUTH}, 400, 21602),
    ],
)
def test_twilio_endpoint_checks_auth_and_fields(server, kwargs, status, code):
    response = requests.post(twilio_url(server), timeout=5, **kwargs)

    assert response.status_code == status
    body = response.json()
    if code is None:
        assert body["sid"].startswith("SM") and len(body["sid"]) == 34
        assert body["status"] in {"queued", "accepted"}
    else:
        assert (body["code"], body["status"]) == (code, status)


@pytest.mark.parametrize(
    "headers, payload, status, code",
    [
        ({"Authorization": "Bearer t"}, {"messaging_product": "whatsapp", "to": "1555", "type": "text", "text": {"body": "hi"}}, 200, None),
        (
            {"Authorization": "Bearer t"},
            {"messaging_product": "whatsapp", "to": "1555", "type": "template", "template": {"name": "p", "language": {"code": "en"}}},
            200,
            None,
        ),
        ({}, {"messaging_product": "whatsapp", "to": "1555", "type": "text", "text": {"body": "hi"}}, 401, 190),
        ({"Authorization": "Bearer t"}, {"to": "1555", "type": "text", "text": {"body": "hi"}}, 400, 100),
        ({"Authorization": "Bearer t"}, {"messaging_product": "whatsapp", "to": "1555", "type": "template", "template": {"name": "p"}}, 400, 131009),
    ],
)
def test_whatsapp_endpoint_checks_bearer_and_payload(server, headers, payload, status, code):
    response = requests.post(whatsapp_url(server), json=payload, headers=headers, timeout=5)

    assert response.status_code == status
    body = response.json()
    if code is None:
        assert body["messaging_product"] == "whatsapp"
        assert body["contacts"] == [{"input": "1555", "wa_id": "1555"}]
        assert body["messages"][0]["id"].startswith("wamid.")
    else:
        assert body["error"]["code"] == code


def test_records_messages_and_counts_and_resets(server):
    with requests.Session() as session:
        for body in ("one", "two"):
            send_sms(session, server, body=body)
        session.post(whatsapp_url(server), json={"messaging_product": "whatsapp", "to": "1555", "type": "text", "text": {"body": "wa"}}, headers={"Authorization": "Bearer t"}, timeout=5)

        assert server.stats()["connections"] == 1  # keep-alive: one connection for three requests
        over_http = control(server.url, "messages")["messages"]
        stats = control(server.url, "stats")
        assert [m["body"] for m in over_http] == ["one", "two", "wa"]
        assert [m["body"] for m in server.messages(api="twilio")] == ["one", "two"]
        assert all(isinstance(m["time"], float) for m in over_http)
        assert stats["requests"] == 3 and stats["accepted"] == 3
        assert stats["by_api"] == {"twilio": 2, "whatsapp": 1}

        control(server.url, "reset", {})
        assert server.messages() == [] and server.stats()["requests"] == 0


@pytest.mark.parametrize(
    "recipient_outcome, twilio_code, whatsapp_code",
    [("opted_out", 21610, 131050), ("invalid", 21211, 131026), (21612, 21612, 21612)],
)
def test_per_recipient_errors(server, recipient_outcome, twilio_code, whatsapp_code):
    control(server.url, "config", {"recipients": {"+15550001111": recipient_outcome}})

    sms = requests.post(twilio_url(server), data={"To": "+15550001111", "From": "+1444", "Body": "x"}, auth=AUTH, timeout=5)
    wa = requests.post(whatsapp_url(server), json={"messaging_product": "whatsapp", "to": "15550001111", "type": "text", "text": {"body": "x"}}, headers={"Authorization": "Bearer t"}, timeout=5)
    other = requests.post(twilio_url(server), data={"To": "+15550002222", "From": "+1444", "Body": "x"}, auth=AUTH, timeout=5)

    assert (sms.status_code, sms.json()["code"]) == (400, twilio_code)
    assert wa.status_code == 400 and wa.json()["error"]["code"] == whatsapp_code
    assert other.status_code == 201
    assert [m["error_code"] for m in server.messages()] == [twilio_code, whatsapp_code, None]


def test_faults_apply_to_the_next_requests_in_order(server):
    server.configure(faults=[{"kind": "429", "count": 2, "retry_after": "3"}, {"kind": "500", "count": 1}])
    with requests.Session() as session:
        statuses = [send_sms(session, server) for _ in range(4)]

    assert [r.status_code for r in statuses] == [429, 429, 500, 201]
    assert statuses[0].headers["Retry-After"] == "3"
    assert statuses[0].json()["code"] == 20429
    assert server.stats()["faults"] == 3 and len(server.messages()) == 1


def test_timeout_and_reset_faults(server):
    server.configure(faults=[{"kind": "timeout", "delay_ms": 1500}, {"kind": "reset"}])
    with requests.Session() as session:
        with pytest.raises(requests.ReadTimeout):
            send_sms(session, server, timeout=(1, 0.3))
        with pytest.raises(requests.ConnectionError):
            send_sms(session, server)
        assert send_sms(session, server).status_code == 201


def test_latency_delays_without_blocking_other_connections(server):
    server.configure(latency_ms=300)
    durations = []

    def one():
        started = time.monotonic()
        assert send_sms(requests, server).status_code == 201
        durations.append(time.monotonic() - started)

    threads = [threading.Thread(target=one) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    assert min(durations) >= 0.29
    assert elapsed < 1.2  # eight 300 ms replies overlapped, not 2.4 s in a row


def test_pipelined_requests_are_answered_in_order(server):
    server.configure(faults=[{"kind": "timeout", "delay_ms": 200}])
    auth = base64.b64encode(b"AC1:t").decode()

    def request(body):
        form = f"To=%2B1555&From=%2B1444&Body={body}"
        return (
            f"POST /2010-04-01/Accounts/AC1/Messages.json HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(form)}\r\n\r\n{form}"
        ).encode()

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request("slow") + request("fast"))
        reader = sock.makefile("rb")
        statuses = []
        for _ in range(2):
            statuses.append(reader.readline().split()[1])
            length = 0
            while (line := reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)

    assert statuses == [b"504", b"201"]


def test_control_rejects_bad_config(server):
    response = requests.post(f"{server.url}/__stand_in/config", data=json.dumps({"faults": [{"kind": "meteor"}]}), timeout=5)
    assert response.status_code == 400


def test_runs_as_a_separate_process():
    with StandInProcess(latency_ms=10) as url:
        response = requests.post(f"{url}/v23.0/1/messages", json={"messaging_product": "whatsapp", "to": "1", "type": "text", "text": {"body": "x"}}, headers={"Authorization": "Bearer t"}, timeout=5)
        assert response.status_code == 200
        assert control(url, "stats")["latency_ms"] == 10.0


def test_in_process_server_starts_and_stops():
    with StandIn(latency_ms=0) as server:
        assert requests.get(f"{server.url}/__stand_in/stats", timeout=5).json()["requests"] == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/__stand_in/stats", timeout=1)

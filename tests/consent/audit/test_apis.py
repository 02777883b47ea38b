"""Audit API: roles, filters, cursor pagination, streamed exports, verification, texts, key, proofs, erasure."""

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization

from consent import services
from consent.audit.signing import canonical_json
from consent.models import ConsentEvent, Contact, EventKind, Suppression

from .conftest import PHONES, raw_sql, triggers_lifted

pytestmark = pytest.mark.django_db
API = "/api/v1"


def signature_ok(data: dict, public_pem: str) -> bool:
    key = serialization.load_pem_public_key(public_pem.encode())
    unsigned = {k: v for k, v in data.items() if k != "signature"}
    try:
        key.verify(base64.b64decode(data["signature"]), canonical_json(unsigned))
    except Exception:
        return False
    return True


@pytest.mark.parametrize("path", ["audit/events/", "audit/export/", "audit/verify/", "audit/texts/",
                                  f"contacts/{PHONES[0]}/proof/"])
@pytest.mark.parametrize("role, expected", [(None, 401), ("marketer", 403), ("auditor", 200), ("admin", 200)])
def test_roles(ledger, role_client, path, role, expected):
    response = role_client(role).get(f"{API}/{path}")
    assert response.status_code == expected


def test_public_key_is_public(ledger, api_client):
    from consent.audit.checkpoints import checkpoint_create

    checkpoint_create()
    data = api_client.get(f"{API}/audit/public-key/").json()
    assert data["algorithm"] == "Ed25519" and data["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    cp = data["latest_checkpoint"]
    payload = {k: cp[k] for k in ("type", "seq", "hash", "signed_at", "actions")}
    signature_ok({**payload, "signature": cp["signature"]}, data["public_key"])
    assert signature_ok({**payload, "signature": cp["signature"]}, data["public_key"])


def test_events_in_sequence_with_cursor_pagination(ledger, auditor_client):
    total = ConsentEvent.objects.count()
    seen, url = [], f"{API}/audit/events/?page_size=2"
    while url:
        page = auditor_client.get(url).json()
        seen += [e["sequence"] for e in page["results"]]
        url = page["next"]
    assert seen == list(range(1, total + 1))
    first = auditor_client.get(f"{API}/audit/events/").json()["results"][0]
    assert set(first) >= {"sequence", "event_id", "occurred_at", "recorded_at", "kind", "phone", "topic", "channel",
                          "source", "actor", "text_version", "text_sha256", "evidence", "prev_hash", "hash"}
    assert first["prev_hash"] == "0" * 64


def test_event_filters(ledger, auditor_client):
    def seqs(query):
        response = auditor_client.get(f"{API}/audit/events/?{query}")
        assert response.status_code == 200, response.content
        return [e["sequence"] for e in response.json()["results"]]

    revoked = list(ConsentEvent.objects.filter(kind=EventKind.REVOKED).values_list("seq", flat=True))
    assert seqs("kind=revoked") == revoked
    mine = seqs("phone=%2B14155550124")
    assert mine and all(ConsentEvent.objects.get(seq=s).contact.phone == PHONES[1] for s in mine)
    assert seqs("phone=14155550124") == mine  # the + may be left out
    assert seqs("phone=%2B14155550111") == []
    assert seqs("topic=promo&channel=sms") == list(range(1, ConsentEvent.objects.count() + 1))
    assert seqs("channel=whatsapp") == []
    assert seqs("since=2999-01-01") == []
    assert len(seqs("until=2999-01-01T00:00:00%2B02:00")) == ConsentEvent.objects.count()
    assert len(seqs("until=2999-01-01T00:00:00+02:00")) == ConsentEvent.objects.count()  # "+" left unencoded


@pytest.mark.parametrize("query", ["kind=deleted", "channel=fax", "since=yesterday", "until=2026-13-45",
                                   "phone=not-a-phone", "topic=unknown", "since=2026-02-01&until=2026-01-01",
                                   "phone=" + "9" * 500])
def test_bad_event_filters_are_400(ledger, auditor_client, query):
    assert auditor_client.get(f"{API}/audit/events/?{query}").status_code == 400


def test_bad_cursor_is_not_a_500(ledger, auditor_client):
    assert auditor_client.get(f"{API}/audit/events/?cursor=%%%garbage").status_code in (400, 404)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_streams(ledger, auditor_client, fmt):
    response = auditor_client.get(f"{API}/audit/export/?format={fmt}&topic=promo")
    assert response.status_code == 200
    assert response.streaming
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    total = ConsentEvent.objects.count()
    if fmt == "csv":
        assert response["Content-Type"].startswith("text/csv")
        assert len(body.strip().splitlines()) == total + 1
    else:
        assert [json.loads(line)["sequence"] for line in body.splitlines()] == list(range(1, total + 1))
    assert response["X-Ledger-Head-Seq"] == str(total)
    assert "attachment" in response["Content-Disposition"]


@pytest.mark.parametrize("query", ["format=xml", "format=csv&since=nope", "format=jsonl&channel=pigeon",
                                   "format=csv&topic=missing"])
def test_bad_export_params_are_400(ledger, auditor_client, query):
    assert auditor_client.get(f"{API}/audit/export/?{query}").status_code == 400


def test_verify_endpoint(ledger, auditor_client):
    data = auditor_client.get(f"{API}/audit/verify/").json()
    total = ConsentEvent.objects.count()
    assert data["ok"] is True and data["events"] == total and data["head"]["seq"] == total
    with triggers_lifted():
        raw_sql("DELETE FROM consent_consentevent WHERE seq = 2")
    data = auditor_client.get(f"{API}/audit/verify/").json()
    assert data["ok"] is False and data["first_bad_seq"] == 2
    assert auditor_client.get(f"{API}/audit/verify/?resume=maybe").status_code == 400


def test_texts_every_version(ledger, auditor_client):
    services.topic_update(topic=ledger, consent_text="New words.")
    texts = auditor_client.get(f"{API}/audit/texts/").json()
    assert [(t["topic"], t["version"]) for t in texts] == [("promo", 1), ("promo", 2)]
    assert all(t["sha256_ok"] for t in texts)
    assert texts[1]["consent_text"] == "New words."


def test_proof_json(ledger, auditor_client):
    response = auditor_client.get(f"{API}/contacts/%2B14155550124/proof/")
    assert response.status_code == 200
    proof = response.json()
    assert proof["contact"]["phone"] == PHONES[1]
    assert [c["status"] for c in proof["consents"]] == ["revoked"]
    kinds = [e["kind"] for e in proof["events"]]
    assert kinds == ["requested", "confirmation_sent", "confirmed", "revoked"]
    assert all(e["hash_ok"] and e["linked_to_previous"] and e["linked_to_next"] for e in proof["events"])
    assert proof["events"][-1]["evidence"]["inbound_text"] == "STOP"
    assert proof["texts"][0]["consent_text"].startswith("I agree")
    assert proof["texts"][0]["sha256"] == proof["events"][0]["text_sha256"]
    assert [m["kind"] for m in proof["messages"]][0] == "confirmation_prompt"
    assert proof["messages"][0]["provider_message_id"]
    assert proof["verification"]["ok"] is True
    key = auditor_client.get(f"{API}/audit/public-key/").json()["public_key"]
    assert signature_ok(proof, key)


def test_proof_html_is_printable_and_carries_its_data(ledger, auditor_client):
    response = auditor_client.get(f"{API}/contacts/%2B14155550124/proof/?format=html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "Proof of consent" in html and "+14155550124" in html and "I agree" in html and "Verified" in html
    assert 'id="proof-data"' in html
    assert '=HYPERLINK(&quot;x&quot;)' in html  # evidence is escaped, not rendered
    download = auditor_client.get(f"{API}/contacts/%2B14155550124/proof/?format=html&download=1")
    assert "attachment" in download["Content-Disposition"]


def test_proof_shows_a_broken_chain(ledger, auditor_client):
    seq = ConsentEvent.objects.filter(contact__phone=PHONES[0]).order_by("seq").values_list("seq", flat=True)[1]
    with triggers_lifted():
        raw_sql("UPDATE consent_consentevent SET source = 'admin' WHERE seq = %s", [seq])
    proof = auditor_client.get(f"{API}/contacts/{PHONES[0]}/proof/").json()
    assert proof["verification"]["ok"] is False
    bad = [e for e in proof["events"] if not e["hash_ok"]]
    assert [e["sequence"] for e in bad] == [seq]


@pytest.mark.parametrize("phone", ["%2B14155550111", "garbage", "%2B1", "1" * 40])
def test_proof_unknown_or_bad_number_is_404(ledger, auditor_client, phone):
    assert auditor_client.get(f"{API}/contacts/{phone}/proof/").status_code == 404


def test_proof_bad_format_is_400(ledger, auditor_client):
    assert auditor_client.get(f"{API}/contacts/{PHONES[0]}/proof/?format=pdf").status_code == 400


@pytest.mark.parametrize("role, expected", [(None, 401), ("marketer", 403), ("auditor", 403)])
def test_only_admins_erase(ledger, role_client, role, expected):
    assert role_client(role).post(f"{API}/contacts/{PHONES[0]}/erase/", {}, format="json").status_code == expected
    assert Contact.objects.filter(phone=PHONES[0]).exists()


def test_erase_keeps_the_proof_and_refuses_the_number_later(ledger, admin_client_api, auditor_client, marketer_client):
    events_before = ConsentEvent.objects.filter(contact__phone=PHONES[0]).count()
    response = admin_client_api.post(f"{API}/contacts/{PHONES[0]}/erase/", {"reason": "GDPR art. 17 request"},
                                     format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["phone"] == "[erased]" and data["suppressed"] and not data["already_erased"]
    assert data["consents_revoked"] == 1
    contact = Contact.objects.get(phone_pseudonym=ConsentEvent.objects.get(seq=1).subject)
    assert contact.phone is None and contact.attributes == {} and contact.erased_at is not None
    assert Suppression.objects.filter(phone_pseudonym=contact.phone_pseudonym, reason="erased").exists()
    kinds = list(ConsentEvent.objects.filter(contact=contact).order_by("seq").values_list("kind", flat=True))
    assert len(kinds) == events_before + 2 and kinds[-2:] == ["revoked", "erased"]
    assert ConsentEvent.objects.get(seq=data["event"]["seq"]).kind == "erased"

    verify = auditor_client.get(f"{API}/audit/verify/").json()
    assert verify["ok"] is True

    # Still provable from the number, which no longer appears anywhere.
    proof = auditor_client.get(f"{API}/contacts/{PHONES[0]}/proof/").json()
    assert proof["contact"]["phone"] == "[erased]" and proof["verification"]["ok"]
    assert PHONES[0] not in json.dumps(proof)
    export = b"".join(auditor_client.get(f"{API}/audit/export/?format=jsonl").streaming_content).decode()
    assert PHONES[0] not in export and "[erased]" in export
    assert auditor_client.get(f"{API}/audit/events/?phone={PHONES[0]}").json()["results"][-1]["kind"] == "erased"

    # A later opt-in or import of the same number is refused.
    optin = marketer_client.post(f"{API}/optins/", {"phone": PHONES[0], "topic": "promo", "channel": "sms"},
                                 format="json")
    assert optin.status_code == 400
    imported = admin_client_api.post(f"{API}/consents/import/", {"records": [{
        "phone": PHONES[0], "topic": "promo", "channel": "sms", "confirmed_at": "2026-01-01T00:00:00Z",
        "evidence": {"form": "legacy"}}]}, format="json")
    assert imported.status_code == 200 and imported.json()["imported"] == 0

    again = admin_client_api.post(f"{API}/contacts/{PHONES[0]}/erase/", {}, format="json")
    assert again.status_code == 200 and again.json()["already_erased"] is True
    assert ConsentEvent.objects.filter(kind="erased").count() == 1


def test_erase_bad_input(ledger, admin_client_api):
    assert admin_client_api.post(f"{API}/contacts/garbage/erase/", {}, format="json").status_code == 404
    assert admin_client_api.post(f"{API}/contacts/%2B14155550111/erase/", {}, format="json").status_code == 404
    response = admin_client_api.post(f"{API}/contacts/{PHONES[0]}/erase/", {"reason": "x" * 600}, format="json")
    assert response.status_code == 400
    response = admin_client_api.post(f"{API}/contacts/{PHONES[0]}/erase/", "[1,2]", content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("path", [
    "audit/events/?topic=%00", "audit/events/?phone=%00", "audit/events/?since=%00", "audit/events/?kind=%00",
    "audit/events/?channel=%00", "audit/events/?since=99999-01-01", "audit/events/?since=2026-01-01T25:00:00",
    "audit/events/?page_size=-5", "audit/events/?page_size=abc", "audit/events/?topic=" + "x" * 5000,
    "audit/export/?format=%00", "audit/export/?format=csv&topic=%00", "audit/export/?format=csv&until=%00",
    "audit/verify/?resume=%00", "contacts/%00/proof/", "contacts/%2B14155550123/proof/?format=%00",
    "contacts/" + "%2B" * 100 + "/proof/",
])
def test_hostile_input_is_never_a_500(ledger, admin_client_api, path):
    assert admin_client_api.get(f"{API}/{path}").status_code in (200, 400, 404)


@pytest.mark.parametrize("body", [{"reason": "\x00"}, {"reason": ["a"]}, {"reason": {"a": 1}}, {"reason": 5}])
def test_hostile_erase_input(ledger, admin_client_api, body):
    response = admin_client_api.post(f"{API}/contacts/{PHONES[2]}/erase/", body, format="json")
    assert response.status_code in (200, 400)

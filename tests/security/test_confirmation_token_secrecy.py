"""Nobody but the person can complete their double opt-in: the confirmation token exists only in
what is handed to the provider. Every place a staff role can read shows the link redacted."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from consent import messaging, services
from consent.models import ConfirmationToken, ConsentStatus, Message, Source
from messaging.lifecycle import RetryLater
from messaging.providers import TransientProviderError
from messaging.providers.console import ConsoleProvider
from tests.prompts import Outbox, deliver_prompts, token_in

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"
LINK = re.compile(r"/optin/confirm/([^/\s\"'?#<&]+)/")


def read(client, path):
    """The body of a page or endpoint a staff role can read (it must be readable)."""
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return content.decode()


def usable_tokens(text):
    """Every confirmation-link token in `text` other than the redaction mark."""
    return {t for t in LINK.findall(text) if t not in ("[redacted]", "[masked]", "%5Bredacted%5D")}


def test_a_marketer_who_requests_an_opt_in_can_read_no_usable_token(
        topic, make_user, role_client, api_client, app_log, capfd, run_on_commit, outbox):
    marketer = role_client("marketer")
    with run_on_commit():
        response = marketer.post("/api/v1/optins/", {"phone": PHONE, "topic": "promo", "channel": "sms",
                                                     "evidence": {"ip": "192.0.2.1"}}, format="json")
    assert response.status_code == 201
    token = outbox.token()  # what the provider (the person's handset) got
    admin, auditor = role_client("admin"), role_client("auditor")
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    staff = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    site = Client()
    site.force_login(staff)
    readable = {
        "opt-in answer": response.content.decode(),
        "messages API (marketer)": read(marketer, "/api/v1/messages/"),
        "messages API (auditor)": read(auditor, "/api/v1/messages/"),
        "contact API": read(marketer, f"/api/v1/contacts/{PHONE}/"),
        "proof JSON": read(auditor, f"/api/v1/contacts/{PHONE}/proof/"),
        "proof HTML": read(auditor, f"/api/v1/contacts/{PHONE}/proof/?format=html"),
        "audit events": read(auditor, "/api/v1/audit/events/"),
        "export csv": read(auditor, "/api/v1/audit/export/?format=csv"),
        "export jsonl": read(admin, "/api/v1/audit/export/?format=jsonl"),
        "admin message page": read(site, f"/admin/consent/message/{prompt.pk}/change/"),
        "admin message list": read(site, "/admin/consent/message/"),
        "admin contact page": read(site, f"/admin/consent/contact/{prompt.contact_id}/change/"),
        "logs": app_log.getvalue(),
        "console output": "".join(capfd.readouterr()),
    }
    assert "/optin/confirm/[redacted]/" in readable["messages API (marketer)"]
    assert "/optin/confirm/[redacted]/" in readable["proof HTML"]
    for place, text in readable.items():
        assert token not in text, f"the token is readable in the {place}"
        assert not usable_tokens(text), f"a confirmation token is readable in the {place}: {usable_tokens(text)}"
    # Only the provider got one, and it works.
    confirmed = api_client.post("/api/v1/optins/confirm/", {"token": token}, format="json")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "active"


def test_the_confirm_page_records_the_link_without_its_token(client, topic):
    from consent.models import ConsentEvent, EventKind

    services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API)
    (token,) = deliver_prompts()
    assert client.post(f"/optin/confirm/{token}/").status_code == 200
    evidence = ConsentEvent.objects.get(kind=EventKind.CONFIRMED).evidence
    assert token not in str(evidence) and evidence["page_url"] == "http://testserver/optin/confirm/[redacted]/"


def test_the_whatsapp_template_link_carries_the_token_only_when_handed_over(topic):
    services.optin_request(phone=PHONE, topic=topic, channel="whatsapp", source=Source.API)
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    assert prompt.template is not None
    assert "http://testserver/optin/confirm/[redacted]/" in str(prompt.template)
    outbox = Outbox()
    with outbox.record():
        messaging.message_deliver(message_id=prompt.pk)
    (sent,) = outbox.sent
    parameters = sent.template["components"][0]["parameters"]
    token = token_in(sent)
    assert parameters[1]["text"] == f"http://testserver/optin/confirm/{token}/"
    prompt.refresh_from_db()
    assert token not in str(prompt.template) + prompt.body
    assert services.optin_confirm_by_token(token=token, source=Source.WEB_FORM).status == ConsentStatus.ACTIVE


def test_a_retry_after_a_transient_error_makes_a_fresh_token(topic, monkeypatch):
    services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API)
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    seen = []
    real_send = ConsoleProvider.send

    def flaky(provider, message):
        seen.append(token_in(message))
        if len(seen) == 1:
            raise TransientProviderError(f"503 for {message.body}", code="503", http_status=503)
        return real_send(provider, message)

    monkeypatch.setattr(ConsoleProvider, "send", flaky)
    with pytest.raises(RetryLater):
        messaging.message_deliver(message_id=prompt.pk)
    prompt.refresh_from_db()
    assert prompt.status == Message.Status.QUEUED
    assert seen[0] not in prompt.error_message  # the provider's error quoted the message: stored redacted
    assert not ConfirmationToken.objects.exists()  # never delivered: gone
    assert messaging.message_deliver(message_id=prompt.pk) == "sent"
    first, second = seen
    assert first and second and first != second
    with pytest.raises(services.TokenError):
        services.optin_confirm_by_token(token=first, source=Source.WEB_FORM)
    assert services.optin_confirm_by_token(token=second, source=Source.WEB_FORM).status == ConsentStatus.ACTIVE


def test_a_prompt_whose_consent_is_no_longer_pending_is_not_sent(topic):
    result = services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API)
    services.consent_revoke(contact=result.consent.contact, channel="sms", source=Source.SMS_KEYWORD)
    assert deliver_prompts() == []
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    assert prompt.status == Message.Status.FAILED and "no longer pending" in prompt.error_message
    assert not ConfirmationToken.objects.exists()


def test_prompts_stored_before_the_change_lose_their_token(topic):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("consent.migrations.0006_consent_prompted_at")
    contact = services.contact_get_or_create(phone=PHONE)
    old = Message.objects.create(contact=contact, channel="whatsapp", direction="out", kind="confirmation_prompt",
                                 topic=topic, status="sent", body="Reply YES http://x.example/optin/confirm/abc:def:ghi/",
                                 template={"components": [{"parameters": [{"text": "http://x.example/optin/confirm/abc:def:ghi/"}]}]})
    reply = Message.objects.create(contact=contact, channel="sms", direction="out", kind="reply", status="sent",
                                   body="Thanks")
    migration.redact_stored_prompts(apps, None)
    old.refresh_from_db()
    assert old.body == "Reply YES http://x.example/optin/confirm/[redacted]/"
    assert old.template["components"][0]["parameters"][0]["text"] == "http://x.example/optin/confirm/[redacted]/"
    reply.refresh_from_db()
    assert reply.body == "Thanks"

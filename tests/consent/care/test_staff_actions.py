"""Every care action of a person is a staff action (rule 16): replies, assigning, closing and revocations
recorded from a conversation, through the API and the inbox page alike, in the change's transaction."""

import pytest

from consent.audit.actions import Staff, verify_actions
from consent.care import services
from consent.models import ConsentStatus, ConversationReply, StaffAction

pytestmark = pytest.mark.django_db
API = "/api/v1"
INBOX = "/admin/consent/conversation/inbox/"


def actions(auditor_client, **params):
    response = auditor_client.get(f"{API}/audit/actions/", params)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_an_api_reply_is_in_the_action_log_with_its_author(care_message, agent, auditor_client, run_on_commit):
    conversation = care_message("Where is my order?")
    with run_on_commit():
        sent = agent.post(f"{API}/conversations/{conversation.pk}/reply/", {"body": "On its way."}, format="json",
                          HTTP_IDEMPOTENCY_KEY="k-1")
    assert sent.status_code == 201, sent.content
    with run_on_commit():  # a retry returns the same reply and records nothing more
        assert agent.post(f"{API}/conversations/{conversation.pk}/reply/", {"body": "On its way."}, format="json",
                          HTTP_IDEMPOTENCY_KEY="k-1").status_code == 200

    [record] = actions(auditor_client, action="conversation.reply")
    reply = ConversationReply.objects.get()
    assert (record["actor"], record["via"], record["ip"]) == ("user:ada", "api", "127.0.0.1")
    assert (record["object_type"], record["object_id"]) == ("conversation", str(conversation.pk))
    assert "+33" not in record["object_repr"]  # the log never names a number
    assert record["after"]["reply"] == reply.pk and record["after"]["message"] == reply.message_id
    assert record["before"]["first_response_at"] is None and record["after"]["first_response_at"] is not None
    assert record["before"]["waiting_since"] is not None and record["after"]["waiting_since"] is None
    assert len(record["after"]["body_sha256"]) == 64 and "On its way" not in str(record)


def test_a_refused_reply_records_nothing(care_message, agent, settings):
    conversation = care_message("Hello?")
    settings.WHATSAPP_CARE_TEMPLATE = ""
    before = StaffAction.objects.count()
    refused = agent.post(f"{API}/conversations/{conversation.pk}/reply/", {"template": True}, format="json")
    assert refused.status_code == 409 and refused.json()["reason"] == "no_care_template"
    assert StaffAction.objects.count() == before
    assert not ConversationReply.objects.exists()


def test_assign_and_close_are_recorded_once_each(care_message, agent, auditor_client):
    conversation = care_message("Hi")
    for _ in range(2):  # the second of each changes nothing and records nothing
        assert agent.post(f"{API}/conversations/{conversation.pk}/assign/").status_code == 200
        assert agent.post(f"{API}/conversations/{conversation.pk}/close/").status_code == 200
    [assign] = actions(auditor_client, action="conversation.assign")
    [close] = actions(auditor_client, action="conversation.close")
    assert (assign["before"], assign["after"]) == ({"assigned_to": None}, {"assigned_to": "ada"})
    assert close["before"] == {"status": "open"} and close["after"]["status"] == "closed"
    assert close["actor"] == assign["actor"] == "user:ada"


def test_the_inbox_page_records_through_the_same_services(care_message, client, agent, auditor_client, run_on_commit):
    conversation = care_message("Where is my parcel?")
    client.force_login(agent.user)
    page = client.get(f"{INBOX}?c={conversation.pk}")
    key = page.context["form"].initial["idempotency_key"]
    with run_on_commit():
        assert client.post(INBOX, {"conversation": conversation.pk, "action": "reply", "body": "Tomorrow.",
                                   "idempotency_key": key}).status_code == 302
    client.post(INBOX, {"conversation": conversation.pk, "action": "assign"})
    client.post(INBOX, {"conversation": conversation.pk, "action": "close"})

    listed = {r["action"]: r for r in actions(auditor_client, actor="user:ada")}
    assert {"conversation.reply", "conversation.assign", "conversation.close"} <= set(listed)
    assert {r["via"] for r in listed.values()} == {"admin"}
    assert verify_actions().ok


def test_the_inbox_pages_revocation_is_recorded(care_message, client, agent, auditor_client, consented_whatsapp,
                                               run_on_commit):
    conversation = care_message("Where is my parcel? And no more offers.")
    consented_whatsapp(conversation.contact)
    client.force_login(agent.user)
    with run_on_commit():
        client.post(INBOX, {"conversation": conversation.pk, "action": "revoke"})
    [record] = actions(auditor_client, action="consent.revoke")
    assert (record["actor"], record["via"], record["after"]["via"]) == ("user:ada", "admin", "conversation")


def test_a_revocation_recorded_from_a_conversation_is_a_staff_action(care_message, agent, consented_whatsapp,
                                                                    auditor_client, run_on_commit):
    conversation = care_message("Please stop messaging me about offers")
    consented_whatsapp(conversation.contact)
    with run_on_commit():
        revoked = services.conversation_revoke(conversation_id=conversation.pk,
                                               by=Staff(actor="user:ada", ip="198.51.100.7", via="admin"))
    assert [c.status for c in revoked] == [ConsentStatus.REVOKED]
    [record] = actions(auditor_client, action="consent.revoke")
    assert record["actor"] == "user:ada" and record["ip"] == "198.51.100.7" and record["via"] == "admin"
    assert record["before"]["consents"][0]["status"] == "active"
    assert record["after"]["consents"][0]["status"] == "revoked"
    assert (record["after"]["via"], record["after"]["conversation"]) == ("conversation", conversation.pk)
    assert revoked[0].contact.phone not in str(record)
    # Nothing left to revoke: nothing recorded.
    services.conversation_revoke(conversation_id=conversation.pk, by=Staff(actor="user:ada", via="admin"))
    assert len(actions(auditor_client, action="consent.revoke")) == 1


def test_the_chain_still_verifies_after_care_actions(care_message, agent, run_on_commit):
    conversation = care_message("Hi")
    with run_on_commit():
        agent.post(f"{API}/conversations/{conversation.pk}/reply/", {"body": "Hello!"}, format="json")
    agent.post(f"{API}/conversations/{conversation.pk}/assign/")
    agent.post(f"{API}/conversations/{conversation.pk}/close/")
    report = verify_actions()
    assert report.ok and report.actions == StaffAction.objects.count() >= 3

"""First-response time: from the person's message that opened or reopened a conversation to the first
reply after it; each opening's wait kept on the reply that ended it (docs/care.md)."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest

from consent.audit.actions import Staff
from consent.care import services
from consent.models import ConversationReply

pytestmark = pytest.mark.django_db
API = "/api/v1"
START = datetime(2026, 11, 30, 9, 0, tzinfo=dt_timezone.utc)


def listed(agent, conversation):
    [item] = [c for c in agent.get(f"{API}/conversations/").json()["results"] if c["id"] == conversation.pk]
    return item


def test_the_wait_per_opening_in_the_api_and_on_the_replies(care_message, agent, client, time_machine):
    time_machine.move_to(START, tick=False)
    conversation = care_message("Where is my order?")
    time_machine.move_to(START + timedelta(seconds=30), tick=False)
    care_message("Hello??")  # still the same wait: it began with the first unanswered message
    assert listed(agent, conversation)["first_response_seconds"] is None

    time_machine.move_to(START + timedelta(seconds=90), tick=False)
    assert agent.post(f"{API}/conversations/{conversation.pk}/reply/", {"body": "Tomorrow."}, format="json").status_code == 201
    item = listed(agent, conversation)
    assert item["first_response_seconds"] == 90 and item["waiting_since"] is None
    time_machine.move_to(START + timedelta(minutes=5), tick=False)
    care_message("Thanks, and the invoice?")  # answered before: the next reply is no first response
    agent.post(f"{API}/conversations/{conversation.pk}/reply/", {"body": "Attached."}, format="json")
    assert listed(agent, conversation)["first_response_seconds"] == 90

    services.conversation_close(conversation_id=conversation.pk, by=Staff(actor="user:ada"))
    reopened_at = START + timedelta(days=1)
    time_machine.move_to(reopened_at, tick=False)
    care_message("It never came.")  # reopens: a new wait
    item = listed(agent, conversation)
    assert item["first_response_seconds"] is None and item["status"] == "open"
    assert datetime.fromisoformat(item["waiting_since"]) == reopened_at
    time_machine.move_to(reopened_at + timedelta(minutes=12), tick=False)
    agent.post(f"{API}/conversations/{conversation.pk}/reply/", {"body": "Sorry! Resent."}, format="json")
    assert listed(agent, conversation)["first_response_seconds"] == 720
    assert list(ConversationReply.objects.order_by("id").values_list("first_response_seconds", flat=True)) == [
        90, None, 720]

    client.force_login(agent.user)
    assert "first response 720 s" in client.get("/admin/consent/conversation/inbox/").content.decode()


def test_a_closed_conversation_answered_later_ends_the_wait_from_its_opening(care_message, agent, time_machine):
    time_machine.move_to(START, tick=False)
    conversation = care_message("Hi")
    services.conversation_close(conversation_id=conversation.pk, by=Staff(actor="user:ada"))
    time_machine.move_to(START + timedelta(hours=2), tick=False)
    assert agent.post(f"{API}/conversations/{conversation.pk}/reply/", {"body": "Sorry for the wait."},
                      format="json").status_code == 201
    assert ConversationReply.objects.get().first_response_seconds == 7200


def test_closed_unanswered_then_reopened_waits_from_the_reopening(care_message, agent, time_machine):
    time_machine.move_to(START, tick=False)
    conversation = care_message("Hi")
    services.conversation_close(conversation_id=conversation.pk, by=Staff(actor="user:ada"))
    time_machine.move_to(START + timedelta(days=2), tick=False)
    care_message("Anyone?")
    assert datetime.fromisoformat(listed(agent, conversation)["waiting_since"]) == START + timedelta(days=2)
    time_machine.move_to(START + timedelta(days=2, seconds=45), tick=False)
    agent.post(f"{API}/conversations/{conversation.pk}/reply/", {"body": "Yes!"}, format="json")
    assert listed(agent, conversation)["first_response_seconds"] == 45

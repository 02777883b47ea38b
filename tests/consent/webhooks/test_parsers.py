"""Webhook parsers: recorded Twilio and WhatsApp payloads become small records; bad ones are refused."""

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.webhooks.parsers import (
    MAX_BODY_BYTES,
    MAX_ITEMS,
    MAX_TEXT_CHARS,
    InboundMessage,
    PayloadError,
    StatusUpdate,
    WhatsAppBatch,
    parse_twilio_inbound,
    parse_twilio_status,
    parse_whatsapp,
    parse_whatsapp_body,
)
from consent.webhooks.references import Reference

from .payloads import FIXTURES, twilio_form, whatsapp_body, whatsapp_json

# Twilio inbound ---------------------------------------------------------------------------


def test_twilio_inbound_sms():
    message = parse_twilio_inbound(twilio_form("twilio_inbound_stop.txt"))
    assert message.channel == "sms"
    assert message.provider_message_id == "SM4f1a2b3c4d5e6f708192a3b4c5d6e7f8"
    assert message.sender == "+14155550123"
    assert message.recipient == "+14155550199"
    assert message.text == "Stop."
    assert message.kind == "text"
    assert message.keyword_texts == ("Stop.",)


def test_twilio_inbound_keeps_text_as_sent():
    assert parse_twilio_inbound(twilio_form("twilio_inbound_yes_fr.txt")).text == " Oui ! "


def test_twilio_advanced_opt_out_is_recorded():
    assert parse_twilio_inbound(twilio_form("twilio_inbound_advanced_optout.txt")).provider_opt_out == "STOP"
    assert parse_twilio_inbound(twilio_form("twilio_inbound_advanced_optout.txt", OptOutType="bogus")).provider_opt_out == ""


def test_twilio_mms_without_text():
    message = parse_twilio_inbound(twilio_form("twilio_inbound_mms.txt"))
    assert (message.kind, message.num_media, message.text) == ("media", 2, "")


def test_twilio_whatsapp_button_reply():
    message = parse_twilio_inbound(twilio_form("twilio_inbound_whatsapp_button.txt"))
    assert message.channel == "whatsapp"
    assert message.sender == "+33612345678"
    assert message.recipient == "+14155238886"
    assert message.kind == "button"
    assert message.keyword_texts == ("YES", "Yes, confirm")
    assert message.profile_name == "Camille"


def test_twilio_message_id_falls_back_to_sms_sid():
    message = parse_twilio_inbound(twilio_form("twilio_inbound_stop.txt", MessageSid=None))
    assert message.provider_message_id == "SM4f1a2b3c4d5e6f708192a3b4c5d6e7f8"


@pytest.mark.parametrize(
    "changes",
    [
        {"MessageSid": None, "SmsMessageSid": None, "SmsSid": None},
        {"MessageSid": "", "SmsMessageSid": "", "SmsSid": ""},
        {"MessageSid": "SM " + "x" * 10},
        {"MessageSid": "SM" + "x" * 500},
        {"From": None},
        {"From": ""},
        {"From": "whatsapp:"},
        {"From": "not a number"},
        {"From": "+1"},
        {"From": "+1" + "2" * 30},
    ],
)
def test_twilio_inbound_refuses_bad_forms(changes):
    with pytest.raises(PayloadError):
        parse_twilio_inbound(twilio_form("twilio_inbound_stop.txt", **changes))


def test_twilio_inbound_caps_text_and_strips_control_characters():
    message = parse_twilio_inbound(twilio_form("twilio_inbound_stop.txt", Body="\x00ST\x07OP\n" + "x" * 10_000))
    assert message.text.startswith("STOP\n")
    assert len(message.text) == MAX_TEXT_CHARS


def test_twilio_inbound_bad_num_media_is_zero():
    assert parse_twilio_inbound(twilio_form("twilio_inbound_stop.txt", NumMedia="lots")).num_media == 0


# Twilio status ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, status, code, opt_out, invalid",
    [
        ("twilio_status_sent.txt", "sent", "", False, False),
        ("twilio_status_delivered.txt", "delivered", "", False, False),
        ("twilio_status_failed_21610.txt", "failed", "21610", True, False),
        ("twilio_status_undelivered_30003.txt", "failed", "30003", False, False),  # handset off: not invalid
        ("twilio_status_whatsapp_read.txt", "read", "", False, False),
    ],
)
def test_twilio_status(name, status, code, opt_out, invalid):
    update = parse_twilio_status(twilio_form(name))
    assert update.status == status
    assert update.error_code == code
    assert update.is_opt_out is opt_out
    assert update.is_invalid_number is invalid
    assert update.provider_message_id.startswith("SM")


def test_twilio_status_channel_and_message():
    update = parse_twilio_status(twilio_form("twilio_status_whatsapp_read.txt"))
    assert (update.channel, update.recipient) == ("whatsapp", "+33612345678")
    failed = parse_twilio_status(twilio_form("twilio_status_failed_21610.txt"))
    assert failed.error_message == "Attempt to send to unsubscribed recipient"
    assert failed.raw_status == "failed"


@pytest.mark.parametrize(
    "changes",
    [
        {"MessageSid": None, "SmsSid": None},
        {"MessageStatus": None, "SmsStatus": None},
        {"MessageStatus": "exploded", "SmsStatus": "exploded"},
        {"ErrorCode": "abc"},
    ],
)
def test_twilio_status_refuses_bad_forms(changes):
    with pytest.raises(PayloadError):
        parse_twilio_status(twilio_form("twilio_status_failed_21610.txt", **changes))


# WhatsApp ---------------------------------------------------------------------------------


def test_whatsapp_text():
    batch = parse_whatsapp_body(whatsapp_body("whatsapp_text_stop.json"))
    (message,) = batch.messages
    assert message.channel == "whatsapp"
    assert message.sender == "+33612345678"
    assert message.recipient == "106540352242922"
    assert message.text == "ARRÊT"
    assert message.kind == "text"
    assert message.profile_name == "Camille Martin"
    assert message.received_at == datetime(2025, 11, 25, 18, 12, tzinfo=timezone.utc)
    assert message.provider_message_id.startswith("wamid.")
    assert batch.statuses == batch.preferences == ()


def test_whatsapp_template_quick_reply_button():
    (message,) = parse_whatsapp(whatsapp_json("whatsapp_button_reply.json")).messages
    assert message.kind == "button"
    assert message.keyword_texts == ("STOP PROMO", "Stop promotions")


@pytest.mark.parametrize(
    "name, payload, title",
    [
        ("whatsapp_interactive_button_reply.json", "YES", "Oui, je confirme"),
        ("whatsapp_interactive_list_reply.json", "JOIN PROMO", "Promotions"),
    ],
)
def test_whatsapp_interactive_replies(name, payload, title):
    (message,) = parse_whatsapp(whatsapp_json(name)).messages
    assert message.kind == "interactive"
    assert message.keyword_texts == (payload, title)


def test_whatsapp_media_caption_is_text_and_unsupported_is_other():
    (image,) = parse_whatsapp(whatsapp_json("whatsapp_image.json")).messages
    assert (image.kind, image.text) == ("media", "la facture")
    (unsupported,) = parse_whatsapp(whatsapp_json("whatsapp_unsupported.json")).messages
    assert (unsupported.kind, unsupported.text) == ("other", "")


def test_whatsapp_system_messages_are_ignored():
    batch = parse_whatsapp(whatsapp_json("whatsapp_system.json"))
    assert batch.messages == ()
    assert batch.ignored == ("message:system",)


@pytest.mark.parametrize(
    "name, status, code, opt_out, invalid",
    [
        ("whatsapp_status_sent.json", "sent", "", False, False),
        ("whatsapp_status_delivered.json", "delivered", "", False, False),
        ("whatsapp_status_read.json", "read", "", False, False),
        ("whatsapp_status_failed_131050.json", "failed", "131050", True, False),
        ("whatsapp_status_failed_131026.json", "failed", "131026", False, True),
    ],
)
def test_whatsapp_statuses(name, status, code, opt_out, invalid):
    (update,) = parse_whatsapp(whatsapp_json(name)).statuses
    assert (update.channel, update.status, update.error_code) == ("whatsapp", status, code)
    assert (update.is_opt_out, update.is_invalid_number) == (opt_out, invalid)
    assert update.recipient == "+33612345678"
    assert update.occurred_at is not None


def test_whatsapp_status_carries_our_callback_data_and_error_text():
    (sent,) = parse_whatsapp(whatsapp_json("whatsapp_status_sent.json")).statuses
    assert sent.callback_data == "delivery:42"
    assert sent.reference is None  # not a reference of ours
    (failed,) = parse_whatsapp(whatsapp_json("whatsapp_status_failed_131050.json")).statuses
    assert "stop receiving marketing messages" in failed.error_message


@pytest.mark.parametrize("name, value, is_stop", [("whatsapp_user_preferences_stop.json", "stop", True), ("whatsapp_user_preferences_resume.json", "resume", False)])
def test_whatsapp_marketing_preferences(name, value, is_stop):
    batch = parse_whatsapp(whatsapp_json(name))
    (preference,) = batch.preferences
    assert preference.sender == "+33612345678"
    assert (preference.category, preference.value, preference.is_stop) == ("marketing_messages", value, is_stop)
    assert preference.occurred_at is not None
    assert batch.messages == batch.statuses == ()


def test_whatsapp_mixed_batch():
    batch = parse_whatsapp(whatsapp_json("whatsapp_batch_mixed.json"))
    assert [m.text for m in batch.messages] == ["HELP"]
    assert [s.status for s in batch.statuses] == ["delivered", "read"]
    assert batch.ignored == ("field:message_template_status_update",)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'"text"',
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account", "entry": {}}',
        b'{"object": "whatsapp_business_account", "entry": [1]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": "x"}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": []}]}]}',
    ],
)
def test_whatsapp_malformed_envelopes_are_refused(body):
    with pytest.raises(PayloadError):
        parse_whatsapp_body(body)


def test_whatsapp_bad_record_is_skipped_not_the_batch():
    payload = whatsapp_json("whatsapp_batch_mixed.json")
    value = payload["entry"][0]["changes"][1]["value"]
    value["statuses"].append({"id": "wamid.x", "status": "vaporised"})
    value["statuses"].append({"status": "read"})
    value["statuses"].append("nonsense")
    payload["entry"][0]["changes"][0]["value"]["messages"].append({"from": "not-a-number", "id": "wamid.y", "type": "text"})
    batch = parse_whatsapp(payload)
    assert [s.status for s in batch.statuses] == ["delivered", "read"]
    assert [m.text for m in batch.messages] == ["HELP"]
    assert len([i for i in batch.ignored if i.startswith("invalid")]) == 4


def test_whatsapp_body_size_and_record_count_are_capped():
    with pytest.raises(PayloadError, match="larger"):
        parse_whatsapp_body(b" " * (MAX_BODY_BYTES + 1))
    payload = whatsapp_json("whatsapp_status_read.json")
    payload["entry"][0]["changes"][0]["value"]["statuses"] *= MAX_ITEMS + 1
    with pytest.raises(PayloadError, match="records"):
        parse_whatsapp(payload)


def test_error_code_sets_agree_with_the_provider_clients():
    from consent.webhooks.parsers import INVALID_NUMBER_ERROR_CODES, OPT_OUT_ERROR_CODES
    from messaging.providers import twilio, whatsapp

    assert OPT_OUT_ERROR_CODES == twilio.OPT_OUT_CODES | whatsapp.OPT_OUT_CODES
    assert INVALID_NUMBER_ERROR_CODES == twilio.INVALID_RECIPIENT_CODES | whatsapp.INVALID_RECIPIENT_CODES


def test_every_fixture_parses():
    parsed = 0
    for path in FIXTURES.iterdir():
        if path.suffix == ".json":
            batch = parse_whatsapp_body(path.read_bytes())
            assert isinstance(batch, WhatsAppBatch), path.name
        elif "inbound" in path.name:
            message = parse_twilio_inbound(twilio_form(path.name))
            assert isinstance(message, InboundMessage) and message.provider_message_id and message.sender.startswith("+"), path.name
        else:
            update = parse_twilio_status(twilio_form(path.name))
            assert isinstance(update, StatusUpdate) and update.provider_message_id and update.status, path.name
        parsed += 1
    assert parsed >= 20  # every recorded payload, not an empty folder


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["object", "entry", "changes", "value", "field", "messages", "statuses", "user_preferences", "from", "id", "type", "text", "body", "status", "errors", "code", "wa_id", "value", "timestamp", "interactive", "button"]), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_whatsapp_any_json_either_parses_or_is_a_payload_error(value):
    if isinstance(value, dict):
        value["object"] = "whatsapp_business_account"
    try:
        batch = parse_whatsapp_body(json.dumps(value).encode())
    except PayloadError as exc:
        assert str(exc)  # says what is wrong
    else:
        assert isinstance(batch, WhatsAppBatch)
        assert all(isinstance(m, InboundMessage) and m.channel == "whatsapp" for m in batch.messages)
        assert all(isinstance(s, StatusUpdate) for s in batch.statuses)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["MessageSid", "SmsSid", "From", "To", "Body", "NumMedia", "ButtonPayload", "ButtonText", "OptOutType", "MessageStatus", "ErrorCode", "ErrorMessage"]), st.text(max_size=20)))
def test_twilio_any_form_either_parses_or_is_a_payload_error(form):
    for parse, kind in ((parse_twilio_inbound, InboundMessage), (parse_twilio_status, StatusUpdate)):
        try:
            result = parse(form)
        except PayloadError as exc:
            assert str(exc)  # says what is wrong
        else:
            assert isinstance(result, kind)


@pytest.mark.parametrize(
    "message",
    [
        {"from": "33612345678", "id": "wamid.1", "type": "interactive", "interactive": {"type": ["button_reply"]}},
        {"from": "33612345678", "id": "wamid.1", "type": ["text"]},
        {"from": ["33612345678"], "id": "wamid.1", "type": "text"},
        {"from": "33612345678", "id": {"x": 1}, "type": "text", "text": {"body": "hi"}},
        {"from": "33612345678", "id": "wamid.1", "type": "text", "text": "hi"},
        {"from": "33612345678", "id": "wamid.1", "type": "image", "image": {"caption": 5}},
    ],
)
def test_whatsapp_odd_types_never_raise_anything_but_payload_errors(message):
    payload = whatsapp_json("whatsapp_text_yes.json")
    payload["entry"][0]["changes"][0]["value"]["messages"] = [message]
    batch = parse_whatsapp(payload)
    assert len(batch.messages) + len(batch.ignored) == 1


# Our reference on status callbacks ---------------------------------------------------------


def test_twilio_status_takes_our_reference_from_the_callback_url():
    update = parse_twilio_status(twilio_form("twilio_status_delivered.txt"), reference="message-123")
    assert update.reference == Reference("message", 123)
    assert parse_twilio_status(twilio_form("twilio_status_delivered.txt")).reference is None


@pytest.mark.parametrize("reference", ["garbage", "delivery-abc", "delivery-0", "x" * 5000, "delivery-1\x00"])
def test_twilio_status_with_a_malformed_reference_is_parsed_without_it(reference):
    update = parse_twilio_status(twilio_form("twilio_status_delivered.txt"), reference=reference)
    assert (update.status, update.reference) == ("delivered", None)


@pytest.mark.parametrize("callback_data, reference", [
    ("delivery-42", Reference("delivery", 42)),
    ("message-7", Reference("message", 7)),
    ("delivery:42", None),
    ("", None),
    ("delivery-abc", None),
])
def test_whatsapp_status_takes_our_reference_from_its_callback_data(callback_data, reference):
    payload = whatsapp_json("whatsapp_status_delivered.json")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] = callback_data
    (update,) = parse_whatsapp(payload).statuses
    assert (update.callback_data, update.reference) == (callback_data, reference)


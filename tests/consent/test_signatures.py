"""Webhook signatures: Twilio's must agree with twilio.request_validator; WhatsApp's with its spec."""

import hashlib
import hmac

import pytest
from django.http import QueryDict
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from consent.signatures import (
    HMAC_SHA1,
    HMAC_SHA256,
    twilio_algorithm,
    twilio_signature,
    twilio_signing_string,
    verify_twilio_signature,
    verify_whatsapp_signature,
    whatsapp_signature,
)

TOKEN = "12345678901234567890123456789012"


def reference(token, url, params, signature, algorithm=None):
    """What twilio's own validator says; an exception there counts as a rejection."""
    try:
        return RequestValidator(token).validate(url, params, signature, algorithm)
    except Exception:
        return False


def form(pairs):
    query = QueryDict(mutable=True)
    for name, value in pairs:
        query.appendlist(name, value)
    return query


INBOUND = {
    "ToCountry": "US",
    "SmsMessageSid": "SM0123456789abcdef0123456789abcdef",
    "NumMedia": "0",
    "Body": "STOP",
    "From": "+14155550100",
    "To": "+14155550199",
    "MessageSid": "SM0123456789abcdef0123456789abcdef",
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
    "ApiVersion": "2010-04-01",
}

URLS = [
    "https://example.com/webhooks/twilio/inbound/",
    "https://example.com:443/webhooks/twilio/inbound/",
    "http://example.com/webhooks/twilio/inbound/",
    "http://example.com:80/webhooks/twilio/inbound/",
    "https://example.com:8443/webhooks/twilio/status/?delivery=42&attempt=1",
    "https://example.com/webhooks/twilio/status/?delivery=42",
    "https://example.com/webhooks/twilio/status/?ref=delivery-456",
    "https://example.com:443/webhooks/twilio/status/?ref=message-123",
    "https://example.com/webhooks/twilio/status/?a=%C3%A9&b=x%20y",
    "https://ex-ample.co.uk/w/?q=caf%C3%A9#frag",
    "http://127.0.0.1:8000/webhooks/twilio/inbound/",
    "https://user:pw@example.com/webhooks/",
    "https://example.com/path with space/",
    "https://exämple.com/ünïcode/",
    "http://[::1]:8000/webhooks/twilio/inbound/",
]

PARAM_SETS = [
    {},
    INBOUND,
    {**INBOUND, "Body": "Arrêt 🛑 — merci"},
    {**INBOUND, "Body": ""},
    {**INBOUND, "Body": "a=b&c=d"},
    form([("MediaUrl0", "https://a/1"), ("MediaUrl0", "https://a/0"), ("Body", "x")]),
    form([("Body", "same"), ("Body", "same")]),
    form([("b", "2"), ("a", "1"), ("B", "0"), ("a", "0")]),
    form([("ü", "é"), ("u", "e")]),
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("params", PARAM_SETS, ids=range(len(PARAM_SETS)))
def test_agrees_with_twilio_on_its_own_signatures(url, params):
    validator = RequestValidator(TOKEN)
    signature = validator.compute_signature(url, params)
    assert twilio_signature(TOKEN, url, params) == signature
    assert verify_twilio_signature(TOKEN, url, params, signature) is reference(TOKEN, url, params, signature) is True


@pytest.mark.parametrize("url", URLS)
def test_port_variants_agree(url):
    """A signature over the URL with the port stripped or the default port added, both ways."""
    for signed_url in {url, url.replace(":443", "").replace(":80/", "/"), url.replace("example.com/", "example.com:443/")}:
        signature = RequestValidator(TOKEN).compute_signature(signed_url, INBOUND)
        assert verify_twilio_signature(TOKEN, url, INBOUND, signature) is reference(TOKEN, url, INBOUND, signature)


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: s[:-2] + ("AA" if s[-2:] != "AA" else "BB"),
        lambda s: s.lower(),
        lambda s: s + " ",
        lambda s: " " + s,
        lambda s: s[:-1],
        lambda s: "",
        lambda s: "é" + s[1:],
        lambda s: s.replace("=", ""),
    ],
)
def test_rejects_what_twilio_rejects(url, tamper):
    signature = tamper(RequestValidator(TOKEN).compute_signature(url, INBOUND))
    expected = reference(TOKEN, url, INBOUND, signature)
    assert verify_twilio_signature(TOKEN, url, INBOUND, signature) is expected


def test_changed_params_url_or_token_are_rejected():
    url = URLS[0]
    signature = twilio_signature(TOKEN, url, INBOUND)
    assert verify_twilio_signature(TOKEN, url, INBOUND, signature)
    assert not verify_twilio_signature(TOKEN, url, {**INBOUND, "Body": "YES"}, signature)
    assert not verify_twilio_signature(TOKEN, url, {**INBOUND, "Extra": ""}, signature)
    assert not verify_twilio_signature(TOKEN, url + "?x=1", INBOUND, signature)
    assert not verify_twilio_signature(TOKEN, url.replace("https", "http"), INBOUND, signature)
    assert not verify_twilio_signature("other-token", url, INBOUND, signature)
    assert not verify_twilio_signature("", url, INBOUND, signature)
    assert not verify_twilio_signature(TOKEN, url, INBOUND, None)


def test_repeated_form_values_are_all_signed_once_each_in_sorted_order():
    params = form([("MediaUrl", "b"), ("MediaUrl", "a"), ("MediaUrl", "b")])
    assert twilio_signing_string("U", params) == "UMediaUrlaMediaUrlb"
    signature = twilio_signature(TOKEN, "https://e.com/", params)
    assert verify_twilio_signature(TOKEN, "https://e.com/", params, signature)
    assert not verify_twilio_signature(TOKEN, "https://e.com/", form([("MediaUrl", "a")]), signature)


def test_unsupported_or_bad_input_is_rejected_not_raised():
    signature = twilio_signature(TOKEN, URLS[0], INBOUND)
    assert not verify_twilio_signature(TOKEN, URLS[0], INBOUND, signature, algorithm="HMAC_MD5")
    assert not verify_twilio_signature(TOKEN, "https://e.com:99999/", INBOUND, signature)
    assert not verify_twilio_signature(TOKEN, "https://e.com:abc/", INBOUND, signature)
    assert not verify_twilio_signature(TOKEN, URLS[0], {"Body": 5}, signature)
    assert not verify_twilio_signature(TOKEN, URLS[0], {"Body": ["a", "b"]}, signature)
    assert not verify_twilio_signature(TOKEN, URLS[0], "raw body", signature)
    assert not verify_twilio_signature(TOKEN, URLS[0], INBOUND, b"bytes")
    assert not verify_twilio_signature(TOKEN, URLS[0], INBOUND, "\udcff")
    with pytest.raises(ValueError, match="Unsupported"):
        twilio_signature(TOKEN, URLS[0], INBOUND, algorithm="HMAC_MD5")


@pytest.mark.parametrize("algorithm", [HMAC_SHA1, HMAC_SHA256, "hmac_sha256"])
def test_sha256_shared_key_signatures(algorithm):
    validator = RequestValidator(TOKEN)
    signature = validator.compute_signature(URLS[4], INBOUND, algorithm)
    assert twilio_signature(TOKEN, URLS[4], INBOUND, algorithm=algorithm) == signature
    assert verify_twilio_signature(TOKEN, URLS[4], INBOUND, signature, algorithm=algorithm)
    other = HMAC_SHA1 if algorithm.upper() == HMAC_SHA256 else HMAC_SHA256
    assert not verify_twilio_signature(TOKEN, URLS[4], INBOUND, signature, algorithm=other)


@pytest.mark.parametrize(
    "header, algorithm",
    [
        (None, HMAC_SHA1),
        ("", HMAC_SHA1),
        ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256", HMAC_SHA256),
        (" algorithm = HMAC_SHA1 , key=x", HMAC_SHA1),
        ("key=x", HMAC_SHA1),
    ],
)
def test_signature_settings_header(header, algorithm):
    assert twilio_algorithm(header) == algorithm


def test_json_body_signed_with_body_sha256():
    body = '{"a": "é"}'
    url = "https://example.com/hook/?bodySHA256=" + hashlib.sha256(body.encode()).hexdigest()
    signature = RequestValidator(TOKEN).compute_signature(url, {})
    assert reference(TOKEN, url, body, signature)
    assert verify_twilio_signature(TOKEN, url, body, signature)
    assert not verify_twilio_signature(TOKEN, url, body + " ", signature)
    assert reference(TOKEN, url, body + " ", signature) is False


names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
values = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
hosts = st.sampled_from(["example.com", "example.com:443", "example.com:80", "example.com:8080", "10.0.0.1:0", "exämple.com"])
paths = st.text(alphabet="abc/-_.%é?=&+ ", max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https"]),
    host=hosts,
    path=paths,
    pairs=st.lists(st.tuples(names, values), max_size=6),
    signer_host=hosts,
    token=st.sampled_from([TOKEN, "other"]),
    algorithm=st.sampled_from([None, HMAC_SHA1, HMAC_SHA256]),
    verify_algorithm=st.sampled_from([None, HMAC_SHA1, HMAC_SHA256]),
)
def test_property_agrees_with_twilio_validator(scheme, host, path, pairs, signer_host, token, algorithm, verify_algorithm):
    url = f"{scheme}://{host}/{path}"
    signed_url = f"{scheme}://{signer_host}/{path}"
    params = form(pairs)
    signature = RequestValidator(token).compute_signature(signed_url, params, algorithm)
    assert verify_twilio_signature(TOKEN, url, params, signature, algorithm=verify_algorithm) is reference(
        TOKEN, url, params, signature, verify_algorithm
    )


@settings(max_examples=100, deadline=None)
@given(signature=st.text(max_size=40), pairs=st.lists(st.tuples(names, values), max_size=3))
def test_property_random_signatures_agree(signature, pairs):
    params = form(pairs)
    assert verify_twilio_signature(TOKEN, URLS[0], params, signature) is reference(TOKEN, URLS[0], params, signature)


# WhatsApp Cloud ---------------------------------------------------------------------------

SECRET = "app-secret-0123"
BODY = b'{"object":"whatsapp_business_account","entry":[]}'


def test_whatsapp_signature_is_sha256_hex_of_the_raw_body():
    expected = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert whatsapp_signature(SECRET, BODY) == expected
    assert verify_whatsapp_signature(SECRET, BODY, expected)
    assert verify_whatsapp_signature(SECRET, BODY, expected + "\n")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + hashlib.sha1(BODY).hexdigest(),
        hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest(),  # no prefix
        "sha256=" + hmac.new(b"wrong", BODY, hashlib.sha256).hexdigest(),
        "sha256=" + hmac.new(SECRET.encode(), BODY + b" ", hashlib.sha256).hexdigest(),
        "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest().upper(),
        "sha256=é",
    ],
)
def test_whatsapp_bad_signatures_are_rejected(header):
    assert not verify_whatsapp_signature(SECRET, BODY, header)


def test_whatsapp_without_secret_rejects_everything():
    assert not verify_whatsapp_signature("", BODY, whatsapp_signature("", BODY))


@given(st.binary(max_size=200))
def test_whatsapp_any_body_roundtrips(body):
    assert verify_whatsapp_signature(SECRET, body, whatsapp_signature(SECRET, body))
    assert not verify_whatsapp_signature(SECRET, body + b"x", whatsapp_signature(SECRET, body))


def test_the_reference_on_a_status_callback_url_is_signed():
    """Our `?ref=` is part of what Twilio signs: changing or dropping it breaks the signature."""
    url = "https://example.com/webhooks/twilio/status/?ref=delivery-456"
    status = {"MessageSid": "SM0123456789abcdef0123456789abcdef", "MessageStatus": "delivered", "To": "+14155550100"}
    signature = RequestValidator(TOKEN).compute_signature(url, status)
    assert verify_twilio_signature(TOKEN, url, status, signature) is True
    for other in (url.replace("delivery-456", "delivery-457"), url.split("?")[0], url + "&ref=message-1"):
        assert verify_twilio_signature(TOKEN, other, status, signature) is reference(TOKEN, other, status, signature) is False

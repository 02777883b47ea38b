"""The keyword engine: real-world spellings of each keyword, and texts that must not match."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.keywords import (
    CONFIRM,
    DEFAULT_KEYWORDS,
    HELP,
    JOIN,
    NONE,
    START,
    STOP,
    Intent,
    fold,
    parse_inbound,
)

TOPICS = ("PROMO", "NEWS", "Bons Plans", "VIP-CLUB")


def parse(text, **kwargs):
    kwargs.setdefault("keywords", DEFAULT_KEYWORDS)
    kwargs.setdefault("topic_keywords", TOPICS)
    return parse_inbound(text, **kwargs)


@pytest.mark.parametrize(
    "text",
    [
        "STOP", "stop", "Stop", "sToP", " STOP ", "STOP.", "Stop!", "stop!!!", "'stop'", '"STOP"',
        "STOP\n", "\tstop\r\n", "STOP 🛑", "🛑 stop", "(stop)", "...stop...", "stop?", "¡STOP!",
        "ＳＴＯＰ", "STOP\u200b", "\u00a0STOP\u00a0",
        "STOPALL", "stopall", "Stop All", "STOP ALL", "stop tout",
        "UNSUBSCRIBE", "unsubscribe.", "Unsubscribe!", "CANCEL", "cancel", "END", "end.", "QUIT", "quit",
        "REVOKE", "OPTOUT", "OPT OUT", "opt out", "Opt-Out", "opt_out", "OPT  OUT", "opt\nout",
        "ARRET", "ARRÊT", " arrêt ", "Arrêt.", "arret", "ARRÉT", "DESABONNER", "DÉSABONNER", "désabonner",
        "Désabonner !", "DESINSCRIPTION", "désinscription", "Désinscription.",
    ],
)
def test_bare_stop_variants(text):
    assert parse(text) == Intent(STOP)


@pytest.mark.parametrize(
    "text, topic",
    [
        ("STOP PROMO", "PROMO"),
        ("stop promo", "PROMO"),
        ("Stop Promo.", "PROMO"),
        ("STOP, PROMO", "PROMO"),
        ("unsubscribe news", "NEWS"),
        ("ARRÊT PROMO", "PROMO"),
        ("opt out promo", "PROMO"),
        ("stop bons plans", "Bons Plans"),
        ("STOP BONS-PLANS", "Bons Plans"),
        ("stop vip club", "VIP-CLUB"),
    ],
)
def test_stop_one_topic(text, topic):
    assert parse(text) == Intent(STOP, topic)


@pytest.mark.parametrize("text", ["START", "start", "Start.", " UNSTOP ", "unstop!", "ＳＴＡＲＴ"])
def test_start(text):
    assert parse(text) == Intent(START)


@pytest.mark.parametrize(
    "text, topic",
    [
        ("JOIN PROMO", "PROMO"),
        ("join promo", "PROMO"),
        ("Join Promo!", "PROMO"),
        ("PROMO", "PROMO"),
        ("promo", "PROMO"),
        (" Promo. ", "PROMO"),
        ("START PROMO", "PROMO"),
        ("join news", "NEWS"),
        ("NEWS", "NEWS"),
        ("bons plans", "Bons Plans"),
        ("Join bons plans", "Bons Plans"),
        ("vip club", "VIP-CLUB"),
    ],
)
def test_join_topic(text, topic):
    assert parse(text) == Intent(JOIN, topic)


def test_bare_join_has_no_topic():
    assert parse("JOIN") == Intent(JOIN)


@pytest.mark.parametrize("text", ["YES", "yes", "Yes!", "Y", "y", "y.", "CONFIRM", "confirm", "OUI", "oui", "Oui !", "ＹＥＳ"])
def test_confirm(text):
    assert parse(text) == Intent(CONFIRM)


def test_confirm_one_topic():
    assert parse("YES PROMO") == Intent(CONFIRM, "PROMO")


@pytest.mark.parametrize("text", ["HELP", "help", "Help?", "INFO", "info", "AIDE", "aide", "Aide ?"])
def test_help(text):
    assert parse(text) == Intent(HELP)


def test_help_one_topic():
    assert parse("HELP NEWS") == Intent(HELP, "NEWS")


@pytest.mark.parametrize(
    "text",
    [
        "stop sending me the red one please",
        "Please stop",
        "STOP please",
        "don't stop",
        "stopped",
        "stops",
        "nonstop",
        "S.T.O.P",
        "stop stop",
        "yes please",
        "yesterday",
        "yes but not on sundays",
        "I want to join",
        "JOIN US",
        "join something-unknown",
        "help me with my order",
        "info about my order 1234",
        "oui mais non",
        "Can I cancel my order?",
        "the end of the world",
        "promotion",
        "promo code?",
        "STOP PROMOTION",
        "",
        "   ",
        "...",
        "🛑",
        "👍",
        "ok",
        "1",
        "Y E S",
        "sto p",
        "x" * 10_000,
        "STOP " + "x" * 500,
    ],
)
def test_not_a_keyword(text):
    assert parse(text) == Intent(NONE)


@pytest.mark.parametrize("value", [None, 42, b"STOP", ["STOP"]])
def test_non_text_is_no_keyword(value):
    assert parse(value) == Intent(NONE)


def test_system_keyword_wins_over_a_topic_keyword_of_the_same_spelling():
    assert parse("INFO", topic_keywords=("INFO", "PROMO")) == Intent(HELP)
    assert parse("STOP INFO", topic_keywords=("INFO",)) == Intent(NONE)


def test_keywords_can_be_replaced():
    keywords = {**DEFAULT_KEYWORDS, STOP: ("HALT", "BASTA")}
    assert parse("basta!", keywords=keywords) == Intent(STOP)
    assert parse("halt promo", keywords=keywords) == Intent(STOP, "PROMO")
    assert parse("STOP", keywords=keywords) == Intent(NONE)


def test_settings_override_one_kind_only(settings):
    settings.CONSENT_KEYWORDS = {"confirm": ["SI", "JA"]}
    assert parse_inbound("ja") == Intent(CONFIRM)
    assert parse_inbound("yes") == Intent(NONE)
    assert parse_inbound("stop") == Intent(STOP)  # other kinds keep their defaults


def test_settings_with_an_unknown_kind_is_an_actionable_error(settings):
    settings.CONSENT_KEYWORDS = {"unsubscribe": ["NO"]}
    with pytest.raises(ValueError, match="unknown kinds"):
        parse_inbound("stop")


def test_defaults_are_used_without_override(settings):
    settings.CONSENT_KEYWORDS = None
    assert parse_inbound("Arrêt") == Intent(STOP)


@pytest.mark.parametrize(
    "text, folded",
    [("  Arrêt!! ", "arret"), ("Opt-Out", "opt out"), ("ＳＴＯＰ", "stop"), ("Straße", "strasse"), ("a\u200bb", "a b")],
)
def test_fold(text, folded):
    assert fold(text) == folded


def _fold_by_character(text):
    """fold's rule, one character at a time: combining marks dropped, runs of letters and digits kept."""
    words, current = [], []
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(char):
            continue
        if char.isalnum():
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return " ".join(words).casefold()


@given(st.text(max_size=40))
def test_fold_keeps_the_rule_for_any_text(text):
    assert fold(text) == _fold_by_character(text)


@given(st.text(max_size=40))
def test_any_text_parses_to_a_known_kind(text):
    intent = parse(text)
    assert intent.kind in {STOP, START, JOIN, CONFIRM, HELP, NONE}
    assert intent.topic_keyword is None or intent.topic_keyword in TOPICS


@given(st.sampled_from(DEFAULT_KEYWORDS[STOP]), st.text(alphabet=" .!?,;:-'\"\t\n", max_size=5), st.text(alphabet=" .!?\t", max_size=5))
def test_every_stop_keyword_with_any_surrounding_punctuation(keyword, before, after):
    assert parse(before + keyword.lower() + after) == Intent(STOP)

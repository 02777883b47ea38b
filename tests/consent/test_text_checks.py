"""The consent-text checks: which elements a text holds, in English and French, present and missing."""

import pytest

from consent import text_checks as tc
from consent.text_checks import BRAND, FREQUENCY, HELP, RATES, STOP

COMPLETE_EN = ("Acme Deals: get up to 4 msgs/month with offers. Msg & data rates may apply. "
               "Reply HELP for help, STOP to cancel.")
COMPLETE_FR = ("Acme Bons Plans : jusqu'à 4 SMS par mois. Frais d'envoi d'un SMS selon votre opérateur. "
               "Répondez AIDE pour de l'aide, STOP pour vous désabonner.")


@pytest.mark.parametrize(
    "element, text",
    [
        (FREQUENCY, "Up to 4 msgs/month"),
        (FREQUENCY, "up to 4 messages per month"),
        (FREQUENCY, "4 msgs/mo"),
        (FREQUENCY, "2 texts a week"),
        (FREQUENCY, "one message per day"),
        (FREQUENCY, "Msg frequency varies."),
        (FREQUENCY, "Message frequency may vary"),
        (FREQUENCY, "You will receive recurring automated marketing messages"),
        (FREQUENCY, "Weekly alerts from Acme"),
        (FREQUENCY, "3 marketing text messages per week"),
        (FREQUENCY, "5x/month"),
        (FREQUENCY, "4 SMS par mois maximum"),
        (FREQUENCY, "jusqu'à 2 SMS par semaine"),
        (FREQUENCY, "deux messages par mois"),
        (FREQUENCY, "Fréquence variable"),
        (FREQUENCY, "fréquence des SMS variable"),
        (FREQUENCY, "des SMS promotionnels récurrents"),
        (RATES, "Msg & data rates may apply"),
        (RATES, "Msg&data rates may apply."),
        (RATES, "Message and data rates may apply"),
        (RATES, "message and data rates might apply"),
        (RATES, "Msgs & data rates may apply"),
        (RATES, "Standard message and data rates may apply"),
        (RATES, "Standard rates apply"),
        (RATES, "Carrier message and data rates may apply"),
        (RATES, "MSG & DATA RATES MAY APPLY"),
        (RATES, "Frais d'envoi d'un SMS selon votre opérateur"),
        (RATES, "frais de SMS selon votre forfait"),
        (RATES, "coût d'un SMS"),
        (RATES, "tarif d'un SMS"),
        (RATES, "prix selon opérateur"),
        (RATES, "SMS non surtaxé"),
        (HELP, "Reply HELP for help"),
        (HELP, "Text help to 12345"),
        (HELP, "Répondez AIDE"),
        (HELP, "aide : 01 23 45 67 89"),
        (STOP, "Reply STOP to cancel"),
        (STOP, "STOP au 36111"),
        (STOP, "stop to end"),
        (STOP, "répondez ARRÊT pour vous désabonner"),
    ],
)
def test_element_present(element, text):
    assert tc.has_element(element, text)


@pytest.mark.parametrize(
    "element, text",
    [
        (FREQUENCY, "Get our best offers by text."),
        (FREQUENCY, "Sent 4 days ago"),
        (FREQUENCY, "Offres exclusives par SMS"),
        (FREQUENCY, "Messages from Acme"),
        (RATES, "Rates are great this month"),
        (RATES, "Data may be processed"),
        (RATES, "Msg rates"),
        (RATES, "Nos tarifs baissent"),
        (RATES, "Frais de port offerts"),
        (HELP, "Helpful offers"),
        (HELP, "Contact us"),
        (HELP, "aidez-nous"),
        (STOP, "Unstoppable deals"),
        (STOP, "Reply NO to cancel"),
        (STOP, "désinscription en ligne"),
    ],
)
def test_element_absent(element, text):
    assert not tc.has_element(element, text)


@pytest.mark.parametrize(
    "brand, text, expected",
    [
        ("Acme", "Acme: reply YES", True),
        ("Acme", "ACME deals", True),
        ("Acme Stores", "acme stores: hi", True),
        ("Café Noir", "CAFE NOIR : bienvenue", True),
        ("Acme", "Acmeplus deals", False),
        ("Acme", "Our deals", False),
        ("", "Acme deals", False),
    ],
)
def test_brand(brand, text, expected):
    assert tc.has_element(BRAND, text, brand=brand) is expected


@pytest.mark.parametrize(
    "field, text, brand, expected",
    [
        ("consent_text", COMPLETE_EN, "Acme Deals", []),
        ("consent_text", COMPLETE_FR, "Acme Bons Plans", []),
        ("consent_text", COMPLETE_EN, "Globex", [BRAND]),
        ("consent_text", "Acme: offers by text. Reply STOP to cancel.", "Acme", [FREQUENCY, RATES, HELP]),
        ("consent_text", "Acme : offres par SMS. STOP au 36111.", "Acme", [FREQUENCY, RATES, HELP]),
        ("confirmation_message", "Reply YES to confirm", "Acme", [BRAND, FREQUENCY, RATES, HELP, STOP]),
        ("confirmation_message", "Acme: 2 msgs/wk. Msg & data rates may apply. Reply YES, HELP or STOP.", "Acme", []),
        ("confirmation_message", "Acme : 2 SMS par semaine, coût d'un SMS. Répondez OUI, AIDE ou STOP.", "Acme", []),
        ("welcome_message", "Acme: welcome! Up to 4 msgs/month. Reply HELP for help, STOP to cancel.", "Acme", []),
        ("welcome_message", "Acme: welcome! Reply HELP for help, STOP to cancel.", "Acme", [FREQUENCY]),
        ("welcome_message", "Acme : bienvenue ! 4 SMS par mois. AIDE pour de l'aide, STOP pour arrêter.", "Acme", []),
        ("welcome_message", "Bienvenue !", "Acme", [BRAND, FREQUENCY, HELP, STOP]),
    ],
)
def test_missing(field, text, brand, expected):
    assert tc.missing(field, text, brand=brand) == expected


def test_check_gives_stable_codes_and_names_the_source():
    warnings = tc.check({"consent_text": "Acme offers", "confirmation_message": COMPLETE_EN, "name": "x"},
                        brand="Acme Deals")
    assert [(w.field, w.element, w.code) for w in warnings] == [
        ("consent_text", BRAND, "missing_brand"),
        ("consent_text", FREQUENCY, "missing_frequency"),
        ("consent_text", RATES, "missing_rates"),
        ("consent_text", HELP, "missing_help"),
        ("consent_text", STOP, "missing_stop"),
    ]
    assert '"Acme Deals"' in warnings[0].message
    assert "30924" in warnings[1].message and "CTIA" in warnings[1].message
    assert warnings[0].as_dict()["code"] == "missing_brand"


def test_errors_by_field():
    warnings = tc.check({"consent_text": "Acme: 4 msgs/month, Msg & data rates may apply, HELP, STOP",
                         "welcome_message": "Acme"}, brand="Acme")
    errors = tc.errors_by_field(warnings)
    assert list(errors) == ["welcome_message"]
    assert len(errors["welcome_message"]) == 3


def test_every_requirement_has_a_source_and_matches_its_own_example():
    for requirement in tc.REQUIREMENTS:
        assert requirement.source
        if requirement.element != BRAND:
            for example in requirement.example.split(";"):
                assert tc.has_element(requirement.element, example), example

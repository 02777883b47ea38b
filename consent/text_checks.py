"""What a topic's texts must say: brand, message frequency, rates, HELP and STOP (pure, no ORM).

The industry's rules for recurring programmes (CTIA Messaging Principles and Best Practices, May
2023, §5.1.1 calls-to-action and §5.1.2.1 confirming an opt-in) ask the consent text shown at
opt-in, the confirmation prompt and the welcome message after a confirmation to name the
programme's brand, the message frequency, "Message and data rates may apply", how to get help
and how to opt out. Twilio refuses registrations whose opt-in language lacks them (errors 30540:
the double opt-in confirmation without brand, rates, help or opt-out; 30545: a call-to-action
without the message frequency; 30569: without "message and data rates may apply"; 30909, 30924).
Each requirement below is data with its source; `check` says which of them a text lacks.

Matching is on the keywords' folding (consent/keywords.py: no accents, case-folded, every run of
punctuation or spaces one space: "Msg & data rates" reads `msg data rates`, "4 msgs/mo" reads
`4 msgs mo`), in English and French.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from .keywords import fold

BRAND = "brand"
FREQUENCY = "frequency"
RATES = "rates"
HELP = "help"
STOP = "stop"

CTIA = "CTIA Messaging Principles and Best Practices (May 2023), §5.1.1 and §5.1.2.1"
TWILIO_30924 = ("Twilio error 30924, campaign rejected: consent language missing message frequency, "
                "\"message and data rates may apply\" or opt-out instructions")
TWILIO_30909 = ("Twilio error 30909, campaign rejected: opt-in flow missing message frequency or "
                "the \"message and data rates may apply\" disclosure")
TWILIO_30540 = ("Twilio error 30540, double opt-in confirmation message is required: it must include the brand "
                "name, \"message and data rates may apply\", help and opt-out disclosures")
TWILIO_30545 = "Twilio error 30545, Call-to-Action does not state message frequency"
TWILIO_30569 = "Twilio error 30569, Call-to-Action is missing the message and data rates disclosure"
AF2M = "AF2M Charte Business Messaging (2024, in force 2024-09-01): the STOP opposition mention"

_COUNT = r"(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|un|une|deux|trois|quatre|cinq|six|sept|huit|neuf|dix)"
_PERIOD = (r"(?:day|days|daily|week|weeks|weekly|wk|month|months|monthly|mo|mth|year|yr|jour|jours|semaine|semaines"
           r"|mois|an|annee)")
_MESSAGES = r"(?:msgs?|messages?|texts?|sms|alerts?|notifications?|mms)"


@dataclass(frozen=True)
class Requirement:
    """One element a text must hold: `patterns` are matched on the folded text (the brand is given)."""

    element: str
    label: str  # what the 400 and the warnings say is missing
    example: str
    patterns: tuple[str, ...]
    source: str


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(BRAND, "the brand", "Acme:", (), f"{CTIA} (the programme's brand or name); {TWILIO_30540}"),
    Requirement(
        FREQUENCY, "the message frequency", "Up to 4 msgs/month; Msg frequency varies; 4 SMS par mois maximum",
        (
            rf"\b{_COUNT} (?:\w+ ){{0,3}}{_MESSAGES} (?:a |an |per |each |every |by |par |chaque |\/ )?(?:le |la )?{_PERIOD}\b",
            rf"\b{_COUNT} (?:\w+ ){{0,3}}{_MESSAGES} {_PERIOD}\b",
            rf"\b{_COUNT} ?x? (?:par |per |a |an )?{_PERIOD}\b(?! ago)",
            r"\b(?:msg|message|text|sms) (?:freq|frequency) (?:varies|may vary|will vary)\b",
            r"\bfrequency (?:of messages |of texts )?(?:varies|may vary|will vary)\b",
            r"\b(?:recurring|recurrent|periodic|weekly|daily|monthly) (?:\w+ ){0,2}(?:msgs?|messages?|texts?|alerts?)\b",
            r"\bfrequence (?:des (?:messages|sms) )?(?:variable|varie)\b",
            r"\b(?:messages|sms) (?:\w+ ){0,2}(?:recurrents|periodiques|hebdomadaires|mensuels|quotidiens)\b",
        ),
        f"{CTIA}; {TWILIO_30545}; {TWILIO_30924}",
    ),
    Requirement(
        RATES, "\"Msg & data rates may apply\"", "Msg & data rates may apply; Frais d'envoi d'un SMS selon votre opérateur",
        (
            r"\b(?:msg|msgs|message|messages|messaging|text|sms) (?:and |et )?data rates? (?:may|might|will|can) apply\b",
            r"\bstandard (?:msg |message |messaging |text |sms )?(?:and data )?rates? (?:may |might |will )?apply\b",
            r"\bcarrier (?:msg |message )?(?:and data )?rates? (?:may |might |will )?apply\b",
            r"\bfrais (?:d envoi|de sms|de messagerie|de communication|d un sms)\b",
            r"\bcout d (?:un|envoi d un) sms\b",
            r"\b(?:tarif|prix) (?:d un sms|sms|normal|standard|de votre operateur|selon (?:votre )?operateur)\b",
            r"\bsms non surtaxes?\b",
        ),
        f"{CTIA}; {TWILIO_30569}; {TWILIO_30540}; {TWILIO_30924}; {TWILIO_30909}",
    ),
    Requirement(
        HELP, "HELP (how to get help)", "Reply HELP for help; Répondez AIDE",
        (r"\bhelp\b", r"\baide\b"),
        f"{CTIA} (customer care: the HELP keyword); {TWILIO_30540}",
    ),
    Requirement(
        STOP, "STOP (how to opt out)", "Reply STOP to cancel; STOP au 36xxx",
        (r"\bstop\b", r"\barret\b"),
        f"{CTIA}; {TWILIO_30540}; {TWILIO_30924}; {AF2M}",
    ),
)
BY_ELEMENT = {requirement.element: requirement for requirement in REQUIREMENTS}

# The texts a topic has, each with the elements it must hold.
FIELD_ELEMENTS: dict[str, tuple[str, ...]] = {
    "consent_text": (BRAND, FREQUENCY, RATES, HELP, STOP),
    "confirmation_message": (BRAND, FREQUENCY, RATES, HELP, STOP),
    "welcome_message": (BRAND, FREQUENCY, HELP, STOP),
}


@dataclass(frozen=True)
class TextWarning:
    """One element a text lacks: `code` is stable (`missing_<element>`), `message` is for a person."""

    field: str
    element: str
    code: str
    message: str

    def as_dict(self) -> dict:
        return {"field": self.field, "element": self.element, "code": self.code, "message": self.message}


@cache
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def has_element(element: str, text: str, *, brand: str = "") -> bool:
    """Whether `text` holds `element` (for the brand: names `brand`, folded alike)."""
    folded = fold(text or "")
    if element == BRAND:
        wanted = fold(brand)
        return bool(wanted) and re.search(rf"(?:^| ){re.escape(wanted)}(?: |$)", folded) is not None
    return any(_compiled(pattern).search(folded) for pattern in BY_ELEMENT[element].patterns)


def missing(field: str, text: str, *, brand: str) -> list[str]:
    """The elements `field`'s `text` must hold and lacks, in the order of REQUIREMENTS."""
    return [element for element in FIELD_ELEMENTS[field] if not has_element(element, text, brand=brand)]


def warning_for(field: str, element: str, *, brand: str) -> TextWarning:
    requirement = BY_ELEMENT[element]
    what = f'the brand "{brand}"' if element == BRAND else requirement.label
    return TextWarning(field=field, element=element, code=f"missing_{element}",
                   message=f"Must name {what} (e.g. {requirement.example}). Source: {requirement.source}.")


def check(texts: dict[str, str], *, brand: str) -> list[TextWarning]:
    """Every element the given texts lack (fields not in FIELD_ELEMENTS are ignored)."""
    return [warning_for(field, element, brand=brand)
            for field, text in texts.items() if field in FIELD_ELEMENTS
            for element in missing(field, text, brand=brand)]


def errors_by_field(warnings: list[TextWarning]) -> dict[str, list[str]]:
    """The warnings as field errors (a 400's body, a form's errors): field → messages."""
    errors: dict[str, list[str]] = {}
    for warning in warnings:
        errors.setdefault(warning.field, []).append(warning.message)
    return errors

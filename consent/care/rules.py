"""When a care reply may go out (pure: no ORM). Each rule is data, with its source.

Rule 18 of docs/design.md: on WhatsApp a free-form reply only inside the 24-hour window the person's
own message opened, otherwise only an approved template; on SMS nothing after the number's last
keyword on the channel was STOP, because the carrier blocks it until the person texts START.
"""

from __future__ import annotations

from dataclasses import dataclass

from consent import keywords as kw

WINDOW_CLOSED = "whatsapp_window_closed"
NUMBER_STOPPED = "sms_number_stopped"
NOT_MESSAGEABLE = "contact_not_messageable"
NO_TEMPLATE = "no_care_template"
TEMPLATE_NOT_ON_SMS = "template_only_on_whatsapp"


@dataclass(frozen=True)
class Refusal:
    reason: str
    detail: str
    source: str
    template_offered: bool = False


REFUSALS = {
    WINDOW_CLOSED: Refusal(
        WINDOW_CLOSED,
        "The person's 24-hour WhatsApp window is closed: a free-form reply is refused; send the approved "
        "care template instead ({\"template\": true}).",
        "Meta, WhatsApp Cloud API, 'Customer service windows': free-form messages only within 24 hours of "
        "the user's last message; outside it, template messages only "
        "(developers.facebook.com/docs/whatsapp/cloud-api/guides/send-messages#customer-service-windows)",
        template_offered=True,
    ),
    NUMBER_STOPPED: Refusal(
        NUMBER_STOPPED,
        "The number's last keyword on SMS was STOP: the carrier blocks every message to it until the person "
        "texts START.",
        "Twilio error 21610 'Attempt to send to unsubscribed recipient' (twilio.com/docs/api/errors/21610); "
        "CTIA Messaging Principles and Best Practices §5.1 (opt-out honoured until the person opts in again)",
    ),
    NOT_MESSAGEABLE: Refusal(
        NOT_MESSAGEABLE,
        "The number is erased or on the suppression list: nothing is sent to it.",
        "rule 1 and rule 10 of docs/design.md (erasure, invalid numbers)",
    ),
    NO_TEMPLATE: Refusal(
        NO_TEMPLATE,
        "No care template is configured (WHATSAPP_CARE_TEMPLATE): outside the window nothing can be sent.",
        "Meta, WhatsApp Business Platform: templates must be approved before use",
    ),
}

# Keywords after which the carrier's block on a number ends (START, UNSTOP; YES also re-subscribes
# on Twilio's Advanced Opt-Out), or begins (a bare STOP). HELP changes neither.
UNBLOCKING = frozenset({kw.START, kw.JOIN, kw.CONFIRM})


def sms_blocked(last_keywords: list[kw.Intent]) -> bool:
    """Whether the carrier blocks the number, from its keyword intents on SMS, newest first.

    Only a whole-message STOP (no topic) blocks: `STOP PROMO` is ours to apply, not the carrier's.
    """
    for intent in last_keywords:
        if intent.kind == kw.STOP and not intent.topic_keyword:
            return True
        if intent.kind in UNBLOCKING:
            return False
    return False


def reply_refusal(*, channel: str, template: bool, window_open: bool, messageable: bool, stopped: bool,
                  template_configured: bool) -> Refusal | None:
    """Why a care reply may not go out now (None: it may)."""
    if not messageable:
        return REFUSALS[NOT_MESSAGEABLE]
    if channel == "whatsapp":
        if template:
            return None if template_configured else REFUSALS[NO_TEMPLATE]
        return None if window_open else REFUSALS[WINDOW_CLOSED]
    if stopped:
        return REFUSALS[NUMBER_STOPPED]
    return None

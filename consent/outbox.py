"""Transactional messages (prompts and replies) before they leave: render, store, queue.

Promotional broadcasts have their own pipeline in `broadcasts`; these messages are the
service's answers to a person and are never promotional. `consent.messaging` hands them over.
"""

import functools
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing

from config.enqueue import enqueue_on_commit

from . import rows, text_checks
from .models import Channel, Consent, Contact, Message, Topic

DELIVER_TASK = "consent.tasks.message_deliver_task"

CONFIRM_INSTRUCTION = "Reply YES to confirm, STOP to cancel."


# What is stored, listed and exported in place of the token: only the provider gets a usable link.
REDACTED_TOKEN = "[redacted]"


def confirmation_link(token: str = REDACTED_TOKEN) -> str:
    return f"{settings.PUBLIC_BASE_URL}/optin/confirm/{token}/"


# The preference centre's link (rule 17): signed (django.core.signing, with the time it was made),
# scoped to one contact and channel, checked for age when opened (CONSENT_PREFERENCE_LINK_MAX_AGE_DAYS).
# Its payload is readable base64: it holds the contact's id and the start of the keyed pseudonym of
# the number, never the number. As with confirmation links, what is stored shows it redacted and the
# sender puts a fresh token for the message's own contact and channel into what the provider gets, so
# no staff member can act on the page as the person.
PREFERENCE_SALT = "consent.preferences"


def preference_token(*, contact: Contact, channel: str) -> str:
    return signing.dumps({"c": contact.pk, "ch": channel, "p": contact.phone_pseudonym[:16]}, salt=PREFERENCE_SALT)


def preference_link(token: str = REDACTED_TOKEN) -> str:
    return f"{settings.PUBLIC_BASE_URL}/preferences/{token}/"


def with_preference_token(value, *, contact: Contact, channel: str):
    """`value` (a body) with its redacted preference link carrying a fresh token for this contact and channel."""
    redacted = f"/preferences/{REDACTED_TOKEN}/"
    if isinstance(value, str) and redacted in value:
        return value.replace(redacted, f"/preferences/{preference_token(contact=contact, channel=channel)}/")
    return value


def whatsapp_window_open(contact: Contact, now: datetime) -> bool:
    return contact.whatsapp_window_until is not None and contact.whatsapp_window_until > now


def prompt_for(*, contact: Contact, topic: Topic, channel: str, now: datetime) -> tuple[str, dict | None]:
    """The confirmation prompt: the topic's text, the reply instruction and the link (token redacted).

    On WhatsApp outside the 24-hour window, only a template may be sent: the configured
    utility template, with the topic name and the link as its body parameters. The sender
    puts a fresh token into the link when it hands the prompt over.
    """
    link = confirmation_link()
    text = prompt_text(topic.current_text.confirmation_message, link=link)
    if channel == Channel.WHATSAPP and not whatsapp_window_open(contact, now):
        template = {
            "name": settings.WHATSAPP_OPTIN_TEMPLATE,
            "language": {"code": settings.WHATSAPP_OPTIN_TEMPLATE_LANGUAGE},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": topic.name}, {"type": "text", "text": link}]}
            ],
        }
        return text, template
    return text, None


def prompt_text(confirmation_message: str, *, link: str) -> str:
    """The prompt's words: the topic's confirmation message with the link, and the reply instruction if it has none."""
    text = confirmation_message.strip()
    text = text.replace("{link}", link) if "{link}" in text else f"{text} {link}".strip()
    if "YES" not in text.upper():
        text = f"{text} {CONFIRM_INSTRUCTION}"
    return text


def topic_brand(topic_name: str) -> str:
    """The brand a topic's messages name: CONSENT_BRAND_NAME, or without it the topic's own name."""
    return settings.CONSENT_BRAND_NAME.strip() or topic_name


# The welcome after a confirmation (CTIA §5.1.2.1: brand, frequency, HELP, STOP), used when a topic's texts
# have none of their own; CONSENT_REPLY_TEXTS["confirmed"] may replace it ({brand}, {topics}).
WELCOME_DEFAULT = ("{brand}: You are subscribed to {topics}. Msg & data rates may apply. "
                   "Reply HELP for help, STOP to unsubscribe.")
WELCOME_INSTRUCTION = "Reply HELP for help, STOP to unsubscribe."


def welcome_text(*, welcome_message: str, topic_name: str) -> str:
    """The welcome for one topic: its own text or the default, always naming the brand, HELP and STOP."""
    brand = topic_brand(topic_name)
    template = (getattr(settings, "CONSENT_REPLY_TEXTS", None) or {}).get("confirmed") or WELCOME_DEFAULT
    return _welcome_completed(welcome_message.strip() or template.format(brand=brand, topics=topic_name), brand)


@functools.lru_cache(maxsize=1024)
def _welcome_completed(text: str, brand: str) -> str:
    """`text` with the brand, HELP and STOP added where it lacks them. Kept: a topic has one welcome, and
    every YES the applier confirms checked it again (three text checks, about 4 % of the applier's CPU)."""
    if not text_checks.has_element(text_checks.BRAND, text, brand=brand):
        text = f"{brand}: {text}"
    if not (text_checks.has_element(text_checks.HELP, text) and text_checks.has_element(text_checks.STOP, text)):
        text = f"{text} {WELCOME_INSTRUCTION}"
    return text


def welcome_body(consents: list[Consent]) -> str:
    """The one welcome message after confirming `consents` (one line per distinct text), in their text versions."""
    return "\n".join(dict.fromkeys(welcome_text(welcome_message=c.text.welcome_message if c.text_id else "",
                                                topic_name=c.topic.name) for c in consents))


def topic_text_warnings(*, name: str, consent_text: str, confirmation_message: str,
                        welcome_message: str = "") -> list[text_checks.TextWarning]:
    """What a topic's texts lack, as the person will read them (the prompt without its link, the welcome as sent)."""
    return text_checks.check({
        "consent_text": consent_text,
        "confirmation_message": prompt_text(confirmation_message, link=""),
        "welcome_message": welcome_text(welcome_message=welcome_message, topic_name=name),
    }, brand=topic_brand(name))


def topic_warnings(topic: Topic) -> list[text_checks.TextWarning]:
    text = topic.current_text
    if text is None:
        return []
    return topic_text_warnings(name=topic.name, consent_text=text.consent_text,
                               confirmation_message=text.confirmation_message, welcome_message=text.welcome_message)


# The one confirmation of a revocation (47 CFR §64.1200(a)(12)): one text, within five minutes, that only
# confirms the opt-out (no promotional content), naming the brand (CTIA). Later than this it is not sent.
REVOCATION_CONFIRMATION_WITHIN = timedelta(minutes=5)
REVOCATION_CONFIRMATIONS = {
    "stop_all": "{brand}You are unsubscribed and will receive no more promotional messages on this number. "
                "Reply START to subscribe again.",
    "stop_topic": "{brand}You are unsubscribed from {topics} and will receive no more of these messages. "
                  "Reply START to subscribe again.",
}


def _names(topics) -> str:
    names = list(dict.fromkeys(t.name for t in topics))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def revocation_confirmation_body(*, topic: Topic | None = None, revoked: list[Topic] | None = None) -> str | None:
    """The confirmation of a revocation of `topic` (or of every topic), naming the brand.

    The brand is `CONSENT_BRAND_NAME`; without one, the names of the topics revoked, so a bare
    revocation needs `revoked` then: None means "not known before the revocation".
    `CONSENT_REPLY_TEXTS` may replace the texts (keys `stop_all`, `stop_topic`; `{brand}` and `{topics}`).
    """
    brand = settings.CONSENT_BRAND_NAME.strip()
    if not brand and topic is None and revoked is None:
        return None
    if not brand:
        named = [topic] if topic is not None else revoked
        brand = _names(named) if named else ""
    name = "stop_topic" if topic is not None else "stop_all"
    template = (getattr(settings, "CONSENT_REPLY_TEXTS", None) or {}).get(name) or REVOCATION_CONFIRMATIONS[name]
    return template.format(brand=f"{brand}: " if brand else "", topics=topic.name if topic is not None else "")


def outbound(*, contact: Contact, channel: str, kind: str, body: str, topic: Topic | None = None,
             template: dict | None = None) -> Message:
    """An outbound message, not stored yet: `messages_store` stores and sends it."""
    return Message(contact=contact, channel=channel, direction=Message.Direction.OUTBOUND, kind=kind, topic=topic,
                   body=body, template=template, status=Message.Status.QUEUED)


def message_queue(**fields) -> Message:
    """Store an outbound message and send it once the surrounding transaction commits."""
    return messages_store([outbound(**fields)])[0]


def messages_store(messages: list[Message]) -> list[Message]:
    """Store messages in one statement; the outbound ones are sent once the surrounding transaction commits."""
    stored = rows.insert_many(messages)  # one INSERT … RETURNING; its figure in consent/rows.py
    for message in stored:
        if message.direction == Message.Direction.OUTBOUND and message.status == Message.Status.QUEUED:
            # robust: a broker outage must not turn an applied change into an error; the upkeep
            # job hands messages still queued later to the broker again. That is also why the publish
            # does not retry (kombu's retry wrapper costs more than the publish on every webhook).
            enqueue_on_commit(DELIVER_TASK, message.pk, retry=False, robust=True)
    return stored



"""A text from a person, recorded and applied as a verified webhook would be: for trying the service with the
console provider. Unlike a webhook, which workers apply after the 200, it applies at once, so that the person
typing sees the effect."""

import uuid

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.http import QueryDict

from config.logging import mask
from consent import revocation
from consent.inbound import InboundResult
from consent.intake.applier import intake_apply_batch
from consent.intake.services import intake_record
from consent.models import Channel, InboundReceipt, Message, RevocationReview
from consent.phones import InvalidPhoneNumber, parse_phone
from consent.webhooks.views import twilio_inbound_record

CONSOLE = "console"


class Command(BaseCommand):
    help = ("Act as the customer: apply TEXT as if PHONE had sent it (STOP, START, YES, HELP, JOIN <KEYWORD>, "
            "or anything else for customer care), through the webhook's own path. Console provider only.")

    def add_arguments(self, parser):
        parser.add_argument("phone", help="The sender, in E.164 (+14155550123).")
        parser.add_argument("text", help="What the person texts, e.g. STOP or \"JOIN PROMO\".")
        parser.add_argument("--channel", choices=["sms", "whatsapp"], default="sms")

    def handle(self, *args, phone, text, channel, **options):
        try:
            e164 = parse_phone(phone, default_region=settings.DEFAULT_PHONE_REGION).e164
        except InvalidPhoneNumber as exc:
            raise CommandError(f"Bad PHONE {phone!r}: {exc}", returncode=2) from None
        provider = settings.SMS_PROVIDER if channel == Channel.SMS else settings.WHATSAPP_PROVIDER
        if provider != CONSOLE:
            # With a real provider this would record a consent the person never gave.
            raise CommandError(f"The {channel} provider is {provider!r}: manage.py inbound only acts as a customer "
                               "with the console provider, where no real person can text.", returncode=2)
        form = QueryDict(mutable=True)
        form.update({
            "MessageSid": f"SM{uuid.uuid4().hex}",
            "From": f"whatsapp:{e164}" if channel == Channel.WHATSAPP else e164,
            "To": settings.TWILIO_FROM_NUMBER,
            "Body": text,
            "NumMedia": "0",
        })
        record = twilio_inbound_record(form, provider=CONSOLE)
        intake_record(record)
        for line in _describe(_apply_now(record), e164, channel):
            self.stdout.write(line)


def _apply_now(record) -> InboundResult:
    """Apply what is recorded, in order, until this record is applied: its result."""
    receipt = InboundReceipt.objects.get(channel=record.channel, provider_message_id=record.provider_message_id)
    while True:
        batch = intake_apply_batch()
        if receipt.pk in batch.results:
            return batch.results[receipt.pk]
        if not batch.applied:
            receipt.refresh_from_db()
            return InboundResult("ignored", reason=receipt.last_error or "not applied yet (an older message waits)")


def _describe(result, phone: str, channel: str):
    """What happened, in plain words."""
    intent = result.intent.kind if result.intent.is_keyword else None
    if result.outcome != "applied":
        yield f"Nothing applied: {result.reason or result.outcome}."
        return
    if intent is None and result.revocation.kind == revocation.REVOCATION:
        yield (f"Received from {phone} on {channel}: not a keyword, but a revocation in other words "
               f"(rule {result.revocation.rule_name}): applied like STOP.")
    elif intent is None and result.revocation.kind == revocation.MAYBE:
        review = RevocationReview.objects.filter(message=result.message).first()
        deadline = f", applied at {review.deadline:%Y-%m-%d %H:%M %Z} unless a person decides" if review else ""
        yield (f"Received from {phone} on {channel}: not a keyword; may be a revocation (rule "
               f"{result.revocation.rule_name}): in the review queue, no change yet{deadline}.")
    elif intent is None:
        yield f"Received from {phone} on {channel}: not a keyword, stored for customer care (no reply, no change)."
    else:
        topic = f" {result.intent.topic_keyword.upper()}" if result.intent.topic_keyword else ""
        yield f"Received from {phone} on {channel}: keyword {intent.upper()}{topic} applied."
    if result.consents:
        yield "Consents changed:"
        for consent in result.consents:
            yield f"  {consent.topic.slug} ({consent.channel}): {consent.status}"
    elif intent is not None:
        yield "No consent changed."
    queued = Message.objects.filter(contact=result.message.contact, direction=Message.Direction.OUTBOUND,
                                    pk__gt=result.message.pk).order_by("pk")
    if queued:
        yield (f"Replies queued ({len(queued)}); the worker sends them "
               "(console provider: they show up in the worker's output):")
        for message in queued:
            yield f"  [{message.kind}] {mask(message.body)}"
    elif intent is not None:
        yield "No reply queued."

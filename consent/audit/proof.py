"""The proof of consent for one contact: what they agreed to, when, how, under which words, and when
they withdrew, with each event's place in the chain and a verification result. Signed, so that the
bundle handed to a regulator can be checked against the published key."""

from django.utils import timezone

from consent.hashing import chain_hash, format_instant, topic_texts_sha256
from consent.ledger import ledger_head, pseudonym_for
from consent.models import ConsentEvent, Contact, Suppression, TopicText
from consent.selectors import effective_status
from consent.verification import ROW_FIELDS, chained_fields_from_row, verify_ledger

from . import signing
from .export import ERASED, export_record
from .receipts import RECEIPT_VERSION
from .registry import promotional_messages_for_contact

PROOF_FORMAT_VERSION = "consent-proof/1"


def contact_for_proof(e164: str) -> Contact | None:
    """The contact for a number, found by pseudonym so that erased contacts still have their proof."""
    return Contact.objects.filter(phone_pseudonym=pseudonym_for(e164)).first()


def _instant(value):
    return format_instant(value) if value else None


def contact_proof(*, contact: Contact, now=None, receipts_href: str | None = None) -> dict:
    """The proof bundle as JSON-ready data, signed over its canonical JSON (without `signature`)."""
    now = now or timezone.now()
    rows = list(ConsentEvent.objects.filter(contact=contact).order_by("seq").values_list(*ROW_FIELDS, "text_id"))
    head_seq, head_hash = ledger_head()
    neighbour_seqs = {row[0] - 1 for row in rows} | {row[0] + 1 for row in rows}
    neighbours = {seq: (prev, hash_) for seq, prev, hash_ in
                  ConsentEvent.objects.filter(seq__in=neighbour_seqs).values_list("seq", "prev_hash", "hash")}
    events, all_ok = [], True
    for row in rows:
        seq, prev_hash, hash_ = row[0], row[13], row[14]
        hash_ok = chain_hash(prev_hash, chained_fields_from_row(row)) == hash_
        before = neighbours.get(seq - 1)
        after = neighbours.get(seq + 1)
        linked_before = prev_hash == (before[1] if before else ("0" * 64 if seq == 1 else None))
        linked_after = (after[0] == hash_) if after else (seq == head_seq and hash_ == head_hash)
        all_ok = all_ok and hash_ok and linked_before and linked_after
        record = export_record(row[:15] + (contact.phone,))
        record.update({"hash_ok": hash_ok, "linked_to_previous": linked_before, "linked_to_next": linked_after})
        events.append(record)

    consents = []
    text_ids = {row[15] for row in rows if row[15]}
    for consent in contact.consents.select_related("topic", "text").order_by("topic__slug", "channel"):
        text_ids.add(consent.text_id)
        consents.append({
            "topic": consent.topic.slug, "channel": consent.channel, "status": effective_status(consent, now),
            "source": consent.source, "requested_at": _instant(consent.requested_at),
            "confirm_by": _instant(consent.confirm_by), "confirmed_at": _instant(consent.confirmed_at),
            "expires_at": _instant(consent.expires_at), "revoked_at": _instant(consent.revoked_at),
            "text_version": consent.text.version, "text_sha256": consent.text.sha256,
        })
    texts = []
    for text in TopicText.objects.filter(pk__in=text_ids).select_related("topic").order_by("topic__slug", "version"):
        texts.append({
            "topic": text.topic.slug, "version": text.version, "consent_text": text.consent_text,
            "confirmation_message": text.confirmation_message, "help_message": text.help_message,
            "welcome_message": text.welcome_message, "sha256": text.sha256, "created_at": _instant(text.created_at),
            "sha256_ok": topic_texts_sha256(text.consent_text, text.confirmation_message, text.help_message,
                                            text.welcome_message) == text.sha256,
        })
    messages = [
        {"id": m.pk, "direction": m.direction, "kind": m.kind, "channel": m.channel,
         "topic": m.topic.slug if m.topic_id else None, "body": m.body,
         "template": (m.template or {}).get("name") if m.template else None, "status": m.status,
         "provider_message_id": m.provider_message_id, "error_code": m.error_code,
         "created_at": _instant(m.created_at), "sent_at": _instant(m.sent_at), "status_at": _instant(m.status_at)}
        for m in contact.messages.select_related("topic").order_by("created_at", "id")
    ]
    # Every promotional message with the ledger event that authorised it and that event's text version (rule 14).
    promotional = promotional_messages_for_contact(contact.pk)
    chain = verify_ledger(resume=True).as_dict()
    proof = {
        "format": PROOF_FORMAT_VERSION,
        "generated_at": format_instant(now),
        "contact": {
            "phone": contact.phone or ERASED, "subject": contact.phone_pseudonym, "country": contact.country,
            "timezone": contact.timezone, "created_at": _instant(contact.created_at),
            "erased_at": _instant(contact.erased_at),
            "suppressed": Suppression.objects.filter(phone_pseudonym=contact.phone_pseudonym).exists(),
        },
        "consents": consents,
        "events": events,
        "texts": texts,
        "messages": messages,
        "promotional_messages": promotional,
        # The consent receipts (Kantara v1.1) of these consents, a request away (GET contacts/{phone}/receipts/).
        "receipts": {"href": receipts_href, "format": RECEIPT_VERSION},
        "verification": {
            "ok": bool(chain["ok"] and all_ok),
            "contact_events_ok": all_ok,
            "chain": chain,
        },
        "algorithm": signing.ALGORITHM,
        "key_id": signing.key_id(),
    }
    # Only the signer holds the private key: elsewhere the proof goes out unsigned, and says so.
    proof["signature"] = signing.sign(proof) if signing.has_private_key() else None
    return proof

"""Consent receipts: per consent, a machine-readable record in the Kantara Initiative Consent Receipt
Specification v1.1.0 (2018-02-20, https://kantarainitiative.org/file-downloads/consent-receipt-specification-v1-1-0/).

One receipt per consent that was ever given (a confirmed or imported ledger event), for the latest such
event; its content comes from that event, the text version it names and the controller's settings.
The field mapping is documented in docs/audit.md. Each receipt is signed (Ed25519, over its canonical
JSON) where the signing key is held, as proofs are.
"""

import uuid

from django.conf import settings
from django.utils import timezone

from consent.hashing import format_instant
from consent.models import AUTHORISING_KINDS, Consent, ConsentEvent, Contact, EventKind, TopicText
from consent.selectors import effective_status

from . import signing

RECEIPT_VERSION = "KI-CR-v1.1.0"
# Stable receipt ids: a UUIDv5 of the authorising event's id, so a receipt re-issued is the same receipt.
RECEIPT_NAMESPACE = uuid.UUID("5d8c7c7e-3f0b-4bb8-9a55-0d3c1e1f9a21")
# Category labels as the specification's examples write them (Kantara CR v1.1, appendix: purpose and PII categories).
PURPOSE_CATEGORY = "6 - Marketing"
PII_CATEGORY = "2 - Contact"


def _collection_method(request_source: str | None, event_kind: str, event_source: str) -> str:
    if event_kind == EventKind.IMPORTED:
        return "Imported record of an earlier consent (legacy proof)"
    asked = f"requested via {request_source}" if request_source else "requested"
    return f"Double opt-in: {asked}, confirmed via {event_source}"


def _controller() -> dict:
    controller = {
        "piiController": settings.CONSENT_CONTROLLER_NAME,
        "onBehalf": False,
        "contact": settings.CONSENT_CONTROLLER_CONTACT,
        "address": {"streetAddress": settings.CONSENT_CONTROLLER_ADDRESS} if settings.CONSENT_CONTROLLER_ADDRESS else {},
        "email": settings.CONSENT_CONTROLLER_EMAIL,
        "phone": settings.CONSENT_CONTROLLER_PHONE,
    }
    if settings.CONSENT_POLICY_URL:
        controller["piiControllerUrl"] = settings.CONSENT_POLICY_URL
    return controller


def consent_receipt(*, contact: Contact, consent: Consent, event: dict, text: TopicText | None,
                    request_source: str | None) -> dict:
    """The Kantara receipt for one consent as given by `event` (a dict of the ledger event's fields). Pure."""
    expires = (event.get("evidence") or {}).get("consent_expires_at")
    termination = ("On revocation (reply STOP) or at " + expires) if expires and expires != "never" else (
        "On revocation (reply STOP)")
    return {
        "version": RECEIPT_VERSION,
        "jurisdiction": contact.country or settings.CONSENT_RECEIPT_JURISDICTION,
        "consentTimestamp": int(event["occurred_at"].timestamp()),
        "collectionMethod": _collection_method(request_source, event["kind"], event["source"]),
        "consentReceiptID": str(uuid.uuid5(RECEIPT_NAMESPACE, str(event["uuid"]))),
        "publicKey": signing.public_key_pem(),
        "language": settings.CONSENT_RECEIPT_LANGUAGE,
        "piiPrincipalId": contact.phone or f"pseudonym:{contact.phone_pseudonym}",
        "piiControllers": [_controller()],
        "policyUrl": settings.CONSENT_POLICY_URL,
        "services": [{
            "service": f"{consent.topic.name} ({consent.get_channel_display()})",
            "purposes": [{
                "purpose": text.consent_text if text else consent.topic.name,
                "purposeCategory": [PURPOSE_CATEGORY],
                "consentType": "EXPLICIT",
                "piiCategory": [PII_CATEGORY],
                "primaryPurpose": True,
                "termination": termination,
                "thirdPartyDisclosure": False,
            }],
        }],
        "sensitive": False,
        "spiCat": [],
    }


def contact_receipts(*, contact: Contact, now=None) -> list[dict]:
    """A receipt per consent of the contact that was ever given, with where it sits in the ledger, signed where possible."""
    now = now or timezone.now()
    events = list(ConsentEvent.objects.filter(contact=contact, topic__isnull=False).order_by("seq").values(
        "seq", "uuid", "kind", "topic_id", "channel", "source", "occurred_at", "text_id", "text_version",
        "text_sha256", "evidence", "hash"))
    given, requested = {}, {}
    for event in events:
        key = (event["topic_id"], event["channel"])
        if event["kind"] == EventKind.REQUESTED:
            requested[key] = event["source"]
        elif event["kind"] in AUTHORISING_KINDS:
            given[key] = (event, requested.get(key))
    texts = TopicText.objects.in_bulk({e["text_id"] for e, _ in given.values() if e["text_id"]})
    receipts = []
    for consent in contact.consents.select_related("topic").order_by("topic__slug", "channel"):
        found = given.get((consent.topic_id, consent.channel))
        if found is None:
            continue  # never given: nothing to give a receipt for
        event, request_source = found
        receipt = consent_receipt(contact=contact, consent=consent, event=event, text=texts.get(event["text_id"]),
                                  request_source=request_source)
        receipts.append({
            "topic": consent.topic.slug, "channel": consent.channel, "status": effective_status(consent, now),
            "ledger_event": {"sequence": event["seq"], "event_id": str(event["uuid"]), "hash": event["hash"],
                             "occurred_at": format_instant(event["occurred_at"]),
                             "text_version": event["text_version"], "text_sha256": event["text_sha256"]},
            "receipt": receipt,
            "algorithm": signing.ALGORITHM,
            "key_id": signing.key_id(),
            # Only the signer holds the private key: elsewhere the receipt goes out unsigned, and says so.
            "signature": signing.sign(receipt) if signing.has_private_key() else None,
        })
    return receipts

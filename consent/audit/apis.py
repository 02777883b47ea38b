"""Audit HTTP API: ledger events, verification, streamed exports, texts, the public key, proofs, erasure."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.filters import filter_or_400
from config.pagination import CursorPagination
from consent import services
from consent.erasure import contact_erase
from consent.hashing import format_instant, topic_texts_sha256
from consent.ledger import ledger_head
from consent.models import (
    ConsentEvent,
    LedgerCheckpoint,
    StaffAction,
    TopicText,
    actor_for,
)
from consent.permissions import IsAdminRole, IsAuditorRole
from consent.verification import verify_ledger, verify_state

from . import signing
from .actions import action_as_dict, action_record, contact_object, verify_actions
from .checkpoints import checkpoint_as_dict, checkpoint_signature_valid
from .export import (
    CONTENT_TYPES,
    FORMATS,
    ExportStream,
    event_record,
    filters_from_params,
    http_export_bound,
    manifest_build,
)
from .filters import AuditEventFilter, StaffActionFilter
from .proof import contact_for_proof, contact_proof
from .receipts import RECEIPT_VERSION, contact_receipts
from .registry import promotional_messages_verify


class FormatParameterIgnored(DefaultContentNegotiation):
    """Always JSON: these views read `?format=` themselves (csv, jsonl, html) instead of DRF's renderer switch."""

    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = renderers[0]
        return renderer, renderer.media_type


def _flag(params, name: str) -> bool:
    if name not in params:
        return False
    value = params[name].strip().lower()  # present but empty (`?resume=`) is not a boolean: 400
    if value in ("0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValidationError({name: "true or false."})


EVENT_FILTER_PARAMETERS = [
    OpenApiParameter("phone", str, description="E.164 number (also finds erased contacts' events)."),
    OpenApiParameter("topic", str), OpenApiParameter("channel", str), OpenApiParameter("kind", str),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="occurred_at ≥ since"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="occurred_at < until"),
]


UPTO_PARAMETER = OpenApiParameter(
    "upto", int, description="Stop at this ledger sequence number (the manifest's chain_head.seq); default: the head "
                             "for the export, the latest signed checkpoint for its manifest.")


class EventRecordSerializer(serializers.Serializer):
    """One ledger event as exported (documented in docs/audit.md)."""

    sequence = serializers.IntegerField()
    event_id = serializers.UUIDField()
    occurred_at = serializers.CharField()
    recorded_at = serializers.CharField()
    kind = serializers.CharField()
    phone = serializers.CharField()
    subject = serializers.CharField()
    topic = serializers.CharField()
    channel = serializers.CharField()
    source = serializers.CharField()
    actor = serializers.CharField()
    text_version = serializers.IntegerField(allow_null=True)
    text_sha256 = serializers.CharField()
    evidence = serializers.DictField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()


class SeqCursorPagination(CursorPagination):
    """Ledger events and staff actions alike: both chains are read in sequence order."""

    ordering = "seq"
    page_size = 100
    page_size_query_param = "page_size"


class AuditEventListApi(APIView):
    """Ledger events in sequence order, filtered, cursor-paginated (auditors and admins)."""

    permission_classes = [IsAdminRole | IsAuditorRole]
    pagination_class = SeqCursorPagination

    @extend_schema(
        parameters=[*EVENT_FILTER_PARAMETERS, OpenApiParameter("cursor", str), OpenApiParameter("page_size", int)],
        responses=inline_serializer("AuditEventPage", {
            "next": serializers.URLField(allow_null=True), "previous": serializers.URLField(allow_null=True),
            "results": EventRecordSerializer(many=True)}))
    def get(self, request):
        queryset = filter_or_400(AuditEventFilter, request, ConsentEvent.objects.select_related("contact"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([event_record(event) for event in page])


class AuditVerifyApi(APIView):
    """Verify the chain (or, with ?resume=true, from the latest valid signed checkpoint) and the consent rows."""

    permission_classes = [IsAdminRole | IsAuditorRole]

    @extend_schema(parameters=[OpenApiParameter("resume", bool), OpenApiParameter(
                       "deliveries", bool, description="Also check every handed-over delivery against the ledger.")],
                   responses=inline_serializer("VerifyReport", {
                       "ok": serializers.BooleanField(), "events": serializers.IntegerField(),
                       "head": serializers.DictField(),
                       "first_bad_seq": serializers.IntegerField(required=False, allow_null=True),
                       "problem": serializers.CharField(required=False),
                       "checked_from_seq": serializers.IntegerField(),
                       "checkpoint": serializers.DictField(allow_null=True),
                       "external_checkpoint": serializers.DictField(allow_null=True),
                       "state": serializers.DictField(), "actions": serializers.DictField(),
                       "deliveries": serializers.DictField(required=False)}))
    def get(self, request):
        report = verify_ledger(resume=_flag(request.query_params, "resume"))
        deliveries = _flag(request.query_params, "deliveries")
        state = verify_state()
        actions = verify_actions()
        data = {**report.as_dict(), "ok": report.ok and state.ok and actions.ok, "state": state.as_dict(),
                "actions": actions.as_dict()}
        if deliveries:
            messages = promotional_messages_verify()
            data["deliveries"] = messages.as_dict()
            data["ok"] = data["ok"] and messages.ok
        return Response(data)


class AuditExportApi(APIView):
    """The ledger (or part of it) as CSV or JSON Lines, streamed up to the head at request time."""

    permission_classes = [IsAdminRole | IsAuditorRole]
    content_negotiation_class = FormatParameterIgnored

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=FORMATS)] + [
        p for p in EVENT_FILTER_PARAMETERS if p.name in ("since", "until", "topic", "channel")] + [UPTO_PARAMETER],
        responses={(200, "text/csv"): OpenApiTypes.STR, (200, "application/x-ndjson"): OpenApiTypes.STR})
    def get(self, request):
        fmt = _export_format(request)
        filters = filters_from_params(request.query_params)
        if request.query_params.get("upto") not in (None, ""):
            head_seq, head_hash, _ = http_export_bound(request.query_params["upto"])
        else:
            head_seq, head_hash = ledger_head()
        stream = ExportStream(fmt=fmt, filters=filters, upto_seq=head_seq)
        response = StreamingHttpResponse(iter(stream), content_type=CONTENT_TYPES[fmt])
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="consent-ledger-{stamp}.{fmt}"'
        response["X-Ledger-Head-Seq"] = str(head_seq)
        response["X-Ledger-Head-Hash"] = head_hash
        return response


class AuditExportManifestApi(APIView):
    """The manifest of `GET audit/export/` with the same parameters: count, first/last sequence, the SHA-256 and size
    of the bytes that export streams, the chain head it stops at and its signed checkpoint, the texts, and the
    manifest's own signature where this process holds the signing key (documented in docs/audit.md).

    Without `upto` both stop at the latest valid signed checkpoint, so the chain head is signed either way:
    fetch the manifest, then the export with `upto` = its `chain_head.seq`.
    """

    permission_classes = [IsAdminRole | IsAuditorRole]
    content_negotiation_class = FormatParameterIgnored

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=FORMATS)] + [
        p for p in EVENT_FILTER_PARAMETERS if p.name in ("since", "until", "topic", "channel")] + [UPTO_PARAMETER],
        responses=OpenApiTypes.OBJECT)
    def get(self, request):
        fmt = _export_format(request)
        filters = filters_from_params(request.query_params)
        head_seq, head_hash, checkpoint = http_export_bound(request.query_params.get("upto"))
        stream = ExportStream(fmt=fmt, filters=filters, upto_seq=head_seq)
        for _ in stream:  # the digest of exactly what the export streams
            pass
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        return Response(manifest_build(stream=stream, file_name=f"consent-ledger-{stamp}.{fmt}", fmt=fmt,
                                       filters=filters, head=(head_seq, head_hash), checkpoint=checkpoint,
                                       verification=None))


def _export_format(request) -> str:
    fmt = request.query_params.get("format", "csv")  # present but empty is an error, not "csv"
    if fmt not in FORMATS:
        raise ValidationError({"format": f"One of {', '.join(FORMATS)}."})
    return fmt


class AuditTextListApi(APIView):
    """Every version of every topic's texts with its SHA-256, to resolve an event's text_sha256."""

    permission_classes = [IsAdminRole | IsAuditorRole]

    @extend_schema(responses=inline_serializer("AuditText", {
        "topic": serializers.CharField(), "version": serializers.IntegerField(),
        "consent_text": serializers.CharField(), "confirmation_message": serializers.CharField(),
        "help_message": serializers.CharField(), "welcome_message": serializers.CharField(),
        "sha256": serializers.CharField(),
        "sha256_ok": serializers.BooleanField(), "created_at": serializers.CharField(),
        "created_by": serializers.CharField()}, many=True))
    def get(self, request):
        texts = TopicText.objects.select_related("topic").order_by("topic__slug", "version")
        return Response([
            {"topic": t.topic.slug, "version": t.version, "consent_text": t.consent_text,
             "confirmation_message": t.confirmation_message, "help_message": t.help_message,
             "welcome_message": t.welcome_message, "sha256": t.sha256,
             "sha256_ok": topic_texts_sha256(t.consent_text, t.confirmation_message, t.help_message,
                                             t.welcome_message) == t.sha256,
             "created_at": format_instant(t.created_at), "created_by": t.created_by}
            for t in texts
        ])


class AuditPublicKeyApi(APIView):
    """The Ed25519 public key that signs checkpoints, manifests and proofs (public), and the latest checkpoint."""

    permission_classes = [AllowAny]

    @extend_schema(responses=inline_serializer("AuditPublicKey", {
        "algorithm": serializers.CharField(), "key_id": serializers.CharField(),
        "public_key": serializers.CharField(), "latest_checkpoint": serializers.DictField(allow_null=True),
        "previous_keys": serializers.ListField(child=serializers.DictField())}))
    def get(self, request):
        latest = None
        for checkpoint in LedgerCheckpoint.objects.order_by("-seq", "-signed_at")[:10]:
            if checkpoint_signature_valid(checkpoint):
                latest = checkpoint_as_dict(checkpoint)
                break
        previous = [{"key_id": signing.key_id(key), "public_key": signing.public_key_pem(key)}
                    for key in signing.previous_public_keys()]
        return Response({"algorithm": signing.ALGORITHM, "key_id": signing.key_id(),
                         "public_key": signing.public_key_pem(), "latest_checkpoint": latest,
                         "previous_keys": previous})


def _contact_or_404(phone: str):
    try:
        e164 = services.phone_normalise(phone)
    except ValidationError:
        raise Http404("No contact with this phone number.") from None
    contact = contact_for_proof(e164)
    if contact is None:
        raise Http404("No contact with this phone number.")
    return contact


class ContactProofApi(APIView):
    """A contact's signed proof of consent (JSON, or ?format=html for a printable page)."""

    permission_classes = [IsAdminRole | IsAuditorRole]
    content_negotiation_class = FormatParameterIgnored

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=["json", "html"])],
                   responses={200: OpenApiTypes.OBJECT, (200, "text/html"): OpenApiTypes.STR})
    def get(self, request, phone):
        fmt = request.query_params.get("format") or "json"
        if fmt not in ("json", "html"):
            raise ValidationError({"format": "json or html."})
        contact = _contact_or_404(phone)
        # An erased contact's proof names no number, not even in a link: relative to the proof's own URL.
        href = (request.build_absolute_uri(reverse("contact-receipts", args=[contact.phone])) if contact.phone
                else "../receipts/")
        proof = contact_proof(contact=contact, receipts_href=href)
        if fmt == "html":
            html = render_to_string("consent/proof.html", {"proof": proof})
            response = HttpResponse(html, content_type="text/html; charset=utf-8")
            if _flag(request.query_params, "download"):
                response["Content-Disposition"] = f'attachment; filename="consent-proof-{proof["contact"]["subject"][:12]}.html"'
            return response
        return Response(proof)


class ContactEraseApi(APIView):
    """Erase a contact's number and attributes (admin); the ledger and a suppression entry stay."""

    permission_classes = [IsAdminRole]

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")

    class OutputSerializer(serializers.Serializer):
        phone = serializers.CharField()
        erased_at = serializers.CharField()
        already_erased = serializers.BooleanField()
        suppressed = serializers.BooleanField()
        consents_revoked = serializers.IntegerField()
        events_kept = serializers.IntegerField()
        event = serializers.DictField(allow_null=True)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request, phone):
        contact = _contact_or_404(phone)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():  # the erasure and its staff action record commit together
            result = contact_erase(contact=contact, actor=actor_for(request.user), reason=data.validated_data["reason"])
            if result.event is not None:
                action_record(request=request, action="contact.erase", **contact_object(contact),
                              after={"reason": data.validated_data["reason"], "consents_revoked": result.revoked,
                                     "ledger_event": result.event.seq})
        return Response(self.OutputSerializer({
            "phone": "[erased]", "erased_at": format_instant(result.contact.erased_at),
            "already_erased": result.event is None, "suppressed": True, "consents_revoked": result.revoked,
            "events_kept": result.events_kept,
            "event": {"seq": result.event.seq, "hash": result.event.hash} if result.event else None,
        }).data)


class ContactReceiptsApi(APIView):
    """A contact's consent receipts (Kantara Consent Receipt v1.1), one per consent that was ever given."""

    permission_classes = [IsAdminRole | IsAuditorRole]

    class OutputSerializer(serializers.Serializer):
        format = serializers.CharField()
        receipts = serializers.ListField(child=inline_serializer("ConsentReceipt", {
            "topic": serializers.CharField(), "channel": serializers.CharField(), "status": serializers.CharField(),
            "ledger_event": serializers.DictField(), "receipt": serializers.DictField(help_text="Kantara CR v1.1 JSON."),
            "algorithm": serializers.CharField(), "key_id": serializers.CharField(),
            "signature": serializers.CharField(allow_null=True)}))

    @extend_schema(responses=OutputSerializer)
    def get(self, request, phone):
        return Response({"format": RECEIPT_VERSION, "receipts": contact_receipts(contact=_contact_or_404(phone))})


class StaffActionRecordSerializer(serializers.Serializer):
    """One staff action (rule 16; documented in docs/audit.md)."""

    sequence = serializers.IntegerField()
    action_id = serializers.UUIDField()
    occurred_at = serializers.CharField()
    actor = serializers.CharField()
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    object_repr = serializers.CharField()
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    ip = serializers.CharField()
    via = serializers.CharField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()


class AuditActionListApi(APIView):
    """Staff actions in the order they were made, filtered, cursor-paginated (auditors and admins)."""

    permission_classes = [IsAdminRole | IsAuditorRole]
    pagination_class = SeqCursorPagination

    @extend_schema(
        parameters=[OpenApiParameter("actor", str, description='Who, e.g. "user:alice".'),
                    OpenApiParameter("action", str, description='e.g. "topic.update", or a prefix ending in a dot: '
                                                                '"broadcast.".'),
                    OpenApiParameter("object_type", str), OpenApiParameter("object_id", str),
                    OpenApiParameter("since", OpenApiTypes.DATETIME, description="occurred_at ≥ since"),
                    OpenApiParameter("until", OpenApiTypes.DATETIME, description="occurred_at < until"),
                    OpenApiParameter("cursor", str), OpenApiParameter("page_size", int)],
        responses=inline_serializer("StaffActionPage", {
            "next": serializers.URLField(allow_null=True), "previous": serializers.URLField(allow_null=True),
            "results": StaffActionRecordSerializer(many=True)}))
    def get(self, request):
        queryset = filter_or_400(StaffActionFilter, request, StaffAction.objects.all())
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([action_as_dict(record) for record in page])

"""HTTP API for topics, opt-ins, revocations, imports and contacts: one view per endpoint."""

import zoneinfo

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch, Q
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.filters import filter_or_400
from config.pagination import LimitOffsetPagination

from . import selectors, services, text_checks
from .audit.actions import (
    action_record,
    changed,
    consent_statuses,
    contact_object,
    review_action_record,
    revocation_snapshots,
    topic_snapshot,
)
from .filters import ConsentFilter, ContactFilter, MessageFilter
from .models import Consent, Contact, Message, RevocationReview, RevocationVia, Source, Topic, actor_for
from .outbox import topic_text_warnings
from .permissions import IsAdminRole, IsAgentRole, IsRevocationFromConversation, ReadAnyRoleWriteMarketer
from .serializers import (
    AttributesField,
    ChannelField,
    ConsentWithPhoneSerializer,
    ContactOutputSerializer,
    EvidenceSerializer,
    PhoneField,
    TopicOutputSerializer,
    TopicSlugField,
    TopicTextSerializer,
)


def _contact_queryset():
    return Contact.objects.prefetch_related(
        Prefetch("consents", queryset=Consent.objects.select_related("topic", "text").order_by("topic__slug", "channel"))
    )


def _contact_from_path(phone: str) -> Contact:
    try:
        e164 = services.phone_normalise(phone)
    except Exception:
        raise Http404("No contact with this phone number.") from None
    return get_object_or_404(_contact_queryset(), phone=e164)


# --- topics ---------------------------------------------------------------------------------


class TopicInputSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=200)
    keywords = serializers.ListField(child=serializers.CharField(max_length=services.TOPIC_KEYWORD_MAX_CHARS),
                                     required=False, default=list, max_length=services.TOPIC_MAX_KEYWORDS)
    consent_text = serializers.CharField(max_length=5000)
    confirmation_message = serializers.CharField(max_length=1000)
    help_message = serializers.CharField(max_length=1000)
    welcome_message = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="",
                                            help_text="Sent once after each confirmation; empty: the default welcome.")
    consent_ttl_days = serializers.IntegerField(min_value=1, max_value=36500, required=False, allow_null=True, default=None)

    def validate_slug(self, value):
        if Topic.objects.filter(slug=value).exists():
            raise serializers.ValidationError("A topic with this slug already exists.")
        return value

    def validate(self, attrs):
        """With CONSENT_TEXT_CHECKS=strict, texts that lack what the messaging principles ask for are a 400."""
        if settings.CONSENT_TEXT_CHECKS == "strict":
            errors = text_checks.errors_by_field(topic_text_warnings(**self.texts_after(attrs)))
            if errors:
                raise serializers.ValidationError(errors)
        return attrs

    def texts_after(self, attrs) -> dict:
        """The topic's name and texts as they will be (a change: merged over the topic's current ones)."""
        topic = self.context.get("topic")
        current = topic.current_text if topic is not None else None
        names = ("consent_text", "confirmation_message", "welcome_message")
        texts = {n: attrs.get(n, getattr(current, n, "") if current is not None else "") for n in names}
        return {"name": attrs.get("name", topic.name if topic is not None else ""), **texts}


class TopicListApi(APIView):
    """List topics, or create one with its first text version."""

    permission_classes = [ReadAnyRoleWriteMarketer]

    @extend_schema(responses=TopicOutputSerializer(many=True))
    def get(self, request):
        topics = Topic.objects.select_related("current_text").order_by("slug")
        return Response(TopicOutputSerializer(topics, many=True).data)

    @extend_schema(request=TopicInputSerializer, responses={201: TopicOutputSerializer})
    def post(self, request):
        data = TopicInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():  # the change and its staff action record commit together
            topic = services.topic_create(**data.validated_data, actor=actor_for(request.user))
            action_record(request=request, action="topic.create", object_type="topic", object_id=topic.pk,
                          object_repr=topic.slug, after=topic_snapshot(topic))
        return Response(TopicOutputSerializer(topic).data, status=status.HTTP_201_CREATED)


class TopicUpdateSerializer(TopicInputSerializer):
    slug = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class TopicDetailApi(APIView):
    """Read a topic, or change it (a changed text becomes a new version)."""

    permission_classes = [ReadAnyRoleWriteMarketer]

    @extend_schema(responses=TopicOutputSerializer)
    def get(self, request, slug):
        return Response(TopicOutputSerializer(get_object_or_404(Topic.objects.select_related("current_text"), slug=slug)).data)

    @extend_schema(request=TopicUpdateSerializer, responses=TopicOutputSerializer)
    def patch(self, request, slug):
        topic = get_object_or_404(Topic.objects.select_related("current_text"), slug=slug)
        data = TopicUpdateSerializer(data=request.data, partial=True, context={"topic": topic})
        data.is_valid(raise_exception=True)
        changes = {k: v for k, v in data.validated_data.items() if k in request.data}
        with transaction.atomic():  # the change and its staff action record commit together
            before = topic_snapshot(Topic.objects.select_for_update(of=("self",)).select_related("current_text")
                                    .get(pk=topic.pk))
            topic = services.topic_update(topic=topic, actor=actor_for(request.user), **changes)
            old, new = changed(before, topic_snapshot(topic))
            action_record(request=request, action="topic.update", object_type="topic", object_id=topic.pk,
                          object_repr=topic.slug, before=old, after=new)
        return Response(TopicOutputSerializer(topic).data)


class TopicTextListApi(APIView):
    """Every text version a topic has had, oldest first (old versions stay readable forever)."""

    permission_classes = [ReadAnyRoleWriteMarketer]

    @extend_schema(responses=TopicTextSerializer(many=True))
    def get(self, request, slug):
        topic = get_object_or_404(Topic, slug=slug)
        return Response(TopicTextSerializer(topic.texts.order_by("version"), many=True).data)


# --- opt-ins --------------------------------------------------------------------------------


class OptinRequestApi(APIView):
    """Request a double opt-in on behalf of a web form: the consent becomes pending and the prompt is sent."""

    permission_classes = [ReadAnyRoleWriteMarketer]

    class InputSerializer(serializers.Serializer):
        phone = PhoneField()
        topic = TopicSlugField()
        channel = ChannelField()
        evidence = EvidenceSerializer(required=False, default=dict)

    class OutputSerializer(serializers.Serializer):
        phone = serializers.CharField()
        topic = serializers.CharField()
        channel = serializers.CharField()
        status = serializers.CharField()
        requested_at = serializers.DateTimeField(allow_null=True)
        confirm_by = serializers.DateTimeField(allow_null=True)
        prompt_sent = serializers.BooleanField(help_text="False: already current, or a recent prompt is still pending.")

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer, 200: OutputSerializer,
                                                       429: inline_serializer("OptinThrottled", {"detail": serializers.CharField()})})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        evidence = {**data.validated_data["evidence"], "requested_via": "api"}
        try:
            result = services.optin_request(
                phone=data.validated_data["phone"], topic=data.validated_data["topic"],
                channel=data.validated_data["channel"], source=Source.API, evidence=evidence,
                actor=actor_for(request.user),
            )
        except services.OptinLimited as exc:
            raise exceptions.Throttled(wait=exc.retry_after, detail=str(exc)) from None
        consent = result.consent
        body = {
            "phone": consent.contact.phone, "topic": consent.topic.slug, "channel": consent.channel,
            "status": selectors.effective_status(consent), "requested_at": consent.requested_at,
            "confirm_by": consent.confirm_by, "prompt_sent": result.created,
        }
        return Response(self.OutputSerializer(body).data,
                        status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class OptinConfirmApi(APIView):
    """Confirm with the token from the confirmation link. No API token: the link's token is the secret."""

    permission_classes = [AllowAny]
    authentication_classes = []

    class InputSerializer(serializers.Serializer):
        token = serializers.CharField(max_length=200)

    @extend_schema(request=InputSerializer, responses=ConsentWithPhoneSerializer)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        consent = services.optin_confirm_by_token(
            token=data.validated_data["token"], source=Source.API,
            evidence={"ip": request.META.get("REMOTE_ADDR"), "user_agent": request.META.get("HTTP_USER_AGENT", "")[:1000]},
        )
        return Response(ConsentWithPhoneSerializer(consent).data)


# --- consents -------------------------------------------------------------------------------


class ConsentRevokeApi(APIView):
    """Revoke a contact's consents on a channel (one topic, or all); agents only with `via: conversation`."""

    permission_classes = [ReadAnyRoleWriteMarketer | (IsAgentRole & IsRevocationFromConversation)]

    class InputSerializer(serializers.Serializer):
        phone = PhoneField()
        channel = ChannelField()
        topic = TopicSlugField(required=False, allow_null=True)
        reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
        via = serializers.ChoiceField(choices=RevocationVia.choices, required=False, allow_null=True, default=None,
                                      help_text="How the revocation reached staff (kept in the ledger's evidence).")

    @extend_schema(request=InputSerializer, responses=ConsentWithPhoneSerializer(many=True),
                   description="Revoke, in the configured scope (CONSENT_REVOKE_SCOPE), and send the person one "
                               "confirmation within 5 minutes when something was revoked.")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        contact = selectors.contact_get_by_phone(data.validated_data["phone"])
        if contact is None:
            raise Http404("No contact with this phone number.")
        evidence = {"ip": request.META.get("REMOTE_ADDR")}
        if data.validated_data["via"]:
            evidence["via"] = data.validated_data["via"]
        with transaction.atomic():  # the change and its staff action record commit together
            was = consent_statuses(contact)
            revoked = services.revocation_apply(
                contact=contact, channel=data.validated_data["channel"], topic=data.validated_data.get("topic"),
                source=Source.API, reason=data.validated_data["reason"], actor=actor_for(request.user),
                evidence=evidence,
            )
            if revoked:
                before, after = revocation_snapshots(was, revoked)
                action_record(request=request, action="consent.revoke", **contact_object(contact), before=before,
                              after={**after, "reason": data.validated_data["reason"],
                                     "via": data.validated_data["via"] or None})
        return Response(ConsentWithPhoneSerializer(revoked, many=True).data)


class ConsentListApi(APIView):
    """Consents with their effective status, filtered by phone, topic, channel and status."""

    permission_classes = [ReadAnyRoleWriteMarketer]
    pagination_class = LimitOffsetPagination  # declared so that the schema shows the paginated shape

    @extend_schema(parameters=[OpenApiParameter("phone", str), OpenApiParameter("topic", str),
                               OpenApiParameter("channel", str), OpenApiParameter("status", str)],
                   responses=ConsentWithPhoneSerializer(many=True))
    def get(self, request):
        qs = filter_or_400(ConsentFilter, request, Consent.objects.select_related("contact", "topic", "text").order_by("id"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(ConsentWithPhoneSerializer(page, many=True).data)


class MessageListApi(APIView):
    """Messages exchanged with contacts, newest first: inbound texts that were not keywords are the
    customer-care queue (`?direction=in&kind=inbound`); prompts and replies are listed too."""

    permission_classes = [ReadAnyRoleWriteMarketer]
    pagination_class = LimitOffsetPagination  # declared so that the schema shows the paginated shape

    class OutputSerializer(serializers.ModelSerializer):
        phone = serializers.CharField(source="contact.phone", allow_null=True)
        topic = serializers.SlugRelatedField(slug_field="slug", read_only=True)

        class Meta:
            model = Message
            fields = ["id", "phone", "channel", "direction", "kind", "topic", "body", "template", "status",
                      "provider_message_id", "error_code", "created_at", "sent_at", "status_at"]

    @extend_schema(parameters=[OpenApiParameter("phone", str), OpenApiParameter("channel", str),
                               OpenApiParameter("direction", str), OpenApiParameter("kind", str),
                               OpenApiParameter("status", str)],
                   responses=OutputSerializer(many=True))
    def get(self, request):
        qs = filter_or_400(MessageFilter, request, Message.objects.select_related("contact", "topic").order_by("-id"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class ConsentImportApi(APIView):
    """Import legacy proofs of consent (admin). All records or none; each needs its evidence."""

    permission_classes = [IsAdminRole]

    class RecordSerializer(serializers.Serializer):
        phone = PhoneField()
        topic = TopicSlugField()
        channel = ChannelField()
        confirmed_at = serializers.DateTimeField()
        evidence = serializers.DictField(allow_empty=False)
        source_detail = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")

    class InputSerializer(serializers.Serializer):
        records = serializers.ListField(allow_empty=False, max_length=10000)

        def validate_records(self, records):
            errors, cleaned = {}, []
            for index, record in enumerate(records):
                item = ConsentImportApi.RecordSerializer(data=record)
                if item.is_valid():
                    cleaned.append(item.validated_data)
                else:
                    errors[index] = item.errors
            if errors:
                raise serializers.ValidationError(errors)
            return cleaned

    @extend_schema(request=inline_serializer("ImportRequest", {"records": RecordSerializer(many=True)}),
                   responses={200: inline_serializer("ImportSummary", {
                       "batch": serializers.CharField(), "imported": serializers.IntegerField(),
                       "active": serializers.IntegerField(), "expired": serializers.IntegerField(),
                       "skipped": serializers.ListField(child=serializers.DictField())})})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        records = [services.ImportRecord(**record) for record in data.validated_data["records"]]
        with transaction.atomic():  # the change and its staff action record commit together
            summary = services.consents_import(records=records, actor=actor_for(request.user))
            action_record(request=request, action="consent.import", object_type="import_batch",
                          object_id=summary["batch"], object_repr=f"{len(records)} record(s)",
                          after={k: summary[k] for k in ("imported", "active", "expired")}
                          | {"skipped": len(summary["skipped"])})
        return Response(summary)


# --- contacts -------------------------------------------------------------------------------


class ContactListApi(APIView):
    """List contacts (filter by phone, topic, status), or create one."""

    permission_classes = [ReadAnyRoleWriteMarketer]
    pagination_class = LimitOffsetPagination  # declared so that the schema shows the paginated shape

    class InputSerializer(serializers.Serializer):
        phone = PhoneField()
        country = serializers.RegexField(r"^[A-Z]{2}$", required=False, help_text="ISO 3166-1 alpha-2 override.")
        timezone = serializers.CharField(required=False, max_length=64, help_text="IANA time zone override.")
        attributes = AttributesField(required=False, default=dict)

        def validate_timezone(self, value):
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise serializers.ValidationError("Unknown IANA time zone.") from None
            return value

    @extend_schema(parameters=[OpenApiParameter("phone", str), OpenApiParameter("topic", str),
                               OpenApiParameter("status", str)], responses=ContactOutputSerializer(many=True))
    def get(self, request):
        qs = filter_or_400(ContactFilter, request, Contact.objects.order_by("id"))
        qs = qs.prefetch_related(
            Prefetch("consents", queryset=Consent.objects.select_related("topic", "text").order_by("topic__slug", "channel"))
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(ContactOutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: ContactOutputSerializer, 200: ContactOutputSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        existed = selectors.contact_get_by_phone(data.validated_data["phone"]) is not None
        with transaction.atomic():  # the change and its staff action record commit together
            contact = services.contact_get_or_create(
                phone=data.validated_data["phone"], country=data.validated_data.get("country"),
                timezone_name=data.validated_data.get("timezone"), attributes=data.validated_data.get("attributes"),
            )
            # Attribute names only: their values are personal data, which this append-only record must not keep.
            action_record(request=request, action="contact.update" if existed else "contact.create",
                          **contact_object(contact), after={
                              "attributes": sorted(data.validated_data.get("attributes") or {}),
                              **{k: data.validated_data[k] for k in ("country", "timezone") if k in data.validated_data}})
        contact = _contact_queryset().get(pk=contact.pk)
        return Response(ContactOutputSerializer(contact).data, status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED)


class ContactDetailApi(APIView):
    """One contact with every consent, or PATCH its attributes (`{phone}` in E.164; the `+` may be URL-encoded or left out)."""

    permission_classes = [ReadAnyRoleWriteMarketer]

    class InputSerializer(serializers.Serializer):
        attributes = AttributesField(removals=True, help_text="Merged: each key is set; a key given null is removed.")

    @extend_schema(responses=ContactOutputSerializer)
    def get(self, request, phone):
        return Response(ContactOutputSerializer(_contact_from_path(phone)).data)

    @extend_schema(request=InputSerializer, responses=ContactOutputSerializer)
    def patch(self, request, phone):
        contact = _contact_from_path(phone)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():  # the change and its staff action record commit together
            before = sorted(contact.attributes or {})
            updated = services.contact_attributes_update(contact=contact, changes=data.validated_data["attributes"])
            # Attribute names only: their values are personal data, which this append-only record must not keep.
            action_record(request=request, action="contact.attributes", **contact_object(contact),
                          before={"attributes": before}, after={"attributes": sorted(updated.attributes or {})})
        return Response(ContactOutputSerializer(_contact_queryset().get(pk=contact.pk)).data)


# --- revocation review (rule 11) ------------------------------------------------------------

REVIEW_STATUSES = ("open", "overdue", "resolved")


def review_status(review: RevocationReview, now=None) -> str:
    """`resolved`; `overdue` (unresolved, 2 US business days or less before its deadline, or past it); `open`."""
    if review.resolved_at is not None:
        return "resolved"
    return "overdue" if review.due_soon_at <= (now or timezone.now()) else "open"


class RevocationReviewOutputSerializer(serializers.ModelSerializer):
    phone = serializers.CharField(source="contact.phone", allow_null=True)
    text = serializers.CharField(source="message.body")
    status = serializers.SerializerMethodField()

    class Meta:
        model = RevocationReview
        fields = ["id", "phone", "channel", "text", "rule", "received_at", "deadline", "due_soon_at", "status",
                  "decision", "resolved_at", "resolved_by", "note", "revoked"]

    def get_status(self, review) -> str:
        return review_status(review, self.context.get("now"))


class RevocationReviewListApi(APIView):
    """Texts that may be revocations, soonest deadline first: a person decides before the deadline,
    else they are applied as revocations then (`?status=open|overdue|resolved`; none: all)."""

    permission_classes = [ReadAnyRoleWriteMarketer]
    pagination_class = LimitOffsetPagination  # declared so that the schema shows the paginated shape

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=list(REVIEW_STATUSES))],
                   responses=RevocationReviewOutputSerializer(many=True))
    def get(self, request):
        now = timezone.now()
        qs = RevocationReview.objects.select_related("contact", "message").order_by("deadline", "id")
        wanted = request.query_params.get("status")
        if wanted not in (None, "", *REVIEW_STATUSES):
            raise exceptions.ValidationError({"status": f"Choose one of {', '.join(REVIEW_STATUSES)}."})
        if wanted == "resolved":
            qs = qs.filter(resolved_at__isnull=False).order_by("-resolved_at", "-id")
        elif wanted == "overdue":
            qs = qs.filter(resolved_at__isnull=True, due_soon_at__lte=now)
        elif wanted == "open":
            qs = qs.filter(Q(resolved_at__isnull=True) & Q(due_soon_at__gt=now))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(
            RevocationReviewOutputSerializer(page, many=True, context={"now": now}).data)


class RevocationReviewResolveApi(APIView):
    """A person's decision on a review: `revoke` (ledger events and one confirmation) or `keep`; once."""

    permission_classes = [ReadAnyRoleWriteMarketer]

    class InputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=[RevocationReview.Decision.REVOKE, RevocationReview.Decision.KEEP])
        note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")

    @extend_schema(request=InputSerializer,
                   responses={200: RevocationReviewOutputSerializer,
                              409: inline_serializer("ReviewResolved", {"detail": serializers.CharField()})})
    def post(self, request, pk):
        review = get_object_or_404(RevocationReview, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            with transaction.atomic():  # the decision and its staff action record commit together
                review = services.revocation_review_resolve(review=review, decision=data.validated_data["decision"],
                                                            note=data.validated_data["note"],
                                                            actor=actor_for(request.user), source=Source.API)
                review_action_record(request=request, review=review)
        except services.ReviewAlreadyResolved as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        review = RevocationReview.objects.select_related("contact", "message").get(pk=review.pk)
        return Response(RevocationReviewOutputSerializer(review).data)

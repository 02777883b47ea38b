"""HTTP API for broadcasts: one view per endpoint; every role reads, marketers and admins write."""

from datetime import timedelta

from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from config.filters import filter_or_400
from config.pagination import CursorPagination
from consent.audit.actions import action_record, changed
from consent.ledger import pseudonym_for
from consent.models import actor_for
from consent.permissions import IsAdminRole, IsMarketerRole, ReadAnyRoleWriteMarketer
from consent.serializers import ChannelField, PhoneField, TopicSlugField

from . import policies, quiet_hours, selectors, sending, services
from .audit import broadcast_object, broadcast_snapshot
from .filters import BroadcastFilter, DeliveryFilter
from .models import Broadcast, Delivery, WhenCapped


class BroadcastOutputSerializer(serializers.ModelSerializer):
    topic = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Broadcast
        fields = ["id", "name", "topic", "channel", "body", "template", "send_at", "local_time", "respect_quiet_hours",
                  "frequency_cap", "when_capped", "status", "status_reason", "created_by", "created_at", "scheduled_at", "launched_at",
                  "completed_at"]


class BroadcastStatsSerializer(serializers.Serializer):
    audience = serializers.IntegerField()
    queued = serializers.IntegerField()
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    deferred = serializers.IntegerField()
    unknown = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    next_due_at = serializers.DateTimeField(allow_null=True, help_text="When the first deferred delivery is due.")


class BroadcastDetailSerializer(BroadcastOutputSerializer):
    stats = serializers.SerializerMethodField()

    class Meta(BroadcastOutputSerializer.Meta):
        fields = [*BroadcastOutputSerializer.Meta.fields, "stats"]

    @extend_schema_field(BroadcastStatsSerializer)
    def get_stats(self, broadcast) -> dict:
        return selectors.broadcast_stats(broadcast=broadcast)


def _detail(broadcast: Broadcast, code=status.HTTP_200_OK) -> Response:
    broadcast = Broadcast.objects.select_related("topic").get(pk=broadcast.pk)
    return Response(BroadcastDetailSerializer(broadcast).data, status=code)


def _broadcast(pk: int) -> Broadcast:
    return get_object_or_404(Broadcast.objects.select_related("topic"), pk=pk)


class TemplateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=512)
    language = serializers.CharField(max_length=16, default="en_US")
    components = serializers.ListField(child=serializers.DictField(), required=False, default=list, max_length=20)


class BroadcastListApi(APIView):
    """List broadcasts (newest first, ?status=), or create a draft."""

    permission_classes = [ReadAnyRoleWriteMarketer]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        topic = TopicSlugField()
        channel = ChannelField()
        body = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000, trim_whitespace=False)
        template = TemplateSerializer(required=False, allow_null=True, default=None)
        send_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
        local_time = serializers.TimeField(required=False, allow_null=True, default=None)
        respect_quiet_hours = serializers.BooleanField(required=False, default=True)
        frequency_cap = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=1000)
        when_capped = serializers.ChoiceField(choices=WhenCapped.choices, required=False, default=WhenCapped.DEFER,
                                              help_text="A delivery a jurisdiction's or the brand's cap holds back: "
                                                        "deferred until the cap allows, or skipped.")

        def validate_send_at(self, value):
            if value is not None and value < timezone.now() - timedelta(minutes=1):
                raise serializers.ValidationError("This time is in the past; leave it out to send as soon as scheduled.")
            return value

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS  # read by the schema for the paginated shape

    @extend_schema(responses=BroadcastOutputSerializer(many=True))
    def get(self, request):
        broadcasts = filter_or_400(BroadcastFilter, request, Broadcast.objects.select_related("topic").order_by("-id"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(broadcasts, request, view=self)
        return paginator.get_paginated_response(BroadcastOutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: BroadcastDetailSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():  # the change and its staff action record commit together
            broadcast = services.broadcast_create(**data.validated_data, actor=actor_for(request.user))
            action_record(request=request, action="broadcast.create", **broadcast_object(broadcast),
                          after=broadcast_snapshot(broadcast))
        return _detail(broadcast, status.HTTP_201_CREATED)


class BroadcastDetailApi(APIView):
    """One broadcast with its stats."""

    permission_classes = [ReadAnyRoleWriteMarketer]

    @extend_schema(responses=BroadcastDetailSerializer)
    def get(self, request, pk):
        return _detail(_broadcast(pk))


class BroadcastScheduleApi(APIView):
    """draft → scheduled (at `send_at`, the broadcast's own, or now)."""

    permission_classes = [IsAdminRole | IsMarketerRole]

    class InputSerializer(serializers.Serializer):
        send_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    @extend_schema(request=InputSerializer, responses=BroadcastDetailSerializer)
    def post(self, request, pk):
        broadcast = _broadcast(pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _detail(_recorded(request, "broadcast.schedule", broadcast, lambda: services.broadcast_schedule(
            broadcast=broadcast, send_at=data.validated_data["send_at"])))


def _recorded(request, action: str, broadcast: Broadcast, change) -> Broadcast:
    """Run a broadcast action and record it as a staff action, in one transaction (rule 16)."""
    with transaction.atomic():
        before = broadcast_snapshot(broadcast)
        done = change()
        before, after = changed(before, broadcast_snapshot(done))
        action_record(request=request, action=action, **broadcast_object(done), before=before, after=after)
    return done


class _ActionApi(APIView):
    permission_classes = [IsAdminRole | IsMarketerRole]

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")

    @extend_schema(request=InputSerializer, responses=BroadcastDetailSerializer)
    def post(self, request, pk):
        broadcast = _broadcast(pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _detail(_recorded(request, self.action, broadcast,
                                 lambda: self.run(broadcast, data.validated_data["reason"], request)))


class BroadcastPauseApi(_ActionApi):
    """scheduled or sending → paused."""

    action = "broadcast.pause"

    def run(self, broadcast, reason, request):
        return services.broadcast_pause(broadcast=broadcast, reason=reason or f"paused by {actor_for(request.user)}")


class BroadcastResumeApi(_ActionApi):
    """paused → sending (or scheduled): continues where it stopped."""

    action = "broadcast.resume"

    def run(self, broadcast, reason, request):
        return services.broadcast_resume(broadcast=broadcast)


class BroadcastCancelApi(_ActionApi):
    """Stop for good."""

    action = "broadcast.cancel"

    def run(self, broadcast, reason, request):
        return services.broadcast_cancel(broadcast=broadcast, reason=reason or f"cancelled by {actor_for(request.user)}")


class BroadcastAudienceApi(APIView):
    """Dry run: contacts with a current consent for the topic and channel now, who of them would get it
    now, who waits for quiet hours to end, and the rest by reason (pending, revoked, expired, suppressed,
    no_ledger_event, frequency_cap, missing_attribute; only reasons that apply are listed)."""

    permission_classes = [ReadAnyRoleWriteMarketer]

    @extend_schema(responses=inline_serializer("AudiencePreview", {
        "id": serializers.IntegerField(), "topic": serializers.CharField(), "channel": serializers.CharField(),
        "audience": serializers.IntegerField(help_text="Contacts whose consent is current now."),
        "eligible": serializers.IntegerField(help_text="Of those, the ones it would go to (now or after quiet hours)."),
        "eligible_now": serializers.IntegerField(help_text="Of those, the ones it would go to at once."),
        "excluded": serializers.DictField(child=serializers.IntegerField(), help_text="Reason → contacts left out."),
        "deferred": serializers.DictField(child=serializers.IntegerField(),
                                          help_text="`quiet_hours`: eligible contacts inside quiet hours now."),
        "missing_placeholders": serializers.DictField(child=serializers.IntegerField(),
                                                      help_text="Placeholder without fallback → contacts lacking it."),
        "fallbacks_used": serializers.DictField(child=serializers.IntegerField(),
                                                help_text="Placeholder with a fallback → contacts who get the fallback."),
        "at": serializers.DateTimeField()}))
    def get(self, request, pk):
        broadcast = _broadcast(pk)
        run = selectors.broadcast_dry_run(broadcast=broadcast)
        run["excluded"] = {reason: n for reason, n in run["excluded"].items() if n}
        return Response({"id": broadcast.pk, "topic": broadcast.topic.slug, "channel": broadcast.channel, **run})


class BroadcastTestSendApi(APIView):
    """Send the broadcast once to one contact whose consent is current (a proof, not a delivery)."""

    permission_classes = [IsAdminRole | IsMarketerRole]

    class InputSerializer(serializers.Serializer):
        phone = PhoneField()

    @extend_schema(request=InputSerializer, responses=inline_serializer("TestSend", {
        "phone": serializers.CharField(), "channel": serializers.CharField(), "body": serializers.CharField(),
        "template": serializers.JSONField(allow_null=True), "provider_message_id": serializers.CharField()}))
    def post(self, request, pk):
        broadcast = _broadcast(pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sent = sending.broadcast_test_send(broadcast=broadcast, phone=data.validated_data["phone"])
        with transaction.atomic():
            # No state changes; what went to whom is on record, the number by its pseudonym only.
            action_record(request=request, action="broadcast.test_send", **broadcast_object(broadcast),
                          after={"contact": pseudonym_for(data.validated_data["phone"]),
                                 "provider_message_id": sent.get("provider_message_id")})
        return Response(sent)


class DeliveryOutputSerializer(serializers.ModelSerializer):
    phone = serializers.CharField(source="contact.phone", read_only=True, allow_null=True)

    class Meta:
        model = Delivery
        fields = ["id", "phone", "status", "skip_reason", "rule", "authorized_by", "attempts", "deferrals", "provider_message_id", "error_code",
                  "error_message", "not_before", "created_at", "claimed_at", "sent_at", "status_at"]


class DeliveryPagination(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"


class BroadcastDeliveryListApi(APIView):
    """The per-recipient deliveries of a broadcast (cursor-paginated, ?status=)."""

    permission_classes = [ReadAnyRoleWriteMarketer]
    pagination_class = DeliveryPagination

    @extend_schema(responses=DeliveryOutputSerializer(many=True))
    def get(self, request, pk):
        broadcast = _broadcast(pk)
        rows = filter_or_400(DeliveryFilter, request, Delivery.objects.filter(broadcast=broadcast).select_related("contact"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(DeliveryOutputSerializer(page, many=True).data)


# --- policies -------------------------------------------------------------------------------


class PolicyWindowSerializer(serializers.Serializer):
    days = serializers.ListField(child=serializers.CharField(), help_text="Local weekdays the window opens (mon … sun).")
    start = serializers.CharField(help_text="Local opening time, HH:MM.")
    end = serializers.CharField(help_text="Local closing time, HH:MM (exclusive).")
    holidays = serializers.CharField(allow_null=True, help_text="Country whose public holidays are closed all day.")
    timezones = serializers.ListField(child=serializers.CharField(), help_text="Every zone of the number: all must be open.")
    rule = serializers.CharField()


class PolicyCapSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    period_hours = serializers.IntegerField()
    scope = serializers.ChoiceField(choices=policies.SCOPES, help_text="topic: per topic; all: every topic together.")
    rule = serializers.CharField()


class PolicyRuleSerializer(serializers.Serializer):
    rule = serializers.CharField()
    source = serializers.CharField()


class PolicyApi(APIView):
    """The jurisdiction policy that applies to a number, and why (rules 9, 12 and 13): its window, its
    caps and every rule with its source. `channel=whatsapp` adds the platform's rules."""

    permission_classes = [ReadAnyRoleWriteMarketer]

    class InputSerializer(serializers.Serializer):
        phone = PhoneField()
        channel = ChannelField(required=False)

    class OutputSerializer(serializers.Serializer):
        phone = serializers.CharField()
        jurisdiction = serializers.CharField(help_text="US, US-FL, US-OK, US-MD, US-UNPLACED, FR, default, …")
        name = serializers.CharField()
        window = PolicyWindowSerializer()
        caps = PolicyCapSerializer(many=True)
        rules = PolicyRuleSerializer(many=True)

    @extend_schema(parameters=[InputSerializer], responses=OutputSerializer)
    def get(self, request):
        data = self.InputSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        phone = data.validated_data["phone"]
        policy = sending.policy_book().for_number(phone)
        extra = []
        if data.validated_data.get("channel") == "whatsapp":
            extra = ["whatsapp-us-marketing"] if phone.startswith("+1") else []
            extra += ["whatsapp-held-back", "whatsapp-messaging-limit"]
        shown = policies.describe(policy, timezones=quiet_hours.timezones_for_number(phone), extra_rules=extra)
        return Response(self.OutputSerializer({"phone": phone, **shown}).data)

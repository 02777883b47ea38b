"""HTTP API of the care inbox: list conversations, reply, close, assign to me (agents and admins)."""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.pagination import LimitOffsetPagination
from consent.audit.actions import Staff
from consent.models import Conversation, Message
from consent.permissions import CareInbox
from consent.serializers import ConsentOutputSerializer

from . import selectors, services

IDEMPOTENCY_KEY_MAX = 200


class ThreadMessageSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()
    template = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = ["id", "direction", "kind", "body", "template", "status", "status_at", "error_code", "created_at",
                  "author"]

    def get_author(self, message) -> str | None:
        reply = getattr(message, "care_reply", None) if message.direction == Message.Direction.OUTBOUND else None
        return reply.author if reply is not None else None

    def get_template(self, message) -> str | None:
        return (message.template or {}).get("name")


class ConversationOutputSerializer(serializers.ModelSerializer):
    phone = serializers.CharField(source="contact.phone", allow_null=True)
    window_until = serializers.DateTimeField(source="contact.whatsapp_window_until", allow_null=True)
    assigned_to = serializers.CharField(source="assigned_to.username", allow_null=True, default=None)
    first_response_seconds = serializers.IntegerField(allow_null=True)
    consents = ConsentOutputSerializer(source="contact.consents", many=True)
    messages = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = ["id", "phone", "channel", "status", "opened_at", "last_message_at", "waiting_since", "window_until",
                  "first_response_at", "first_response_seconds", "assigned_to", "closed_at", "consents", "messages"]

    @extend_schema_field(ThreadMessageSerializer(many=True))
    def get_messages(self, conversation):
        thread = self.context.get("threads", {}).get(conversation.pk, [])
        return ThreadMessageSerializer(thread, many=True).data


def _serialize(conversations):
    conversations = list(conversations)
    return ConversationOutputSerializer(conversations, many=True,
                                        context={"threads": selectors.threads(conversations)}).data


def _conversation(pk) -> Conversation:
    conversation = selectors.conversation_get(pk)
    if conversation is None:
        raise Http404("No conversation with this id.")
    return conversation


REFUSAL = inline_serializer("ReplyRefused", {"detail": serializers.CharField(), "reason": serializers.CharField(),
                                             "source": serializers.CharField(),
                                             "template_offered": serializers.BooleanField()})


class ConversationListApi(APIView):
    """Conversations, open first, the oldest unanswered on top (`?status=open|closed`; none: all)."""

    permission_classes = [CareInbox]
    pagination_class = LimitOffsetPagination  # declared so that the schema shows the paginated shape

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=list(Conversation.Status.values))],
                   responses=ConversationOutputSerializer(many=True))
    def get(self, request):
        wanted = request.query_params.get("status")
        if wanted not in (None, "", *Conversation.Status.values):
            raise exceptions.ValidationError({"status": f"Choose one of {', '.join(Conversation.Status.values)}."})
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.conversation_list(status=wanted or None), request, view=self)
        return paginator.get_paginated_response(_serialize(page))


class ConversationDetailApi(APIView):
    """One conversation with its thread and the contact's consents."""

    permission_classes = [CareInbox]

    @extend_schema(responses=ConversationOutputSerializer)
    def get(self, request, pk):
        return Response(_serialize([_conversation(pk)])[0])


class ConversationReplyApi(APIView):
    """Reply in a conversation: through the one outbound lifecycle, once per `Idempotency-Key`.

    409 with the reason when the reply may not go out: WhatsApp outside the 24-hour window (free form
    refused; `{"template": true}` sends the approved care template instead), SMS after the number's
    last keyword was STOP (the carrier blocks it until START), or a number that may not be messaged.
    """

    permission_classes = [CareInbox]

    class InputSerializer(serializers.Serializer):
        body = serializers.CharField(required=False, allow_blank=False, max_length=1600, trim_whitespace=True)
        template = serializers.BooleanField(required=False, default=False,
                                            help_text="WhatsApp only: send the approved care template.")

        def validate(self, attrs):
            if attrs.get("template") and attrs.get("body"):
                raise serializers.ValidationError({"body": "Give a body or template: true, not both."})
            if not attrs.get("template") and not attrs.get("body"):
                raise serializers.ValidationError({"body": "This field is required."})
            return attrs

    @extend_schema(request=InputSerializer,
                   parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
                                                description="A retried request with the same key returns the "
                                                            "same reply (200) instead of sending another.")],
                   responses={201: ThreadMessageSerializer, 200: ThreadMessageSerializer, 409: REFUSAL})
    def post(self, request, pk):
        conversation = _conversation(pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > IDEMPOTENCY_KEY_MAX:
            raise exceptions.ValidationError({"Idempotency-Key": f"At most {IDEMPOTENCY_KEY_MAX} characters."})
        if data.validated_data["template"] and conversation.channel != "whatsapp":
            raise exceptions.ValidationError({"template": "Templates are for WhatsApp conversations only."})
        try:
            result = services.conversation_reply(
                conversation_id=conversation.pk, by=Staff.from_request(request), body=data.validated_data.get("body", ""),
                template=data.validated_data["template"], idempotency_key=key)
        except services.ReplyRefused as refused:
            r = refused.refusal
            return Response({"detail": r.detail, "reason": r.reason, "source": r.source,
                             "template_offered": r.template_offered}, status=status.HTTP_409_CONFLICT)
        except services.IdempotencyConflict as exc:
            return Response({"detail": str(exc), "reason": "idempotency_key_reused", "source": "",
                             "template_offered": False}, status=status.HTTP_409_CONFLICT)
        message = result.reply.message
        message.care_reply = result.reply
        return Response(ThreadMessageSerializer(message).data,
                        status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class ConversationCloseApi(APIView):
    """Close a conversation; the person's next message reopens it."""

    permission_classes = [CareInbox]

    @extend_schema(request=None, responses=ConversationOutputSerializer)
    def post(self, request, pk):
        services.conversation_close(conversation_id=_conversation(pk).pk, by=Staff.from_request(request))
        return Response(_serialize([_conversation(pk)])[0])


class ConversationAssignApi(APIView):
    """Assign a conversation to the caller (assign to me)."""

    permission_classes = [CareInbox]

    @extend_schema(request=None, responses=ConversationOutputSerializer)
    def post(self, request, pk):
        services.conversation_assign(conversation_id=_conversation(pk).pk, user=request.user,
                                     by=Staff.from_request(request))
        return Response(_serialize([_conversation(pk)])[0])

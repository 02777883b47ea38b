"""Fields and output shapes shared by several consent endpoints."""

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .attributes import attribute_errors
from .models import Channel, Consent, Contact, Topic, TopicText
from .outbox import topic_warnings
from .phones import InvalidPhoneNumber, parse_phone
from .selectors import effective_status


class PhoneField(serializers.CharField):
    """A phone number in, E.164 out; a 400 that says what is wrong otherwise."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 40)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return parse_phone(value, default_region=settings.DEFAULT_PHONE_REGION).e164
        except InvalidPhoneNumber as exc:
            raise serializers.ValidationError(str(exc)) from None


class AttributesField(serializers.JSONField):
    """A flat object of contact attributes (string, number or boolean values); with `removals`,
    a null value means: remove that attribute."""

    def __init__(self, *, removals: bool = False, **kwargs):
        self.removals = removals
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        errors = attribute_errors(data, removals=self.removals)
        if errors:
            raise serializers.ValidationError(errors)
        return data


class TopicSlugField(serializers.SlugRelatedField):
    """A topic named by its slug; unknown slugs are a 400 naming the field."""

    default_error_messages = {
        "does_not_exist": "Unknown topic {value}.",
        "invalid": "Give the topic's slug.",
    }

    def __init__(self, **kwargs):
        super().__init__(slug_field="slug", queryset=Topic.objects.select_related("current_text"), **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ChannelField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=Channel.choices, **kwargs)


class EvidenceSerializer(serializers.Serializer):
    """Where and how a person gave consent."""

    ip = serializers.IPAddressField(required=False, allow_null=True)
    user_agent = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    page_url = serializers.URLField(required=False, allow_blank=True, max_length=2000)


class ConsentOutputSerializer(serializers.ModelSerializer):
    topic = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    status = serializers.SerializerMethodField()
    text_version = serializers.IntegerField(source="text.version", read_only=True)
    text_sha256 = serializers.CharField(source="text.sha256", read_only=True)

    class Meta:
        model = Consent
        fields = ["topic", "channel", "status", "source", "requested_at", "confirm_by", "confirmed_at", "expires_at",
                  "revoked_at", "text_version", "text_sha256"]

    def get_status(self, consent) -> str:
        return effective_status(consent)


class ConsentWithPhoneSerializer(ConsentOutputSerializer):
    phone = serializers.CharField(source="contact.phone", read_only=True)

    class Meta(ConsentOutputSerializer.Meta):
        fields = ["phone", *ConsentOutputSerializer.Meta.fields]


class ContactOutputSerializer(serializers.ModelSerializer):
    consents = ConsentOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Contact
        fields = ["phone", "country", "timezone", "attributes", "created_at", "consents"]


class TopicTextSerializer(serializers.ModelSerializer):
    class Meta:
        model = TopicText
        fields = ["version", "consent_text", "confirmation_message", "help_message", "welcome_message", "sha256",
                  "created_at", "created_by"]


class TextWarningSerializer(serializers.Serializer):
    """An element a topic's text lacks (consent/text_checks.py): `code` is stable, `missing_<element>`."""

    field = serializers.CharField()
    element = serializers.ChoiceField(choices=["brand", "frequency", "rates", "help", "stop"])
    code = serializers.CharField()
    message = serializers.CharField()


class TopicOutputSerializer(serializers.ModelSerializer):
    consent_text = serializers.CharField(source="current_text.consent_text")
    confirmation_message = serializers.CharField(source="current_text.confirmation_message")
    help_message = serializers.CharField(source="current_text.help_message")
    welcome_message = serializers.CharField(source="current_text.welcome_message")
    text_version = serializers.IntegerField(source="current_text.version")
    text_sha256 = serializers.CharField(source="current_text.sha256")
    warnings = serializers.SerializerMethodField()

    class Meta:
        model = Topic
        fields = ["slug", "name", "keywords", "consent_ttl_days", "consent_text", "confirmation_message",
                  "help_message", "welcome_message", "text_version", "text_sha256", "warnings", "created_at",
                  "updated_at"]

    @extend_schema_field(TextWarningSerializer(many=True))
    def get_warnings(self, topic) -> list[dict]:
        return [warning.as_dict() for warning in topic_warnings(topic)]

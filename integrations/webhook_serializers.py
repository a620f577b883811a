"""Shapes of the webhook endpoints API (integrations/api/webhooks.py)."""

import re

from rest_framework import serializers

from common.serializers import InputDateTimeField
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

TOPIC = re.compile(r"^[a-z][a-z_]*\.(\*|[a-z][a-z0-9_]*)$")


class EndpointCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    url = serializers.URLField(max_length=500)
    topics = serializers.ListField(
        child=serializers.CharField(max_length=60),
        max_length=50,
        required=False,
        default=list,
        help_text='Exact topics ("stock.low") or families ("order.*"); empty: every event.',
    )
    replay_from = InputDateTimeField(
        required=False,
        help_text="Also deliver the events since then (at most WEBHOOK_RETENTION_DAYS back). "
        "Without it, the endpoint receives the events that occur from its creation on.",
    )

    def validate_url(self, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise serializers.ValidationError("Only http(s) URLs are delivered.")
        return value

    def validate_topics(self, value: list[str]) -> list[str]:
        wrong = [topic for topic in value if not TOPIC.match(topic)]
        if wrong:
            raise serializers.ValidationError(
                f"Not a topic: {', '.join(wrong)} (e.g. stock.low, order.*)."
            )
        return sorted(set(value))

    def validate_name(self, value: str) -> str:
        if WebhookEndpoint.objects.filter(name=value).exists():
            raise serializers.ValidationError("An endpoint has this name already.")
        return value


class RotateInput(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        min_value=0,
        max_value=7 * 24 * 3600,
        default=24 * 3600,
        help_text="How long the current secret signs too (both v1 values in the header).",
    )


class EndpointOutput(serializers.ModelSerializer):
    paused = serializers.SerializerMethodField()
    waiting = serializers.IntegerField(read_only=True, help_text="Deliveries pending or failed.")
    dead = serializers.IntegerField(read_only=True, help_text="Deliveries given up on.")

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "name", "url", "topics", "paused", "deliver_from", "created_at",
                  "waiting", "dead"]  # fmt: skip

    def get_paused(self, endpoint) -> bool:
        return not endpoint.is_active


class EndpointWithSecretOutput(EndpointOutput):
    """On creation and rotation only: the secret is never shown again."""

    previous_secret_expires_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta(EndpointOutput.Meta):
        fields = [*EndpointOutput.Meta.fields, "secret", "previous_secret_expires_at"]


class DeliveryListQuery(serializers.Serializer):
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, required=False)


class DeliveryOutput(serializers.ModelSerializer):
    event_id = serializers.IntegerField(source="event.pk")
    topic = serializers.CharField(source="event.topic")
    occurred_at = serializers.DateTimeField(source="event.occurred_at")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "topic",
            "occurred_at",
            "status",
            "attempts",
            "next_attempt_at",
            "last_response_status",
            "last_error",
            "delivered_at",
        ]

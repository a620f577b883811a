"""POS endpoints: signed by the integration's secret (not an API key), JSON errors as everywhere."""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from common.serializers import ErrorSerializer
from integrations import pos
from integrations.pos_serializers import CustomerLookupSerializer, EnvelopeSerializer


class RawBodyParser(BaseParser):
    """The signature covers the exact bytes: the view reads request.body itself."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        return None


SIGNATURE = OpenApiParameter(
    pos.SIGNATURE_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=True,
    description='`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`; during a '
    "secret rotation either secret is accepted.",
)
NOW = "2026-11-22T15:04:05+01:00"
EXAMPLES = [
    OpenApiExample(
        "sale",
        request_only=True,
        value={
            "event_id": "PARIS-RIVOLI-T1-000123",
            "type": "sale",
            "occurred_at": NOW,
            "store": "PARIS-RIVOLI",
            "till": "T1",
            "data": {
                "receipt": "R-000123",
                "currency": "EUR",
                "lines": [{"sku": "TEE-NVY-M", "quantity": 1, "unit_price": "29.90"}],
                "tenders": [{"kind": "card", "amount": "29.90"}],
                "customer": {"loyalty_card": "LC12345678"},
            },
        },
    ),
    OpenApiExample(
        "return",
        request_only=True,
        value={
            "event_id": "PARIS-RIVOLI-T1-000124",
            "type": "return",
            "occurred_at": NOW,
            "store": "PARIS-RIVOLI",
            "till": "T1",
            "data": {
                "receipt": "R-000124",
                "currency": "EUR",
                "reason": "damage",
                "order_reference": "",
                "lines": [
                    {"sku": "TEE-NVY-M", "quantity": 1, "unit_price": "29.90", "unsellable": True}
                ],
            },
        },
    ),
    OpenApiExample(
        "stock_count",
        request_only=True,
        value={
            "event_id": "PARIS-RIVOLI-T1-000125",
            "type": "stock_count",
            "occurred_at": NOW,
            "store": "PARIS-RIVOLI",
            "till": "T1",
            "data": {"lines": [{"sku": "TEE-NVY-M", "counted": 4}]},
        },
    ),
    OpenApiExample(
        "pickup_handover",
        request_only=True,
        value={
            "event_id": "PARIS-RIVOLI-T1-000126",
            "type": "pickup_handover",
            "occurred_at": NOW,
            "store": "PARIS-RIVOLI",
            "till": "T1",
            "data": {
                "order_reference": "W-7KQ2M9",
                "pickup_code": "482913",
                "paid_at_till": {"kind": "card", "amount": "59.80", "currency": "EUR"},
            },
        },
    ),
]


class IntakeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["accepted", "duplicate"])
    event = serializers.IntegerField(help_text="Our inbox id.")
    event_id = serializers.CharField(help_text="The POS's own id.")


def _intake(request, slug: str, receive, limit: int) -> Response:
    """Hand the raw body to `receive`; a body announced larger than `limit` is not even read
    (the service records the refusal from its announced size)."""
    integration = pos.integration_get(slug=slug)
    length = request.META.get("CONTENT_LENGTH")
    content_length = int(length) if length and length.isdigit() else None
    too_large = content_length is not None and content_length > limit
    result = receive(
        integration=integration,
        raw_body=b"" if too_large else request.body,
        signature=None if too_large else request.headers.get(pos.SIGNATURE_HEADER),
        content_length=content_length,
    )
    return Response(result.body, status=result.status_code)


class PosEventIntakeApi(APIView):
    """Receive one POS event (sale, return, stock count, click & collect hand-over).

    Answers 202 at once and applies it asynchronously; a second delivery of the same `event_id`
    is acknowledged (200, `duplicate`) with no second effect. Refused events (4xx) apply nothing
    and are kept as rejected, with the reason, for staff to see in the admin.
    """

    authentication_classes: list = []
    permission_classes: list = []
    parser_classes = [RawBodyParser]

    @extend_schema(
        request=EnvelopeSerializer,
        parameters=[SIGNATURE],
        examples=EXAMPLES,
        responses={
            202: IntakeSerializer,
            200: IntakeSerializer,
            400: ErrorSerializer,
            401: ErrorSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
            413: ErrorSerializer,
        },
    )
    def post(self, request, slug: str):
        return _intake(request, slug, pos.pos_event_receive, pos.max_body_bytes())


class BatchRequestSerializer(serializers.Serializer):
    events = EnvelopeSerializer(many=True, help_text="1 to POS_MAX_BATCH_EVENTS (500) events.")


class BatchResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the event in the request.")
    event_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["accepted", "duplicate", "rejected"])
    event = serializers.IntegerField(required=False, help_text="Our inbox id.")
    processing = serializers.CharField(required=False, help_text="Duplicates: where the first is.")
    error = ErrorSerializer(required=False, help_text="Rejected: why.")


class BatchIntakeSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = BatchResultSerializer(many=True)


class PosEventBatchIntakeApi(APIView):
    """Receive many POS events in one signed request: a till's backlog after an outage, or a
    busy store sending every few seconds.

    The request is refused whole (4xx) only when it is too large, unsigned or wrongly signed,
    not JSON, or not `{"events": [...]}` with 1 to 500 events. Otherwise it answers 200 with one
    result per event, in request order: `accepted` (applied asynchronously, in the POS's time
    order), `duplicate` (its `event_id` was seen before or earlier in the batch: no second
    effect) or `rejected` (with the same error the single endpoint gives; kept as rejected for
    staff). Resending the whole batch is safe.
    """

    authentication_classes: list = []
    permission_classes: list = []
    parser_classes = [RawBodyParser]

    @extend_schema(
        request=BatchRequestSerializer,
        parameters=[SIGNATURE],
        examples=[
            OpenApiExample(
                "backlog",
                request_only=True,
                value={"events": [example.value for example in EXAMPLES[:3]]},
            )
        ],
        responses={
            200: BatchIntakeSerializer,
            400: ErrorSerializer,
            401: ErrorSerializer,
            404: ErrorSerializer,
            413: ErrorSerializer,
        },
    )
    def post(self, request, slug: str):
        return _intake(request, slug, pos.pos_events_receive_batch, pos.max_batch_body_bytes())


class CustomerLookupResponse(serializers.Serializer):
    customer = serializers.DictField()


class PosCustomerLookupApi(APIView):
    """The till scanned a loyalty card (or typed a phone or an email): who is it? Synchronous,
    signed like events."""

    authentication_classes: list = []
    permission_classes: list = []
    parser_classes = [RawBodyParser]

    @extend_schema(
        request=CustomerLookupSerializer,
        parameters=[SIGNATURE],
        responses={
            200: CustomerLookupResponse,
            401: ErrorSerializer,
            404: OpenApiResponse(ErrorSerializer),
        },
    )
    def post(self, request, slug: str):
        integration = pos.integration_get(slug=slug)
        return Response(
            pos.pos_customer_lookup(
                integration=integration,
                raw_body=request.body,
                signature=request.headers.get(pos.SIGNATURE_HEADER),
            )
        )

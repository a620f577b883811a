"""Small input and output serializers of the orders API."""

from datetime import UTC
from decimal import Decimal

from rest_framework import serializers

from common.channels import SalesChannel
from common.serializers import CodeField, InputDateTimeField, QuantityField
from orders.models import (
    Allocation,
    AllocationLine,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    Return,
    RoutingDecision,
)

# ---- inputs ----------------------------------------------------------------------------------


class LineInput(serializers.Serializer):
    sku = CodeField()
    quantity = QuantityField()
    unit_price = serializers.CharField(max_length=20, help_text='A string: "19.90".')
    currency = serializers.CharField(min_length=3, max_length=3)


class CartLineInput(serializers.Serializer):
    sku = CodeField()
    quantity = QuantityField()


class CartCheckInput(serializers.Serializer):
    store = CodeField(max_length=20)
    lines = CartLineInput(many=True, allow_empty=False, max_length=100)


class CustomerInput(serializers.Serializer):
    """Either the RCU `reference` (UUID or customer number), or identifiers to identify-or-create
    the customer with."""

    reference = serializers.CharField(max_length=64, required=False)
    email = serializers.CharField(max_length=254, required=False)
    phone = serializers.CharField(max_length=40, required=False)
    loyalty_card = serializers.CharField(max_length=40, required=False)
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    language = serializers.ChoiceField(choices=["fr", "en"], required=False)

    def validate(self, attrs):
        if not attrs.get("reference") and not any(
            attrs.get(kind) for kind in ("email", "phone", "loyalty_card")
        ):
            raise serializers.ValidationError("Give the customer's reference, or an identifier.")
        return attrs


class AddressInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    line1 = serializers.CharField(max_length=300)
    postcode = serializers.CharField(max_length=12, allow_blank=True, default="")
    city = serializers.CharField(max_length=80)
    country = serializers.CharField(min_length=2, max_length=2)
    latitude = serializers.DecimalField(max_digits=9, decimal_places=6, min_value=-90, max_value=90)
    longitude = serializers.DecimalField(
        max_digits=9, decimal_places=6, min_value=-180, max_value=180
    )


class FulfilmentInput(serializers.Serializer):
    type = serializers.ChoiceField(choices=["pickup", "delivery"])
    store = CodeField(max_length=20, required=False)
    address = AddressInput(required=False)

    def validate(self, attrs):
        if attrs["type"] == "pickup" and not attrs.get("store"):
            raise serializers.ValidationError({"store": "Click & collect needs a store code."})
        if attrs["type"] == "delivery" and not attrs.get("address"):
            raise serializers.ValidationError({"address": "Home delivery needs an address."})
        return attrs


class OrderPlaceInput(serializers.Serializer):
    customer = CustomerInput()
    lines = LineInput(many=True, allow_empty=False, max_length=100)
    fulfilment = FulfilmentInput()


class ReasonInput(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class TakenLineInput(serializers.Serializer):
    line = serializers.IntegerField(min_value=1, max_value=10_000)
    quantity = serializers.IntegerField(min_value=0, max_value=100_000)


class PaidAtTillInput(serializers.Serializer):
    amount = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal("0.01"), max_value=Decimal("999999999")
    )
    currency = serializers.RegexField(r"^[A-Z]{3}$")
    till_reference = serializers.CharField(max_length=100, required=False, default="")


class CollectInput(serializers.Serializer):
    code = serializers.CharField(max_length=120, help_text="The short code or the QR payload.")
    paid_at_till = PaidAtTillInput(
        required=False,
        help_text="What the till took with the hand-over (pay at pickup). A hand-over is "
        "refused (409 payment_due) while money is still due.",
    )
    lines = TakenLineInput(
        many=True,
        required=False,
        allow_empty=False,
        max_length=500,
        help_text="Partial pickup: what the shopper takes (lines not listed are refused); "
        "the rest goes back on sale and only what is taken is paid.",
    )


class ShipInput(serializers.Serializer):
    location = CodeField(max_length=20, required=False, help_text="Only this location's parcel.")
    tracking = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)


class RejectInput(serializers.Serializer):
    location = CodeField(max_length=20)
    reason = serializers.ChoiceField(choices=["not_on_shelf", "damaged"])
    found_quantity = QuantityField(allow_zero=True, default=0)


class TransferReceiveInput(serializers.Serializer):
    received = serializers.DictField(
        child=QuantityField(allow_zero=True),
        required=False,
        help_text="SKU code -> units that arrived (default: everything shipped).",
    )


class ReturnLineInput(serializers.Serializer):
    line = serializers.IntegerField(min_value=1)
    quantity = QuantityField()
    unsellable = serializers.BooleanField(default=False)
    reason = serializers.CharField(max_length=120, required=False, default="", allow_blank=True)


class ReturnInput(serializers.Serializer):
    location = CodeField(max_length=20)
    lines = ReturnLineInput(many=True, allow_empty=False, max_length=100)


# ---- outputs ---------------------------------------------------------------------------------


class CartAlternativeOutput(serializers.Serializer):
    store = serializers.CharField()
    name = serializers.CharField()
    distance_km = serializers.FloatField()
    ready_by = serializers.DateTimeField()


class CartLineOutput(serializers.Serializer):
    sku = serializers.CharField()
    requested = serializers.IntegerField()
    available_here = serializers.IntegerField()
    in_store = serializers.BooleanField()


class CartCheckOutput(serializers.Serializer):
    store = serializers.CharField(source="store.code")
    can_collect = serializers.BooleanField()
    mode = serializers.ChoiceField(choices=["in_store", "transfer", "unavailable", "at_capacity"])
    ready_by = serializers.DateTimeField(allow_null=True)
    sources = serializers.ListField(child=serializers.CharField())
    lines = CartLineOutput(many=True)
    alternatives = CartAlternativeOutput(many=True)


class OrderLineOutput(serializers.ModelSerializer):
    line = serializers.IntegerField(source="line_no")
    sku = serializers.CharField(source="sku.code")

    class Meta:
        model = OrderLine
        fields = [
            "line",
            "sku",
            "quantity",
            "unit_price",
            "status",
            "quantity_returned",
            "quantity_refunded",
        ]


class AllocationLineOutput(serializers.ModelSerializer):
    line = serializers.IntegerField(source="order_line.line_no")
    reservation_status = serializers.CharField(source="reservation.status", default=None)

    class Meta:
        model = AllocationLine
        fields = ["line", "quantity", "reservation", "reservation_status", "is_active"]


class AllocationOutput(serializers.ModelSerializer):
    location = serializers.CharField(source="location.code")
    lines = AllocationLineOutput(many=True)

    class Meta:
        model = Allocation
        fields = ["id", "location", "kind", "status", "transfer", "expected_at", "lines"]


class RoutingDecisionOutput(serializers.ModelSerializer):
    class Meta:
        model = RoutingDecision
        fields = [
            "trigger",
            "rules",
            "outcome",
            "note",
            "chosen",
            "candidates",
            "duration_ms",
            "created_at",
        ]


class OrderEventOutput(serializers.ModelSerializer):
    class Meta:
        model = OrderEvent
        fields = ["kind", "from_status", "to_status", "actor", "channel", "data", "occurred_at"]


class MoneyOutput(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, source="total_amount")
    currency = serializers.CharField()


class OrderListQuery(serializers.Serializer):
    """The order list's filters; an invalid value is a 400, never silently ignored."""

    customer = serializers.CharField(
        max_length=64, required=False, help_text="Reference (UUID) or number."
    )
    channel = serializers.ChoiceField(choices=SalesChannel.choices, required=False)
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    store = serializers.CharField(
        max_length=20,
        required=False,
        help_text="Location code: the pickup store, or a location that serves the order.",
    )
    placed_from = InputDateTimeField(
        required=False, help_text="Placed at or after (ISO 8601 with its offset)."
    )
    placed_to = InputDateTimeField(required=False, help_text="Placed before.")
    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=500, required=False)

    def validate(self, attrs):
        if (
            "placed_from" in attrs
            and "placed_to" in attrs
            and attrs["placed_to"] <= attrs["placed_from"]
        ):
            raise serializers.ValidationError({"placed_to": ["must be after placed_from"]})
        return attrs


class OrderSummaryOutput(serializers.ModelSerializer):
    customer = serializers.UUIDField(source="customer.reference")
    pickup_store = serializers.CharField(source="pickup_location.code", default=None)
    total = MoneyOutput(source="*")
    line_count = serializers.IntegerField()

    class Meta:
        model = Order
        fields = [
            "reference",
            "channel",
            "status",
            "customer",
            "fulfilment",
            "pickup_store",
            "total",
            "line_count",
            "ready_by",
            "placed_at",
            "closed_at",
        ]


class OrderOutput(serializers.ModelSerializer):
    customer = serializers.UUIDField(source="customer.reference")
    pickup_store = serializers.CharField(source="pickup_location.code", default=None)
    total = MoneyOutput(source="*")
    delivery_address = serializers.SerializerMethodField()
    lines = OrderLineOutput(many=True)
    allocations = AllocationOutput(many=True)
    routing_decisions = RoutingDecisionOutput(many=True)
    events = OrderEventOutput(many=True)

    class Meta:
        model = Order
        fields = [
            "reference",
            "channel",
            "status",
            "customer",
            "fulfilment",
            "pickup_store",
            "delivery_address",
            "total",
            "ready_by",
            "delivery_expected_on",
            "ready_at",
            "pickup_deadline",
            "placed_at",
            "closed_at",
            "lines",
            "allocations",
            "routing_decisions",
            "events",
        ]

    def get_delivery_address(self, order) -> dict | None:
        if order.fulfilment != "delivery":
            return None
        return {
            "name": order.ship_name,
            "line1": order.ship_address,
            "postcode": order.ship_postcode,
            "city": order.ship_city,
            "country": order.ship_country,
            "latitude": str(order.ship_latitude),
            "longitude": str(order.ship_longitude),
        }


class ReturnOutput(serializers.ModelSerializer):
    order = serializers.CharField(source="order.reference")
    location = serializers.CharField(source="location.code")
    refund = serializers.SerializerMethodField()

    class Meta:
        model = Return
        fields = ["id", "order", "location", "refund", "created_at"]

    def get_refund(self, record) -> dict:
        return {"amount": str(record.refund_amount), "currency": record.currency}


class StockAlertInput(serializers.Serializer):
    customer = CustomerInput()
    sku = CodeField()
    store = CodeField(max_length=20, required=False)
    latitude = serializers.DecimalField(
        max_digits=9, decimal_places=6, min_value=-90, max_value=90, required=False
    )
    longitude = serializers.DecimalField(
        max_digits=9, decimal_places=6, min_value=-180, max_value=180, required=False
    )
    radius_km = serializers.DecimalField(max_digits=6, decimal_places=1, required=False)
    quantity = QuantityField(default=1)
    channel = serializers.ChoiceField(choices=["email", "sms"])

    def validate(self, attrs):
        customer = attrs["customer"]
        contact = customer.get("email") if attrs["channel"] == "email" else customer.get("phone")
        if not contact and not customer.get("reference"):  # a known customer: the one on file
            raise serializers.ValidationError(
                {"customer": f"Give the {attrs['channel']} to send the alert to."}
            )
        return attrs


class StockAlertOutput(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField(source="sku.code")
    store = serializers.CharField(source="location.code", default=None)
    radius_km = serializers.DecimalField(max_digits=6, decimal_places=1, allow_null=True)
    channel = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


# ---- the order, fast -------------------------------------------------------------------------
# OrderOutput documents the shape (OpenAPI) and is the reference; the order endpoints render with
# this plain function, which gives the same JSON (tests/orders/test_api.py checks it) at a
# fraction of the cost of DRF's field machinery, on the hottest endpoint of the API.


def _when(value):
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _decimal(value, places: int) -> str:
    return f"{value.quantize(Decimal(1).scaleb(-places)):f}"


def _parts(order) -> dict:
    """What the service just wrote (`order.loaded`, a new order), else the related rows."""
    loaded = getattr(order, "loaded", None)
    if loaded is not None:
        return loaded
    return {
        "lines": order.lines.all(),
        "allocations": order.allocations.all(),
        "routing_decisions": order.routing_decisions.all(),
        "events": order.events.all(),
    }


def _allocation_lines(allocation):
    loaded = getattr(allocation, "loaded_lines", None)
    return allocation.lines.all() if loaded is None else loaded


def order_representation(order) -> dict:
    fulfilment_is_delivery = order.fulfilment == "delivery"
    parts = _parts(order)
    return {
        "reference": order.reference,
        "channel": order.channel,
        "status": order.status,
        "customer": str(order.customer.reference),
        "fulfilment": order.fulfilment,
        "pickup_store": order.pickup_location.code if order.pickup_location_id else None,
        "delivery_address": {
            "name": order.ship_name,
            "line1": order.ship_address,
            "postcode": order.ship_postcode,
            "city": order.ship_city,
            "country": order.ship_country,
            "latitude": str(order.ship_latitude),
            "longitude": str(order.ship_longitude),
        }
        if fulfilment_is_delivery
        else None,
        "total": {"amount": _decimal(order.total_amount, 2), "currency": order.currency},
        "ready_by": _when(order.ready_by),
        "delivery_expected_on": (
            order.delivery_expected_on.isoformat() if order.delivery_expected_on else None
        ),
        "ready_at": _when(order.ready_at),
        "pickup_deadline": _when(order.pickup_deadline),
        "placed_at": _when(order.placed_at),
        "closed_at": _when(order.closed_at),
        "lines": [
            {
                "line": line.line_no,
                "sku": line.sku.code,
                "quantity": line.quantity,
                "unit_price": _decimal(line.unit_price, 2),
                "status": line.status,
                "quantity_returned": line.quantity_returned,
                "quantity_refunded": line.quantity_refunded,
            }
            for line in parts["lines"]
        ],
        "allocations": [
            {
                "id": allocation.pk,
                "location": allocation.location.code,
                "kind": allocation.kind,
                "status": allocation.status,
                "transfer": allocation.transfer_id,
                "expected_at": _when(allocation.expected_at),
                "lines": [
                    {
                        "line": held.order_line.line_no,
                        "quantity": held.quantity,
                        "reservation": held.reservation_id,
                        "reservation_status": held.reservation.status
                        if held.reservation_id
                        else None,
                        "is_active": held.is_active,
                    }
                    for held in _allocation_lines(allocation)
                ],
            }
            for allocation in parts["allocations"]
        ],
        "routing_decisions": [
            {
                "trigger": decision.trigger,
                "rules": decision.rules,
                "outcome": decision.outcome,
                "note": decision.note,
                "chosen": decision.chosen,
                "candidates": decision.candidates,
                "duration_ms": _decimal(Decimal(decision.duration_ms), 3),
                "created_at": _when(decision.created_at),
            }
            for decision in parts["routing_decisions"]
        ],
        "events": [
            {
                "kind": event.kind,
                "from_status": event.from_status,
                "to_status": event.to_status,
                "actor": event.actor,
                "channel": event.channel,
                "data": event.data,
                "occurred_at": _when(event.occurred_at),
            }
            for event in parts["events"]
        ],
    }

from rest_framework import serializers

from common.serializers import CodeField, InputDateTimeField, QuantityField
from inventory.models import (
    AdjustmentReason,
    Reservation,
    Sku,
    StockCount,
    StockMovement,
    StockOperation,
    StockPosition,
    Transfer,
    TransferLine,
)

# ---- outputs ---------------------------------------------------------------------------------


class SkuSerializer(serializers.ModelSerializer):
    class Meta:
        model = Sku
        fields = ["code", "name", "barcode", "category", "attributes", "is_active"]


class PositionSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="sku.code")
    location = serializers.CharField(source="location.code")

    class Meta:
        model = StockPosition
        fields = [
            "sku",
            "location",
            "on_hand",
            "reserved",
            "unsellable",
            "incoming",
            "safety_stock",
            "available",
            "available_at_till",
            "updated_at",
        ]


class MovementSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="sku.code")
    location = serializers.CharField(source="location.code")
    operation = serializers.CharField(source="operation.idempotency_key")
    reference = serializers.CharField(source="operation.reference")
    channel = serializers.CharField(source="operation.channel")
    actor = serializers.CharField(source="operation.actor")

    class Meta:
        model = StockMovement
        fields = [
            "id",
            "sku",
            "location",
            "kind",
            "reason",
            "quantity",
            "on_hand_delta",
            "reserved_delta",
            "unsellable_delta",
            "incoming_delta",
            "reservation",
            "transfer",
            "note",
            "occurred_at",
            "created_at",
            "operation",
            "reference",
            "channel",
            "actor",
        ]


class OperationSerializer(serializers.ModelSerializer):
    movements = serializers.SerializerMethodField()

    class Meta:
        model = StockOperation
        fields = [
            "id",
            "idempotency_key",
            "kind",
            "channel",
            "actor",
            "reference",
            "created_at",
            "movements",
        ]

    def get_movements(self, operation) -> list[dict]:
        movements = operation.movements.select_related("sku", "location", "operation").order_by(
            "pk"
        )
        return MovementSerializer(movements, many=True).data


class ReservationSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="sku.code")
    location = serializers.CharField(source="location.code")
    open_quantity = serializers.IntegerField(read_only=True)

    class Meta:
        model = Reservation
        fields = [
            "id",
            "sku",
            "location",
            "quantity",
            "committed_quantity",
            "released_quantity",
            "open_quantity",
            "status",
            "channel",
            "reference",
            "expires_at",
            "created_at",
        ]


class TransferLineSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="sku.code")

    class Meta:
        model = TransferLine
        fields = [
            "sku",
            "quantity_requested",
            "quantity_shipped",
            "quantity_received",
            "discrepancy",
        ]


class TransferSerializer(serializers.ModelSerializer):
    source = serializers.CharField(source="source.code")
    destination = serializers.CharField(source="destination.code")
    lines = TransferLineSerializer(many=True, read_only=True)

    class Meta:
        model = Transfer
        fields = [
            "id",
            "source",
            "destination",
            "status",
            "reference",
            "requested_by",
            "created_at",
            "shipped_at",
            "received_at",
            "lines",
        ]


class StockCountSerializer(serializers.ModelSerializer):
    location = serializers.CharField(source="location.code")
    lines = serializers.SerializerMethodField()

    class Meta:
        model = StockCount
        fields = ["id", "location", "counted_at", "created_at", "lines"]

    def get_lines(self, count) -> list[dict]:
        return [
            {
                "sku": line.sku.code,
                "expected": line.expected,
                "counted": line.counted,
                "difference": line.difference,
            }
            for line in count.lines.select_related("sku").order_by("pk")
        ]


class LocationAvailabilitySerializer(serializers.Serializer):
    location = serializers.CharField()
    available = serializers.IntegerField()


class SkuAvailabilitySerializer(serializers.Serializer):
    sku = serializers.CharField()
    available = serializers.IntegerField(help_text="Across the network, for the caller's channel.")
    locations = LocationAvailabilitySerializer(many=True)


class NearbyOfferSerializer(serializers.Serializer):
    location = serializers.CharField(source="location.code")
    name = serializers.CharField(source="location.name")
    city = serializers.CharField(source="location.city")
    distance_km = serializers.FloatField()
    available = serializers.IntegerField()
    ready_by = serializers.DateTimeField(
        allow_null=True, default_timezone=None, help_text="In the store's own time zone."
    )
    timezone = serializers.CharField(source="location.timezone")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.ready_by is not None:  # keep the store's UTC offset, not the server's
            data["ready_by"] = instance.ready_by.isoformat()
        return data


# ---- inputs ----------------------------------------------------------------------------------


class StockLineInput(serializers.Serializer):
    sku = CodeField()
    quantity = QuantityField()


class ReceiptInput(serializers.Serializer):
    location = CodeField(max_length=20)
    lines = StockLineInput(many=True, allow_empty=False, max_length=1000)
    reference = serializers.CharField(max_length=120, required=False, default="")


class AdjustmentInput(serializers.Serializer):
    location = CodeField(max_length=20)
    sku = CodeField()
    delta = QuantityField(signed=True, help_text="Signed number of units (+ found, − lost).")
    reason = serializers.ChoiceField(choices=AdjustmentReason.choices)
    note = serializers.CharField(max_length=255, required=False, default="")

    def validate_delta(self, value):
        if value == 0:
            raise serializers.ValidationError("delta cannot be 0.")
        return value


class SetAsideInput(serializers.Serializer):
    location = CodeField(max_length=20)
    sku = CodeField()
    quantity = QuantityField()
    action = serializers.ChoiceField(choices=["set_aside", "restore", "write_off"])
    reason = serializers.ChoiceField(
        choices=AdjustmentReason.choices, default=AdjustmentReason.DAMAGE
    )
    note = serializers.CharField(max_length=255, required=False, default="")


class CountLineInput(serializers.Serializer):
    sku = CodeField()
    counted = QuantityField(allow_zero=True)


class CountInput(serializers.Serializer):
    location = CodeField(max_length=20)
    counted_at = InputDateTimeField(required=False)
    lines = CountLineInput(many=True, allow_empty=False, max_length=5000)


class ReservationLineInput(serializers.Serializer):
    sku = CodeField()
    location = CodeField(max_length=20)
    quantity = QuantityField()


class ReservationInput(serializers.Serializer):
    lines = ReservationLineInput(many=True, allow_empty=False, max_length=200)
    reference = serializers.CharField(max_length=120, required=False, default="")
    ttl_seconds = serializers.IntegerField(min_value=0, max_value=90 * 24 * 3600, required=False)
    expires_at = InputDateTimeField(required=False)


class SettleInput(serializers.Serializer):
    quantity = QuantityField(required=False)
    release_rest = serializers.BooleanField(required=False, default=False)


class TransferInput(serializers.Serializer):
    source = CodeField(max_length=20)
    destination = CodeField(max_length=20)
    lines = StockLineInput(many=True, allow_empty=False, max_length=1000)
    reference = serializers.CharField(max_length=120, required=False, default="")


class TransferQuantitiesInput(serializers.Serializer):
    lines = StockLineInput(many=True, required=False, max_length=1000)
    close = serializers.BooleanField(required=False, default=False)


class ZeroableLineInput(serializers.Serializer):
    sku = CodeField()
    quantity = QuantityField(allow_zero=True)


class TransferReceiptInput(serializers.Serializer):
    lines = ZeroableLineInput(
        many=True, allow_empty=True, max_length=1000, required=False, default=list
    )
    close = serializers.BooleanField(required=False, default=False)


class TransferShipInput(serializers.Serializer):
    lines = ZeroableLineInput(many=True, required=False, max_length=1000)

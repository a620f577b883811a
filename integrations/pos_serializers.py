"""The POS event payloads, validated strictly at the door (a rejected event applies nothing)."""

from decimal import Decimal

from rest_framework import serializers

from common.serializers import CodeField, InputDateTimeField, QuantityField
from customers.models import ConsentChannel, ConsentPurpose
from integrations.models import PosEventType


class SaleLineSerializer(serializers.Serializer):
    sku = CodeField()
    quantity = QuantityField()
    unit_price = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=0)


class ReturnLineSerializer(SaleLineSerializer):
    unsellable = serializers.BooleanField(default=False)


# Spent through a hold the till took for the ticket (`POST payments/holds/`), captured when the
# sale applies: a gift card code never travels in a POS event (it is a bearer instrument).
STORED_VALUE_TENDERS = ("gift_card", "store_credit")


class TenderSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["cash", "card", "gift_card", "store_credit", "loyalty_points", "other"]
    )
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)
    reference = serializers.CharField(max_length=100, required=False, default="")
    hold = serializers.UUIDField(
        required=False,
        help_text="gift_card and store_credit: the hold taken for this ticket "
        "(POST payments/holds/ with the receipt number as its reference).",
    )

    def validate(self, attrs):
        if attrs["kind"] in STORED_VALUE_TENDERS and "hold" not in attrs:
            raise serializers.ValidationError(
                {"hold": [f"A {attrs['kind']} tender names the hold taken for the ticket."]}
            )
        return attrs


class ConsentGivenSerializer(serializers.Serializer):
    """A consent the person gave (or withdrew) at the counter, as the till showed it."""

    purpose = serializers.ChoiceField(choices=ConsentPurpose.choices)
    channel = serializers.ChoiceField(
        choices=ConsentChannel.choices, help_text="How we may reach them: email, sms, push, post."
    )
    granted = serializers.BooleanField()
    wording_version = serializers.CharField(
        max_length=40, help_text="The version of the text the person saw on the till's screen."
    )


class CustomerIdentifiersSerializer(serializers.Serializer):
    loyalty_card = serializers.CharField(max_length=40, required=False)
    phone = serializers.CharField(max_length=40, required=False)
    email = serializers.CharField(max_length=254, required=False)
    consents = ConsentGivenSerializer(
        many=True,
        required=False,
        max_length=20,
        help_text="Consents captured at the counter; recorded in the customer's consent log "
        "(sales channel `store`) when the sale or return applies.",
    )


class SaleDataSerializer(serializers.Serializer):
    receipt = serializers.CharField(max_length=60)
    currency = serializers.RegexField(r"^[A-Z]{3}$")
    lines = SaleLineSerializer(many=True, allow_empty=False, max_length=500)
    tenders = TenderSerializer(many=True, required=False, default=list, max_length=20)
    customer = CustomerIdentifiersSerializer(required=False)

    def validate(self, attrs):
        # Tenders, when the till sends them, are what paid this receipt (net of change given).
        if attrs["tenders"]:
            paid = sum((t["amount"] for t in attrs["tenders"]), Decimal(0))
            total = sum(
                (line["unit_price"] * line["quantity"] for line in attrs["lines"]), Decimal(0)
            )
            if paid != total:
                raise serializers.ValidationError(
                    {"tenders": [f"The tenders sum to {paid}; the receipt's lines to {total}."]}
                )
        return attrs


class ReturnDataSerializer(SaleDataSerializer):
    lines = ReturnLineSerializer(many=True, allow_empty=False, max_length=500)
    reason = serializers.CharField(max_length=120, required=False, default="")
    order_reference = serializers.CharField(
        max_length=40,
        required=False,
        default="",
        help_text="The online order these units belong to.",
    )
    original_event_id = serializers.CharField(
        max_length=100,
        required=False,
        default="",
        help_text="The sale event (same integration) these units were bought in: the points "
        "earned on them are taken back.",
    )


class CountLineSerializer(serializers.Serializer):
    sku = CodeField()
    counted = QuantityField(allow_zero=True)


class StockCountDataSerializer(serializers.Serializer):
    lines = CountLineSerializer(many=True, allow_empty=False, max_length=5000)


class PaidAtTillSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["cash", "card", "other"])
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)
    currency = serializers.RegexField(r"^[A-Z]{3}$")


class TakenSerializer(serializers.Serializer):
    sku = CodeField()
    quantity = QuantityField(allow_zero=True)


class PickupHandoverDataSerializer(serializers.Serializer):
    order_reference = serializers.CharField(max_length=40)
    pickup_code = serializers.CharField(max_length=200)
    paid_at_till = PaidAtTillSerializer(required=False)
    taken = TakenSerializer(
        many=True,
        required=False,
        allow_empty=False,
        max_length=500,
        help_text="Partial pickup: the units the shopper takes; the rest goes back on sale.",
    )


DATA_SERIALIZERS = {
    PosEventType.SALE: SaleDataSerializer,
    PosEventType.RETURN: ReturnDataSerializer,
    PosEventType.STOCK_COUNT: StockCountDataSerializer,
    PosEventType.PICKUP_HANDOVER: PickupHandoverDataSerializer,
}


class EnvelopeSerializer(serializers.Serializer):
    """Every POS event: its own id, its type, the till's clock, where, and the data."""

    event_id = serializers.CharField(max_length=100)
    type = serializers.ChoiceField(choices=PosEventType.choices)
    occurred_at = InputDateTimeField(help_text="The till's clock, with its UTC offset.")
    store = CodeField(max_length=20)
    till = serializers.CharField(max_length=40)
    data = serializers.DictField()

    def validate(self, attrs):
        # One data serializer per type for this envelope serializer's life: a batch validates
        # hundreds of events with one instance (DRF copies a serializer's fields on creation).
        validators = self.context.setdefault("data_serializers", {})
        if attrs["type"] not in validators:
            validators[attrs["type"]] = DATA_SERIALIZERS[attrs["type"]]()
        try:
            attrs["data"] = validators[attrs["type"]].run_validation(attrs["data"])
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"data": exc.detail}) from None
        return attrs


class CustomerLookupSerializer(CustomerIdentifiersSerializer):
    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Send a loyalty_card, phone or email.")
        return attrs

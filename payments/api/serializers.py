from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.serializers import InputDateTimeField
from payments.models import TenderKind


@extend_schema_field({"type": "string", "example": "12.50", "pattern": r"^\d+(\.\d+)?$"})
class AmountField(serializers.Field):
    """An amount as a JSON string ("12.50") or integer; floats are refused (they are not exact).
    The number of decimals is checked against the currency by the service."""

    default_error_messages = {"strict": 'Send amounts as strings ("12.50") or integers.'}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (str, int)):
            self.fail("strict")
        return data

    def to_representation(self, value):
        return str(value)


class MoneyOutput(serializers.Serializer):
    amount = serializers.CharField()
    currency = serializers.CharField()


class GiftCardBalanceInput(serializers.Serializer):
    code = serializers.CharField(max_length=40)


class GiftCardSellInput(serializers.Serializer):
    amount = AmountField()
    currency = serializers.CharField(max_length=3)
    reference = serializers.CharField(max_length=120, help_text="The sale: order or receipt.")
    expires_at = InputDateTimeField(required=False)


class GiftCardSoldOutput(serializers.Serializer):
    code = serializers.CharField(help_text="Shown in this answer only.")
    last4 = serializers.CharField()
    balance = serializers.CharField()
    currency = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)


class GiftCardBalanceOutput(serializers.Serializer):
    last4 = serializers.CharField(source="code_last4")
    currency = serializers.CharField()
    balance = serializers.CharField()
    available = serializers.CharField()
    state = serializers.CharField(help_text="active, blocked or expired")
    expires_at = serializers.DateTimeField(allow_null=True)


class WalletOutput(serializers.Serializer):
    currency = serializers.CharField()
    balance = serializers.CharField()
    held = serializers.CharField()
    available = serializers.CharField()


class StoreCreditOutput(serializers.Serializer):
    customer = serializers.CharField()
    wallets = WalletOutput(many=True)


class GoodwillCreditInput(serializers.Serializer):
    amount = AmountField()
    currency = serializers.RegexField(r"^[A-Z]{3}$")
    reason = serializers.CharField(
        max_length=255, help_text="Why (kept in the wallet's ledger): e.g. 'late parcel, #123'."
    )


class GoodwillCreditOutput(serializers.Serializer):
    customer = serializers.CharField()
    credited = serializers.CharField()
    currency = serializers.CharField()
    balance_after = serializers.CharField()
    wallets = WalletOutput(many=True)


class TenderAddInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=TenderKind.choices)
    amount = AmountField()
    currency = serializers.CharField(max_length=3)
    code = serializers.CharField(max_length=40, required=False, help_text="gift_card: its code.")
    token = serializers.CharField(
        max_length=200, required=False, help_text="card: the provider's card token."
    )
    capture_now = serializers.BooleanField(
        default=False,
        help_text="card: capture as soon as authorised (pay now) rather than at pickup/shipping.",
    )
    till_reference = serializers.CharField(
        max_length=100, required=False, default="", help_text="till: the ticket number."
    )

    def validate(self, attrs):
        needs = {TenderKind.GIFT_CARD: "code", TenderKind.CARD: "token"}.get(attrs["kind"])
        if needs and not attrs.get(needs):
            raise serializers.ValidationError({needs: [f"required for a {attrs['kind']} tender"]})
        return attrs


class TenderOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField()
    currency = serializers.CharField()
    amount = serializers.CharField()
    amount_authorised = serializers.CharField()
    amount_captured = serializers.CharField()
    amount_refunded = serializers.CharField()
    provider = serializers.CharField()
    provider_reference = serializers.CharField()
    failure_code = serializers.CharField()
    created_at = serializers.DateTimeField()


class PaymentSummaryOutput(serializers.Serializer):
    order = serializers.CharField(source="order_reference")
    currency = serializers.CharField()
    total = serializers.CharField()
    authorised = serializers.CharField(help_text="Held or authorised, not captured yet.")
    paid = serializers.CharField(help_text="Captured.")
    refunded = serializers.CharField()
    due = serializers.CharField(help_text="Not covered by any live tender yet.")
    tenders = TenderOutput(many=True)


class TenderAddOutput(serializers.Serializer):
    tender = TenderOutput()
    payment = PaymentSummaryOutput()


class RefundLineInput(serializers.Serializer):
    line = serializers.IntegerField(min_value=1, max_value=10_000)
    quantity = serializers.IntegerField(min_value=1, max_value=100_000)


class RefundInput(serializers.Serializer):
    """Refund an amount, or order lines (`lines`: what those units cost the shopper)."""

    amount = AmountField(required=False)
    lines = RefundLineInput(many=True, required=False, allow_empty=False, max_length=500)
    currency = serializers.CharField(max_length=3)
    to_store_credit = serializers.BooleanField(default=False)
    reason = serializers.CharField(max_length=255, required=False, default="")

    def validate(self, attrs):
        if ("amount" in attrs) == ("lines" in attrs):
            raise serializers.ValidationError("Give either an amount or lines.")
        return attrs


class RefundLineOutput(serializers.Serializer):
    tender = serializers.IntegerField()
    kind = serializers.CharField()
    amount = serializers.CharField()
    to_store_credit = serializers.BooleanField()


class RefundOutput(serializers.Serializer):
    lines = RefundLineOutput(many=True)
    payment = PaymentSummaryOutput()


class WebhookAck(serializers.Serializer):
    received = serializers.BooleanField()
    duplicate = serializers.BooleanField()


class HoldCreateInput(serializers.Serializer):
    source = serializers.ChoiceField(choices=["gift_card", "store_credit"])
    code = serializers.CharField(max_length=40, required=False, help_text="gift_card: its code.")
    customer = serializers.CharField(
        max_length=64, required=False, help_text="store_credit: customer reference or number."
    )
    amount = AmountField()
    currency = serializers.CharField(max_length=3)
    reference = serializers.CharField(max_length=120, help_text="Till ticket or cart id.")
    expires_in_seconds = serializers.IntegerField(
        min_value=30, max_value=7 * 24 * 3600, required=False
    )

    def validate(self, attrs):
        needs = "code" if attrs["source"] == "gift_card" else "customer"
        if not attrs.get(needs):
            raise serializers.ValidationError({needs: [f"required for {attrs['source']}"]})
        return attrs


class HoldCaptureInput(serializers.Serializer):
    amount = AmountField(required=False, help_text="Default: the whole hold.")


class HoldOutput(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    source = serializers.CharField()
    currency = serializers.CharField()
    amount = serializers.CharField()
    captured_amount = serializers.CharField()
    status = serializers.CharField()
    expires_at = serializers.DateTimeField()
    reference = serializers.CharField()

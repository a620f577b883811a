"""Small input and output serializers of the loyalty API."""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.channels import SalesChannel
from loyalty.models import SpendPurpose


@extend_schema_field(OpenApiTypes.STR)
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


class PointsField(serializers.IntegerField):
    """A whole number of points as a JSON integer (no strings, floats or booleans), > 0."""

    default_error_messages = {"strict": "Send points as a JSON integer."}

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 10_000_000)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("strict")
        return super().to_internal_value(data)


class StrictQuantityField(serializers.IntegerField):
    default_error_messages = {"strict": "Send a whole number of units as a JSON integer."}

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", settings.OMNISTOCK["MAX_QUANTITY_PER_LINE"])
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("strict")
        return super().to_internal_value(data)


# ---- inputs ---------------------------------------------------------------------------------


class EnrolInput(serializers.Serializer):
    card_number = serializers.CharField(max_length=40, required=False)


class PointsHoldInput(serializers.Serializer):
    customer = serializers.CharField(max_length=40, help_text="Reference (UUID) or number.")
    points = PointsField()
    reference = serializers.CharField(max_length=120, help_text="Order or till ticket.")
    purpose = serializers.ChoiceField(choices=SpendPurpose.choices, default=SpendPurpose.TENDER)
    store = serializers.CharField(max_length=20, required=False, help_text="Location code.")


class PointsCaptureInput(serializers.Serializer):
    points = PointsField(required=False, help_text="Default: all the hold.")


class BasketLineInput(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = StrictQuantityField()
    amount = AmountField(help_text="The line's total, as a string.")
    category = serializers.CharField(max_length=80, required=False, allow_blank=True)


class CouponInput(serializers.Serializer):
    code = serializers.CharField(max_length=40)
    customer = serializers.CharField(max_length=40, help_text="Reference (UUID) or number.")
    currency = serializers.CharField(max_length=3)
    lines = BasketLineInput(many=True, allow_empty=False)


class CouponHoldInput(CouponInput):
    cart_ref = serializers.CharField(max_length=120)


class CouponReleaseInput(serializers.Serializer):
    code = serializers.CharField(max_length=40)
    customer = serializers.CharField(max_length=40)
    cart_ref = serializers.CharField(max_length=120)


class CouponRedeemInput(CouponInput):
    store = serializers.CharField(max_length=20, required=False, help_text="Required at a till.")
    till = serializers.CharField(max_length=40, required=False, allow_blank=True)
    order_ref = serializers.CharField(max_length=120, required=False, allow_blank=True)
    cart_ref = serializers.CharField(max_length=120, required=False, allow_blank=True)


class RewardBuyInput(serializers.Serializer):
    customer = serializers.CharField(max_length=40, help_text="Reference (UUID) or number.")
    reward = serializers.SlugField(max_length=40)
    store = serializers.CharField(max_length=20, required=False, help_text="Location code.")


# ---- outputs --------------------------------------------------------------------------------


class LotOutput(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    kind = serializers.CharField()
    source_type = serializers.CharField()
    source_ref = serializers.CharField()
    amount = serializers.IntegerField()
    remaining = serializers.IntegerField()
    earned_at = serializers.DateTimeField()
    available_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    pending = serializers.BooleanField()


class TierOutput(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class AccountOutput(serializers.Serializer):
    customer = serializers.CharField()
    card_number = serializers.CharField()
    tier = TierOutput(allow_null=True)
    tier_review_at = serializers.DateTimeField(allow_null=True)
    available = serializers.IntegerField(help_text="Spendable now.")
    pending = serializers.IntegerField(help_text="Earned, spendable after the return window.")
    held = serializers.IntegerField(help_text="In open holds (payments in progress).")
    lots = LotOutput(many=True)


class MovementOutput(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    kind = serializers.CharField()
    delta = serializers.IntegerField()
    lot = serializers.IntegerField(source="lot_id")
    lot_kind = serializers.CharField(source="lot.kind")
    source = serializers.SerializerMethodField()
    hold = serializers.IntegerField(source="spend_id", allow_null=True)
    occurred_at = serializers.DateTimeField()

    def get_source(self, movement) -> str:
        return f"{movement.lot.source_type}:{movement.lot.source_ref}"


class HistoryOutput(serializers.Serializer):
    results = MovementOutput(many=True)
    next_before = serializers.IntegerField(allow_null=True)


class SpendOutput(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    status = serializers.CharField()
    purpose = serializers.CharField()
    reference = serializers.CharField()
    points = serializers.IntegerField()
    captured_points = serializers.IntegerField()
    channel = serializers.ChoiceField(choices=SalesChannel.choices)
    expires_at = serializers.DateTimeField(allow_null=True)


class OfferOutput(serializers.Serializer):
    code = serializers.CharField()
    campaign = serializers.CharField(source="campaign.name")
    discount_type = serializers.CharField(source="campaign.discount_type")
    discount_value = serializers.DecimalField(
        max_digits=10, decimal_places=2, source="campaign.discount_value"
    )
    currency = serializers.CharField(source="campaign.currency")
    min_basket = serializers.DecimalField(
        max_digits=12, decimal_places=2, source="campaign.min_basket"
    )
    channels = serializers.ListField(child=serializers.CharField(), source="campaign.channels")
    valid_until = serializers.DateTimeField(source="campaign.ends_at")
    status = serializers.CharField()


class ValidationOutput(serializers.Serializer):
    code = serializers.CharField(source="coupon.code")
    campaign = serializers.CharField(source="coupon.campaign.name")
    basket_total = serializers.DecimalField(max_digits=12, decimal_places=2)
    eligible_amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    discount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField(source="coupon.campaign.currency")


class RedemptionOutput(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    code = serializers.CharField(source="coupon.code")
    campaign = serializers.CharField(source="campaign.name")
    channel = serializers.CharField()
    store = serializers.CharField(source="store.code", allow_null=True, default=None)
    till = serializers.CharField()
    order_ref = serializers.CharField()
    basket_total = serializers.DecimalField(max_digits=12, decimal_places=2)
    discount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    redeemed_at = serializers.DateTimeField()


class ReportOutput(serializers.Serializer):
    campaign = serializers.IntegerField()
    name = serializers.CharField()
    issued = serializers.IntegerField()
    recipients = serializers.IntegerField()
    redeemed = serializers.IntegerField()
    redemption_rate = serializers.CharField()
    redeemed_in_store = serializers.IntegerField()
    redeemed_online = serializers.IntegerField()
    o2o_days = serializers.IntegerField()
    o2o_store_visitors = serializers.IntegerField()
    revenue = serializers.CharField()
    currency = serializers.CharField()


class RewardOutput(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    points_cost = serializers.IntegerField()
    channels = serializers.ListField(child=serializers.CharField())

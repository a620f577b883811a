"""Small input and output serializers of the loyalty API."""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.channels import SalesChannel
from common.serializers import AwareDateTimeField
from loyalty.models import DiscountType, IssueChannel, SpendPurpose, TargetKind


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


class WholeNumberField(serializers.IntegerField):
    """A JSON integer (no strings, floats or booleans) within the field's bounds."""

    default_error_messages = {"strict": "Send a JSON integer."}

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


class CampaignCreateInput(serializers.Serializer):
    """The campaign's fields as the model has them; the rules (ranges, period, target) are the
    service's (`coupons.campaign_create`)."""

    name = serializers.CharField(max_length=120)
    discount_type = serializers.ChoiceField(choices=DiscountType.choices)
    discount_value = AmountField(help_text='Percent ("15") or amount off ("10.00"), a string.')
    currency = serializers.CharField(min_length=3, max_length=3, default="EUR")
    min_basket = AmountField(default="0", help_text="Basket total the code needs, a string.")
    eligible_skus = serializers.ListField(
        child=serializers.CharField(max_length=64),
        default=list,
        max_length=1000,
        help_text="SKU codes the discount applies to (empty, with no category: every line).",
    )
    eligible_categories = serializers.ListField(
        child=serializers.CharField(max_length=80), default=list, max_length=200
    )
    starts_at = AwareDateTimeField()
    ends_at = AwareDateTimeField()
    channels = serializers.ListField(
        child=serializers.ChoiceField(choices=SalesChannel.choices),
        allow_empty=False,
        max_length=len(SalesChannel.choices),
        help_text='Sales channels where the code is usable, e.g. ["web", "store"].',
    )
    per_customer_limit = WholeNumberField(min_value=1, max_value=100, default=1)
    issue_channel = serializers.ChoiceField(
        choices=IssueChannel.choices,
        help_text="How the codes reach people; the marketing consent needed on it (a receipt: "
        "any channel).",
    )
    target_kind = serializers.ChoiceField(choices=TargetKind.choices)
    target_customers = serializers.ListField(
        child=serializers.CharField(max_length=64),
        default=list,
        max_length=10_000,
        help_text="A list target: customer references (UUID) or numbers.",
    )
    segment_tier = serializers.CharField(
        max_length=40, required=False, allow_null=True, help_text="A segment: tier code."
    )
    segment_preferred_store = serializers.CharField(
        max_length=20, required=False, allow_null=True, help_text="A segment: location code."
    )
    segment_inactive_days = WholeNumberField(
        min_value=1,
        max_value=3650,
        required=False,
        allow_null=True,
        help_text="A segment: last purchase older than this many days.",
    )
    segment_marketing_consent = serializers.BooleanField(default=True)
    o2o_days = WholeNumberField(
        min_value=1, max_value=365, default=30, help_text="The report's store-visit window."
    )


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


class CampaignOutput(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    discount_type = serializers.CharField()
    discount_value = serializers.DecimalField(max_digits=10, decimal_places=2)
    currency = serializers.CharField()
    min_basket = serializers.DecimalField(max_digits=12, decimal_places=2)
    eligible_skus = serializers.ListField(child=serializers.CharField())
    eligible_categories = serializers.ListField(child=serializers.CharField())
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    channels = serializers.ListField(child=serializers.CharField())
    per_customer_limit = serializers.IntegerField()
    issue_channel = serializers.CharField()
    target_kind = serializers.CharField()
    target_customers_count = serializers.IntegerField(
        help_text="Customers the list names (a list target; who they are is not shown here)."
    )
    segment_tier = serializers.CharField(source="segment_tier.code", allow_null=True, default=None)
    segment_preferred_store = serializers.CharField(
        source="segment_preferred_store.code", allow_null=True, default=None
    )
    segment_inactive_days = serializers.IntegerField(allow_null=True)
    segment_marketing_consent = serializers.BooleanField()
    o2o_days = serializers.IntegerField()
    codes_issued = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class IssueOutput(serializers.Serializer):
    campaign = serializers.IntegerField()
    issued = serializers.IntegerField(help_text="Codes issued by this call.")
    skipped_no_consent = serializers.IntegerField(
        help_text="Targets without the marketing consent the issue channel needs."
    )
    skipped_limit = serializers.IntegerField(
        help_text="Targets who already hold per_customer_limit codes of the campaign."
    )
    codes_issued = serializers.IntegerField(help_text="Codes of the campaign, over all issues.")


class RecipientOutput(serializers.Serializer):
    customer = serializers.UUIDField(
        allow_null=True, help_text="Reference; null when the person does not consent (now)."
    )
    customer_number = serializers.CharField(allow_null=True)
    identified = serializers.BooleanField(
        help_text="The recipient consents today to marketing on the campaign's issue channel."
    )
    codes = serializers.IntegerField()
    issued_at = serializers.DateTimeField(help_text="Issue of their first code of the campaign.")
    redemptions = serializers.IntegerField()
    redeemed_at = serializers.DateTimeField(allow_null=True, help_text="The first redemption.")
    redeemed_channel = serializers.CharField(allow_null=True)
    redeemed_store = serializers.CharField(allow_null=True, help_text="Location code (a till).")
    store_visits = serializers.IntegerField(
        help_text="Store purchases within o2o_days of issued_at (docs/loyalty.md)."
    )
    first_store_visit_at = serializers.DateTimeField(allow_null=True)

"""Loyalty points (a ledger of lots) and personal offers (campaigns and single-use codes).

Points are whole numbers. Every earn is a `PointsLot` with its own expiry; every change of a
lot's `remaining` is a `PointsMovement` row (append-only), made by one `PointsOperation` (one
idempotent service call). `LoyaltyAccount.points_remaining` is a cache of the sum of its lots'
`remaining`, written in the same statement sequence; `loyalty.selectors.ledger_mismatches` proves
that account == SUM(lots) and lot == SUM(movements).

Writes go through `loyalty.services` (points) and `loyalty.coupons` (offers).
"""

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from common.channels import SalesChannel
from stores.models import Location


class ProgramSettings(models.Model):
    """The programme's parameters (one row, edited in the admin)."""

    currency = models.CharField(max_length=3, default="EUR", verbose_name=_("currency"))
    points_per_unit = models.DecimalField(
        max_digits=8,
        decimal_places=3,
        default=1,
        help_text=_("Points per whole currency unit."),
        verbose_name=_("points per unit"),
    )
    min_order_value = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=0,
        help_text=_("Below it a purchase earns nothing."),
        verbose_name=_("min order value"),
    )
    pending_days = models.PositiveIntegerField(
        default=30,
        help_text=_("Return window: earned points become spendable after it."),
        verbose_name=_("pending days"),
    )
    validity_days = models.PositiveIntegerField(
        default=365, help_text=_("Lots expire after it."), verbose_name=_("validity days")
    )
    tier_period_days = models.PositiveIntegerField(
        default=365,
        help_text=_("Rolling period over which earned points qualify for a tier."),
        verbose_name=_("tier period days"),
    )
    hold_ttl_minutes = models.PositiveIntegerField(
        default=30,
        help_text=_("An uncaptured points hold is released after it."),
        verbose_name=_("hold ttl minutes"),
    )

    class Meta:
        verbose_name = _("programme settings")
        verbose_name_plural = _("programme settings")

    def __str__(self) -> str:
        return f"{self.points_per_unit} pt / {self.currency}"


class Tier(models.Model):
    code = models.SlugField(max_length=20, unique=True, verbose_name=_("code"))
    name = models.CharField(max_length=60, verbose_name=_("name"))
    threshold_points = models.PositiveIntegerField(
        help_text=_("Points earned over the rolling period needed to qualify."),
        verbose_name=_("threshold points"),
    )
    multiplier = models.DecimalField(
        max_digits=5, decimal_places=2, default=1, verbose_name=_("multiplier")
    )

    class Meta:
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        ordering = ["threshold_points"]

    def __str__(self) -> str:
        return self.name


class RuleScope(models.TextChoices):
    ALL = "all", _("Every purchase (campaign bonus for a period)")
    TIER = "tier", _("Tier (value: tier code)")
    CATEGORY = "category", _("Product category (value: category)")
    SKU = "sku", _("SKU (value: SKU code)")
    CHANNEL = "channel", _("Sales channel (value: channel)")
    EXCLUDED_SKU = "excluded_sku", _("Excluded SKU (value: SKU code): earns nothing")


class EarningRule(models.Model):
    """A multiplier (and/or a flat bonus per purchase) applying to lines that match the scope.

    Multipliers of different scopes multiply; within one scope the highest matching one applies.
    """

    name = models.CharField(max_length=100, verbose_name=_("name"))
    scope = models.CharField(max_length=16, choices=RuleScope.choices, verbose_name=_("scope"))
    value = models.CharField(max_length=80, blank=True, verbose_name=_("value"))
    multiplier = models.DecimalField(
        max_digits=6, decimal_places=2, default=1, verbose_name=_("multiplier")
    )
    bonus_points = models.PositiveIntegerField(
        default=0,
        help_text=_("Flat points added once per purchase with a matching line."),
        verbose_name=_("bonus points"),
    )
    starts_at = models.DateTimeField(null=True, blank=True, verbose_name=_("starts at"))
    ends_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ends at"))
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))

    class Meta:
        verbose_name = _("earning rule")
        verbose_name_plural = _("earning rules")
        constraints = [
            models.CheckConstraint(condition=Q(multiplier__gte=0), name="rule_multiplier_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope}={self.value} ×{self.multiplier})"


class LoyaltyAccount(models.Model):
    customer = models.OneToOneField(
        "customers.Customer",
        on_delete=models.PROTECT,
        related_name="loyalty_account",
        verbose_name=_("customer"),
    )
    card_number = models.CharField(max_length=32, unique=True, verbose_name=_("card number"))
    tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, verbose_name=_("tier")
    )
    tier_review_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("End of the period the current tier is held for."),
        verbose_name=_("tier review at"),
    )
    points_remaining = models.BigIntegerField(
        default=0,
        help_text=_("Cache of SUM(lot.remaining): spendable + pending + not yet expired."),
        verbose_name=_("points remaining"),
    )
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("loyalty account")
        verbose_name_plural = _("loyalty accounts")
        constraints = [
            models.CheckConstraint(
                condition=Q(points_remaining__gte=0), name="account_points_remaining_gte_0"
            )
        ]

    def __str__(self) -> str:
        return f"Card {self.card_number}"


class LotKind(models.TextChoices):
    EARN = "earn", _("Earned on a purchase")
    REFUND = "refund", _("Points spent on a refunded order, given back")
    MERGE_IN = "merge_in", _("Moved from a merged customer record")
    ADJUSTMENT = "adjustment", _("Goodwill / correction")


class SourceType(models.TextChoices):
    ORDER = "order", _("Online order")
    STORE_RECEIPT = "store_receipt", _("Store receipt (POS)")
    SPEND = "spend", _("Points spend (refund of spent points)")
    LOT = "lot", _("Another lot (merge)")
    MANUAL = "manual", _("Manual")


class PointsOperation(models.Model):
    """One call of a points service: its idempotency key and a hash of its arguments."""

    idempotency_key = models.CharField(
        max_length=255, unique=True, verbose_name=_("idempotency key")
    )
    kind = models.CharField(max_length=24, verbose_name=_("kind"))
    request_hash = models.CharField(max_length=64, verbose_name=_("request hash"))
    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, blank=True, verbose_name=_("channel")
    )
    actor = models.CharField(max_length=150, blank=True, verbose_name=_("actor"))
    result = models.JSONField(default=dict, blank=True, verbose_name=_("result"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("points operation")
        verbose_name_plural = _("points operations")

    def __str__(self) -> str:
        return f"{self.kind} {self.idempotency_key}"


class PointsLot(models.Model):
    account = models.ForeignKey(
        LoyaltyAccount, on_delete=models.PROTECT, related_name="lots", verbose_name=_("account")
    )
    kind = models.CharField(max_length=12, choices=LotKind.choices, verbose_name=_("kind"))
    source_type = models.CharField(
        max_length=16, choices=SourceType.choices, verbose_name=_("source type")
    )
    source_ref = models.CharField(max_length=120, verbose_name=_("source ref"))
    amount = models.PositiveIntegerField(verbose_name=_("amount"))
    remaining = models.PositiveIntegerField(verbose_name=_("remaining"))
    earned_at = models.DateTimeField(verbose_name=_("earned at"))
    available_at = models.DateTimeField(
        help_text=_("Pending until then (return window)."), verbose_name=_("available at")
    )
    expires_at = models.DateTimeField(verbose_name=_("expires at"))
    expired_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expired at"))
    origin_lot = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("origin lot"),
    )
    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, blank=True, verbose_name=_("channel")
    )
    store = models.ForeignKey(
        Location,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("store"),
    )
    operation = models.ForeignKey(
        PointsOperation, on_delete=models.PROTECT, related_name="lots", verbose_name=_("operation")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("points lot")
        verbose_name_plural = _("points lots")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="lot_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("amount")),
                name="lot_remaining_between_0_and_amount",
            ),
            # Earning once per source: a retried POS event or a re-confirmed order never earns
            # twice, whatever idempotency key it comes with.
            models.UniqueConstraint(
                fields=["source_type", "source_ref"],
                condition=Q(kind="earn"),
                name="uniq_earn_per_source",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "expires_at", "id"]),
            models.Index(fields=["expires_at"], condition=Q(remaining__gt=0), name="lot_open_exp"),
            models.Index(fields=["earned_at"], name="lot_earned_at"),  # the points KPI
        ]

    def __str__(self) -> str:
        return f"Lot {self.pk}: {self.remaining}/{self.amount} ({self.kind} {self.source_ref})"


class MovementKind(models.TextChoices):
    CREDIT = "credit", _("Lot created")
    HOLD = "hold", _("Held for a spend")
    RELEASE = "release", _("Hold released")
    EXPIRE = "expire", _("Expired")
    REVERSE = "reverse", _("Reversed (goods returned)")
    MERGE_OUT = "merge_out", _("Moved to another account (merge)")
    FORFEIT = "forfeit", _("Forfeited (the member's data was erased)")


class PointsMovement(models.Model):
    """Append-only: one change of one lot's `remaining`. A captured hold needs none (the points
    left the lot when they were held)."""

    operation = models.ForeignKey(
        PointsOperation,
        on_delete=models.PROTECT,
        related_name="movements",
        verbose_name=_("operation"),
    )
    account = models.ForeignKey(
        LoyaltyAccount, on_delete=models.PROTECT, related_name="+", verbose_name=_("account")
    )
    lot = models.ForeignKey(
        PointsLot, on_delete=models.PROTECT, related_name="movements", verbose_name=_("lot")
    )
    kind = models.CharField(max_length=12, choices=MovementKind.choices, verbose_name=_("kind"))
    delta = models.IntegerField(verbose_name=_("delta"))
    spend = models.ForeignKey(
        "PointsSpend",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="movements",
        verbose_name=_("spend"),
    )
    occurred_at = models.DateTimeField(verbose_name=_("occurred at"))

    class Meta:
        verbose_name = _("points movement")
        verbose_name_plural = _("points movements")
        indexes = [models.Index(fields=["account", "-occurred_at", "-id"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.delta:+d} on lot {self.lot_id}"


class SpendStatus(models.TextChoices):
    HELD = "held", _("Held")
    CAPTURED = "captured", _("Captured")
    RELEASED = "released", _("Released")
    EXPIRED = "expired", _("Expired (released)")


class SpendPurpose(models.TextChoices):
    TENDER = "tender", _("Tender on an order or a till ticket")
    REWARD = "reward", _("Reward from the catalogue")


class PointsSpend(models.Model):
    """Points taken from lots (soonest to expire first) for a tender or a reward.

    held → captured (all or part; the rest goes back to the lots) or released / expired."""

    account = models.ForeignKey(
        LoyaltyAccount, on_delete=models.PROTECT, related_name="spends", verbose_name=_("account")
    )
    purpose = models.CharField(
        max_length=10, choices=SpendPurpose.choices, verbose_name=_("purpose")
    )
    reference = models.CharField(
        max_length=120, help_text=_("Order, till ticket or reward."), verbose_name=_("reference")
    )
    points = models.PositiveIntegerField(verbose_name=_("points"))
    captured_points = models.PositiveIntegerField(default=0, verbose_name=_("captured points"))
    refunded_points = models.PositiveIntegerField(default=0, verbose_name=_("refunded points"))
    status = models.CharField(
        max_length=10, choices=SpendStatus.choices, default="held", verbose_name=_("status")
    )
    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, verbose_name=_("channel")
    )
    store = models.ForeignKey(
        Location,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("store"),
    )
    expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expires at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("closed at"))
    operation = models.OneToOneField(
        PointsOperation, on_delete=models.PROTECT, related_name="spend", verbose_name=_("operation")
    )

    class Meta:
        verbose_name = _("points spend")
        verbose_name_plural = _("points spends")
        constraints = [
            models.CheckConstraint(condition=Q(points__gt=0), name="spend_points_gt_0"),
            models.CheckConstraint(
                condition=Q(captured_points__lte=F("points")), name="spend_captured_lte_points"
            ),
            models.CheckConstraint(
                condition=Q(refunded_points__lte=F("captured_points")),
                name="spend_refunded_lte_captured",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"]),
            models.Index(fields=["created_at"], name="spend_created_at"),  # the points KPI
        ]

    def __str__(self) -> str:
        return f"Spend {self.pk}: {self.points} pts ({self.status})"


class EarnLine(models.Model):
    """How many points each purchased line earned (for pro rata reversal on returns)."""

    lot = models.ForeignKey(
        PointsLot, on_delete=models.PROTECT, related_name="lines", verbose_name=_("lot")
    )
    line_ref = models.CharField(max_length=60, verbose_name=_("line ref"))
    sku = models.CharField(max_length=64, verbose_name=_("sku"))
    quantity = models.PositiveIntegerField(verbose_name=_("quantity"))
    amount = models.DecimalField(max_digits=12, decimal_places=2, verbose_name=_("amount"))
    points = models.PositiveIntegerField(verbose_name=_("points"))
    quantity_returned = models.PositiveIntegerField(default=0, verbose_name=_("quantity returned"))

    class Meta:
        verbose_name = _("earn line")
        verbose_name_plural = _("earn lines")
        constraints = [
            models.UniqueConstraint(fields=["lot", "line_ref"], name="uniq_earn_line"),
            models.CheckConstraint(
                condition=Q(quantity_returned__lte=F("quantity")), name="earn_line_returned_lte"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.line_ref}: {self.points} pts"


class PointsReversal(models.Model):
    """A return's reversal: points due back, points actually taken, shortfall (already spent)."""

    operation = models.OneToOneField(
        PointsOperation,
        on_delete=models.PROTECT,
        related_name="reversal",
        verbose_name=_("operation"),
    )
    lot = models.ForeignKey(
        PointsLot, on_delete=models.PROTECT, related_name="reversals", verbose_name=_("lot")
    )
    return_ref = models.CharField(max_length=120, verbose_name=_("return ref"))
    points_due = models.PositiveIntegerField(verbose_name=_("points due"))
    points_taken = models.PositiveIntegerField(verbose_name=_("points taken"))
    shortfall = models.PositiveIntegerField(default=0, verbose_name=_("shortfall"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("points reversal")
        verbose_name_plural = _("points reversals")

    def __str__(self) -> str:
        return f"Reversal {self.return_ref}: {self.points_taken}/{self.points_due}"


class TierChange(models.Model):
    account = models.ForeignKey(
        LoyaltyAccount, on_delete=models.PROTECT, related_name="tiers", verbose_name=_("account")
    )
    from_tier = models.ForeignKey(
        Tier,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("from tier"),
    )
    to_tier = models.ForeignKey(
        Tier,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("to tier"),
    )
    qualifying_points = models.IntegerField(verbose_name=_("qualifying points"))
    reason = models.CharField(max_length=20, verbose_name=_("reason"))  # upgrade / review
    occurred_at = models.DateTimeField(verbose_name=_("occurred at"))

    class Meta:
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")

    def __str__(self) -> str:
        return f"{self.from_tier} → {self.to_tier}"


class Reward(models.Model):
    """An item of the rewards catalogue, bought with points."""

    code = models.SlugField(max_length=40, unique=True, verbose_name=_("code"))
    name = models.CharField(max_length=120, verbose_name=_("name"))
    points_cost = models.PositiveIntegerField(verbose_name=_("points cost"))
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    channels = models.JSONField(
        default=list,
        blank=True,
        help_text=_("Sales channels where it can be bought (empty: all)."),
        verbose_name=_("channels"),
    )

    class Meta:
        verbose_name = _("reward")
        verbose_name_plural = _("rewards")
        constraints = [
            models.CheckConstraint(condition=Q(points_cost__gt=0), name="reward_cost_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.points_cost} pts)"


# ---- personal offers -----------------------------------------------------------------------


class DiscountType(models.TextChoices):
    PERCENT = "percent", _("Percentage")
    AMOUNT = "amount", _("Fixed amount")


class TargetKind(models.TextChoices):
    LIST = "list", _("A list of customers")
    SEGMENT = "segment", _("A segment")


class IssueChannel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    PUSH = "push", _("App push")
    RECEIPT = "receipt", _("Printed on a receipt")


class Campaign(models.Model):
    name = models.CharField(max_length=120, verbose_name=_("name"))
    discount_type = models.CharField(
        max_length=8, choices=DiscountType.choices, verbose_name=_("discount type")
    )
    discount_value = models.DecimalField(
        max_digits=10, decimal_places=2, verbose_name=_("discount value")
    )
    currency = models.CharField(max_length=3, default="EUR", verbose_name=_("currency"))
    min_basket = models.DecimalField(
        max_digits=12, decimal_places=2, default=0, verbose_name=_("min basket")
    )
    eligible_skus = models.JSONField(
        default=list, blank=True, help_text=_("Empty: every SKU."), verbose_name=_("eligible skus")
    )
    eligible_categories = models.JSONField(
        default=list, blank=True, verbose_name=_("eligible categories")
    )
    starts_at = models.DateTimeField(verbose_name=_("starts at"))
    ends_at = models.DateTimeField(verbose_name=_("ends at"))
    channels = models.JSONField(
        default=list,
        help_text=_('Sales channels where the code is usable, e.g. ["web", "store"].'),
        verbose_name=_("channels"),
    )
    per_customer_limit = models.PositiveIntegerField(
        default=1,
        help_text=_("Codes (each single-use) a customer may receive over all issues."),
        verbose_name=_("per customer limit"),
    )
    issue_channel = models.CharField(
        max_length=8, choices=IssueChannel.choices, verbose_name=_("issue channel")
    )
    target_kind = models.CharField(
        max_length=8, choices=TargetKind.choices, verbose_name=_("target kind")
    )
    target_customers = models.ManyToManyField(
        "customers.Customer",
        blank=True,
        related_name="+",
        help_text=_("For a list target."),
        verbose_name=_("target customers"),
    )
    segment_tier = models.ForeignKey(
        Tier,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("segment tier"),
    )
    segment_preferred_store = models.ForeignKey(
        Location,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("segment preferred store"),
    )
    segment_inactive_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Last purchase older than N days."),
        verbose_name=_("segment inactive days"),
    )
    segment_marketing_consent = models.BooleanField(
        default=True, verbose_name=_("segment marketing consent")
    )
    o2o_days = models.PositiveIntegerField(
        default=30,
        help_text=_("Window after issue for the store-visit (O2O) count."),
        verbose_name=_("o2o days"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        constraints = [
            models.CheckConstraint(condition=Q(discount_value__gt=0), name="campaign_value_gt_0"),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="campaign_period"),
        ]

    def __str__(self) -> str:
        return self.name


class CouponStatus(models.TextChoices):
    ISSUED = "issued", _("Issued")
    HELD = "held", _("Held on a cart")
    REDEEMED = "redeemed", _("Redeemed")


class Coupon(models.Model):
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="coupons", verbose_name=_("campaign")
    )
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="+", verbose_name=_("customer")
    )
    code = models.CharField(max_length=24, unique=True, verbose_name=_("code"))
    issue_channel = models.CharField(
        max_length=8, choices=IssueChannel.choices, verbose_name=_("issue channel")
    )
    issued_at = models.DateTimeField(verbose_name=_("issued at"))
    status = models.CharField(
        max_length=10, choices=CouponStatus.choices, default="issued", verbose_name=_("status")
    )
    hold_ref = models.CharField(max_length=120, blank=True, verbose_name=_("hold ref"))
    hold_channel = models.CharField(max_length=20, blank=True, verbose_name=_("hold channel"))
    held_until = models.DateTimeField(null=True, blank=True, verbose_name=_("held until"))

    class Meta:
        verbose_name = _("coupon")
        verbose_name_plural = _("coupons")
        indexes = [
            models.Index(fields=["customer", "status"]),
            models.Index(fields=["status", "held_until"]),
            models.Index(fields=["campaign", "issued_at"], name="coupon_campaign_issued"),  # KPI
        ]

    def __str__(self) -> str:
        return f"{self.code[:4]}… ({self.status})"


class CouponRedemption(models.Model):
    coupon = models.OneToOneField(
        Coupon, on_delete=models.PROTECT, related_name="redemption", verbose_name=_("coupon")
    )
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="redemptions", verbose_name=_("campaign")
    )
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="+", verbose_name=_("customer")
    )
    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, verbose_name=_("channel")
    )
    store = models.ForeignKey(
        Location,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("store"),
    )
    till = models.CharField(max_length=40, blank=True, verbose_name=_("till"))
    order_ref = models.CharField(max_length=120, blank=True, verbose_name=_("order ref"))
    basket_total = models.DecimalField(
        max_digits=12, decimal_places=2, verbose_name=_("basket total")
    )
    discount = models.DecimalField(max_digits=12, decimal_places=2, verbose_name=_("discount"))
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    idempotency_key = models.CharField(
        max_length=255, unique=True, verbose_name=_("idempotency key")
    )
    redeemed_at = models.DateTimeField(verbose_name=_("redeemed at"))

    class Meta:
        verbose_name = _("coupon redemption")
        verbose_name_plural = _("coupon redemptions")

    def __str__(self) -> str:
        return f"Redemption {self.pk} ({self.channel})"

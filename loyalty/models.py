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

from common.channels import SalesChannel
from stores.models import Location


class ProgramSettings(models.Model):
    """The programme's parameters (one row, edited in the admin)."""

    currency = models.CharField(max_length=3, default="EUR")
    points_per_unit = models.DecimalField(
        max_digits=8, decimal_places=3, default=1, help_text="Points per whole currency unit."
    )
    min_order_value = models.DecimalField(
        max_digits=12, decimal_places=2, default=0, help_text="Below it a purchase earns nothing."
    )
    pending_days = models.PositiveIntegerField(
        default=30, help_text="Return window: earned points become spendable after it."
    )
    validity_days = models.PositiveIntegerField(default=365, help_text="Lots expire after it.")
    tier_period_days = models.PositiveIntegerField(
        default=365, help_text="Rolling period over which earned points qualify for a tier."
    )
    hold_ttl_minutes = models.PositiveIntegerField(
        default=30, help_text="An uncaptured points hold is released after it."
    )

    class Meta:
        verbose_name = "programme settings"
        verbose_name_plural = "programme settings"

    def __str__(self) -> str:
        return f"{self.points_per_unit} pt / {self.currency}"


class Tier(models.Model):
    code = models.SlugField(max_length=20, unique=True)
    name = models.CharField(max_length=60)
    threshold_points = models.PositiveIntegerField(
        help_text="Points earned over the rolling period needed to qualify."
    )
    multiplier = models.DecimalField(max_digits=5, decimal_places=2, default=1)

    class Meta:
        ordering = ["threshold_points"]

    def __str__(self) -> str:
        return self.name


class RuleScope(models.TextChoices):
    ALL = "all", "Every purchase (campaign bonus for a period)"
    TIER = "tier", "Tier (value: tier code)"
    CATEGORY = "category", "Product category (value: category)"
    SKU = "sku", "SKU (value: SKU code)"
    CHANNEL = "channel", "Sales channel (value: channel)"
    EXCLUDED_SKU = "excluded_sku", "Excluded SKU (value: SKU code): earns nothing"


class EarningRule(models.Model):
    """A multiplier (and/or a flat bonus per purchase) applying to lines that match the scope.

    Multipliers of different scopes multiply; within one scope the highest matching one applies.
    """

    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=16, choices=RuleScope.choices)
    value = models.CharField(max_length=80, blank=True)
    multiplier = models.DecimalField(max_digits=6, decimal_places=2, default=1)
    bonus_points = models.PositiveIntegerField(
        default=0, help_text="Flat points added once per purchase with a matching line."
    )
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(multiplier__gte=0), name="rule_multiplier_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope}={self.value} ×{self.multiplier})"


class LoyaltyAccount(models.Model):
    customer = models.OneToOneField(
        "customers.Customer", on_delete=models.PROTECT, related_name="loyalty_account"
    )
    card_number = models.CharField(max_length=32, unique=True)
    tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.PROTECT)
    tier_review_at = models.DateTimeField(
        null=True, blank=True, help_text="End of the period the current tier is held for."
    )
    points_remaining = models.BigIntegerField(
        default=0, help_text="Cache of SUM(lot.remaining): spendable + pending + not yet expired."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(points_remaining__gte=0), name="account_points_remaining_gte_0"
            )
        ]

    def __str__(self) -> str:
        return f"Card {self.card_number}"


class LotKind(models.TextChoices):
    EARN = "earn", "Earned on a purchase"
    REFUND = "refund", "Points spent on a refunded order, given back"
    MERGE_IN = "merge_in", "Moved from a merged customer record"
    ADJUSTMENT = "adjustment", "Goodwill / correction"


class SourceType(models.TextChoices):
    ORDER = "order", "Online order"
    STORE_RECEIPT = "store_receipt", "Store receipt (POS)"
    SPEND = "spend", "Points spend (refund of spent points)"
    LOT = "lot", "Another lot (merge)"
    MANUAL = "manual", "Manual"


class PointsOperation(models.Model):
    """One call of a points service: its idempotency key and a hash of its arguments."""

    idempotency_key = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=24)
    request_hash = models.CharField(max_length=64)
    channel = models.CharField(max_length=20, choices=SalesChannel.choices, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.idempotency_key}"


class PointsLot(models.Model):
    account = models.ForeignKey(LoyaltyAccount, on_delete=models.PROTECT, related_name="lots")
    kind = models.CharField(max_length=12, choices=LotKind.choices)
    source_type = models.CharField(max_length=16, choices=SourceType.choices)
    source_ref = models.CharField(max_length=120)
    amount = models.PositiveIntegerField()
    remaining = models.PositiveIntegerField()
    earned_at = models.DateTimeField()
    available_at = models.DateTimeField(help_text="Pending until then (return window).")
    expires_at = models.DateTimeField()
    expired_at = models.DateTimeField(null=True, blank=True)
    origin_lot = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    channel = models.CharField(max_length=20, choices=SalesChannel.choices, blank=True)
    store = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    operation = models.ForeignKey(PointsOperation, on_delete=models.PROTECT, related_name="lots")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
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
        ]

    def __str__(self) -> str:
        return f"Lot {self.pk}: {self.remaining}/{self.amount} ({self.kind} {self.source_ref})"


class MovementKind(models.TextChoices):
    CREDIT = "credit", "Lot created"
    HOLD = "hold", "Held for a spend"
    RELEASE = "release", "Hold released"
    EXPIRE = "expire", "Expired"
    REVERSE = "reverse", "Reversed (goods returned)"
    MERGE_OUT = "merge_out", "Moved to another account (merge)"
    FORFEIT = "forfeit", "Forfeited (the member's data was erased)"


class PointsMovement(models.Model):
    """Append-only: one change of one lot's `remaining`. A captured hold needs none (the points
    left the lot when they were held)."""

    operation = models.ForeignKey(
        PointsOperation, on_delete=models.PROTECT, related_name="movements"
    )
    account = models.ForeignKey(LoyaltyAccount, on_delete=models.PROTECT, related_name="+")
    lot = models.ForeignKey(PointsLot, on_delete=models.PROTECT, related_name="movements")
    kind = models.CharField(max_length=12, choices=MovementKind.choices)
    delta = models.IntegerField()
    spend = models.ForeignKey(
        "PointsSpend", null=True, blank=True, on_delete=models.PROTECT, related_name="movements"
    )
    occurred_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["account", "-occurred_at", "-id"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.delta:+d} on lot {self.lot_id}"


class SpendStatus(models.TextChoices):
    HELD = "held", "Held"
    CAPTURED = "captured", "Captured"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired (released)"


class SpendPurpose(models.TextChoices):
    TENDER = "tender", "Tender on an order or a till ticket"
    REWARD = "reward", "Reward from the catalogue"


class PointsSpend(models.Model):
    """Points taken from lots (soonest to expire first) for a tender or a reward.

    held → captured (all or part; the rest goes back to the lots) or released / expired."""

    account = models.ForeignKey(LoyaltyAccount, on_delete=models.PROTECT, related_name="spends")
    purpose = models.CharField(max_length=10, choices=SpendPurpose.choices)
    reference = models.CharField(max_length=120, help_text="Order, till ticket or reward.")
    points = models.PositiveIntegerField()
    captured_points = models.PositiveIntegerField(default=0)
    refunded_points = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=SpendStatus.choices, default="held")
    channel = models.CharField(max_length=20, choices=SalesChannel.choices)
    store = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    operation = models.OneToOneField(
        PointsOperation, on_delete=models.PROTECT, related_name="spend"
    )

    class Meta:
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
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return f"Spend {self.pk}: {self.points} pts ({self.status})"


class EarnLine(models.Model):
    """How many points each purchased line earned (for pro rata reversal on returns)."""

    lot = models.ForeignKey(PointsLot, on_delete=models.PROTECT, related_name="lines")
    line_ref = models.CharField(max_length=60)
    sku = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField()
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    points = models.PositiveIntegerField()
    quantity_returned = models.PositiveIntegerField(default=0)

    class Meta:
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
        PointsOperation, on_delete=models.PROTECT, related_name="reversal"
    )
    lot = models.ForeignKey(PointsLot, on_delete=models.PROTECT, related_name="reversals")
    return_ref = models.CharField(max_length=120)
    points_due = models.PositiveIntegerField()
    points_taken = models.PositiveIntegerField()
    shortfall = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Reversal {self.return_ref}: {self.points_taken}/{self.points_due}"


class TierChange(models.Model):
    account = models.ForeignKey(LoyaltyAccount, on_delete=models.PROTECT, related_name="tiers")
    from_tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    qualifying_points = models.IntegerField()
    reason = models.CharField(max_length=20)  # upgrade / review
    occurred_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.from_tier} → {self.to_tier}"


class Reward(models.Model):
    """An item of the rewards catalogue, bought with points."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    points_cost = models.PositiveIntegerField()
    is_active = models.BooleanField(default=True)
    channels = models.JSONField(
        default=list, blank=True, help_text="Sales channels where it can be bought (empty: all)."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(points_cost__gt=0), name="reward_cost_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.points_cost} pts)"


# ---- personal offers -----------------------------------------------------------------------


class DiscountType(models.TextChoices):
    PERCENT = "percent", "Percentage"
    AMOUNT = "amount", "Fixed amount"


class TargetKind(models.TextChoices):
    LIST = "list", "A list of customers"
    SEGMENT = "segment", "A segment"


class IssueChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "App push"
    RECEIPT = "receipt", "Printed on a receipt"


class Campaign(models.Model):
    name = models.CharField(max_length=120)
    discount_type = models.CharField(max_length=8, choices=DiscountType.choices)
    discount_value = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    min_basket = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    eligible_skus = models.JSONField(default=list, blank=True, help_text="Empty: every SKU.")
    eligible_categories = models.JSONField(default=list, blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    channels = models.JSONField(
        default=list, help_text='Sales channels where the code is usable, e.g. ["web", "store"].'
    )
    per_customer_limit = models.PositiveIntegerField(
        default=1, help_text="Codes (each single-use) a customer may receive over all issues."
    )
    issue_channel = models.CharField(max_length=8, choices=IssueChannel.choices)
    target_kind = models.CharField(max_length=8, choices=TargetKind.choices)
    target_customers = models.ManyToManyField(
        "customers.Customer", blank=True, related_name="+", help_text="For a list target."
    )
    segment_tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    segment_preferred_store = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    segment_inactive_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Last purchase older than N days."
    )
    segment_marketing_consent = models.BooleanField(default=True)
    o2o_days = models.PositiveIntegerField(
        default=30, help_text="Window after issue for the store-visit (O2O) count."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(discount_value__gt=0), name="campaign_value_gt_0"),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="campaign_period"),
        ]

    def __str__(self) -> str:
        return self.name


class CouponStatus(models.TextChoices):
    ISSUED = "issued", "Issued"
    HELD = "held", "Held on a cart"
    REDEEMED = "redeemed", "Redeemed"


class Coupon(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="coupons")
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=24, unique=True)
    issue_channel = models.CharField(max_length=8, choices=IssueChannel.choices)
    issued_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=CouponStatus.choices, default="issued")
    hold_ref = models.CharField(max_length=120, blank=True)
    hold_channel = models.CharField(max_length=20, blank=True)
    held_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer", "status"]),
            models.Index(fields=["status", "held_until"]),
        ]

    def __str__(self) -> str:
        return f"{self.code[:4]}… ({self.status})"


class CouponRedemption(models.Model):
    coupon = models.OneToOneField(Coupon, on_delete=models.PROTECT, related_name="redemption")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="redemptions")
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=20, choices=SalesChannel.choices)
    store = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    till = models.CharField(max_length=40, blank=True)
    order_ref = models.CharField(max_length=120, blank=True)
    basket_total = models.DecimalField(max_digits=12, decimal_places=2)
    discount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=255, unique=True)
    redeemed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Redemption {self.pk} ({self.channel})"

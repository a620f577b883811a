"""Stored value (gift cards, store credit wallets), their ledgers and holds; provider tenders.

Ledger discipline (the same as the stock ledger, see docs/payments.md):
- `balance` on an account is a cache of SUM(entries.amount); `held` is a cache of the amounts of
  its OPEN holds. Only `payments.services.stored_value` writes them, under the account's row lock.
- Entries are never updated or deleted; a correction is a compensating entry.
- The database backs the rules up: CHECK (0 <= held <= balance), unique idempotency keys.
"""

import uuid

from django.db import models
from django.db.models import F, Q

from common.channels import SalesChannel

MONEY = {"max_digits": 12, "decimal_places": 2}


class GiftCardStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    BLOCKED = "blocked", "Blocked"


class GiftCardSource(models.TextChoices):
    SOLD = "sold", "Sold"
    GOODWILL = "goodwill", "Goodwill gesture"
    REFUND = "refund", "Refund issued as a gift card"


class HoldStatus(models.TextChoices):
    OPEN = "open", "Open"
    CAPTURED = "captured", "Captured"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


class EntryKind(models.TextChoices):
    ISSUE = "issue", "Issued (initial balance)"
    CAPTURE = "capture", "Spent (hold captured)"
    REFUND = "refund", "Refund of an earlier spend"
    CREDIT = "credit", "Credit (refund issued as store credit)"
    GOODWILL = "goodwill", "Goodwill"
    ADJUSTMENT = "adjustment", "Manual adjustment"
    MERGE_IN = "merge_in", "Moved in by a customer merge"
    MERGE_OUT = "merge_out", "Moved out by a customer merge"


class BalanceAccount(models.Model):
    """What a gift card and a wallet have in common: a cached balance and the part of it held."""

    currency = models.CharField(max_length=3)
    balance = models.DecimalField(
        default=0, help_text="Cache of SUM(entries); written by services only.", **MONEY
    )
    held = models.DecimalField(
        default=0, help_text="Cache of the open holds; written by services only.", **MONEY
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    @property
    def available(self):
        return self.balance - self.held


class GiftCard(BalanceAccount):
    """A bearer instrument: whoever holds the code can spend it.

    The code is never stored: only its SHA-256 (looked up by hashing what is typed) and its last
    four characters (to recognise it in the admin). It is shown once, when the card is issued.
    """

    code_hash = models.CharField(max_length=64, unique=True, editable=False)
    code_last4 = models.CharField(max_length=4, editable=False)
    initial_balance = models.DecimalField(**MONEY)
    status = models.CharField(
        max_length=10, choices=GiftCardStatus.choices, default=GiftCardStatus.ACTIVE
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=GiftCardSource.choices)
    issued_channel = models.CharField(max_length=20, choices=SalesChannel.choices)
    issued_by = models.CharField(max_length=150, blank=True)
    reference = models.CharField(max_length=120, blank=True, help_text="Sale or order number.")
    block_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(held__gte=0), name="giftcard_held_gte_0"),
            models.CheckConstraint(condition=Q(held__lte=F("balance")), name="giftcard_held_lte"),
            models.CheckConstraint(condition=Q(initial_balance__gt=0), name="giftcard_initial_gt0"),
        ]

    def __str__(self) -> str:
        return f"Gift card …{self.code_last4} ({self.balance} {self.currency})"


class StoreCreditWallet(BalanceAccount):
    """Store credit of one RCU customer in one currency, spendable in every channel."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="store_credit_wallets"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "currency"], name="uniq_wallet_currency"),
            models.CheckConstraint(condition=Q(held__gte=0), name="wallet_held_gte_0"),
            models.CheckConstraint(condition=Q(held__lte=F("balance")), name="wallet_held_lte"),
        ]

    def __str__(self) -> str:
        return f"Store credit of {self.customer_id} ({self.balance} {self.currency})"


class LedgerEntry(models.Model):
    """One append-only change of a balance. Never updated, never deleted."""

    amount = models.DecimalField(help_text="Signed: + credit, − debit.", **MONEY)
    balance_after = models.DecimalField(**MONEY)
    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    idempotency_key = models.CharField(max_length=255, unique=True)
    channel = models.CharField(max_length=20, choices=SalesChannel.choices)
    actor = models.CharField(max_length=150, blank=True)
    reference = models.CharField(max_length=120, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"


class BalanceHold(models.Model):
    """Part of a balance set aside for a cart, an order or a till ticket: captured (spent, in
    full or in part, the rest released), released, or expired by the periodic task."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    amount = models.DecimalField(**MONEY)
    captured_amount = models.DecimalField(default=0, **MONEY)
    refunded_amount = models.DecimalField(default=0, **MONEY)
    status = models.CharField(max_length=10, choices=HoldStatus.choices, default=HoldStatus.OPEN)
    expires_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255, unique=True)
    channel = models.CharField(max_length=20, choices=SalesChannel.choices)
    actor = models.CharField(max_length=150, blank=True)
    reference = models.CharField(max_length=120, blank=True, help_text="Order or till ticket.")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"Hold {self.amount} ({self.status}) {self.reference}"


def _hold_constraints(prefix: str) -> list:
    return [
        models.CheckConstraint(condition=Q(amount__gt=0), name=f"{prefix}_amount_gt_0"),
        models.CheckConstraint(
            condition=Q(captured_amount__gte=0, captured_amount__lte=F("amount")),
            name=f"{prefix}_captured_range",
        ),
        models.CheckConstraint(
            condition=Q(refunded_amount__gte=0, refunded_amount__lte=F("captured_amount")),
            name=f"{prefix}_refunded_range",
        ),
    ]


class GiftCardHold(BalanceHold):
    account = models.ForeignKey(GiftCard, on_delete=models.PROTECT, related_name="holds")

    class Meta:
        constraints = _hold_constraints("gchold")
        indexes = [models.Index(fields=["status", "expires_at"])]


class WalletHold(BalanceHold):
    account = models.ForeignKey(StoreCreditWallet, on_delete=models.PROTECT, related_name="holds")

    class Meta:
        constraints = _hold_constraints("wallethold")
        indexes = [models.Index(fields=["status", "expires_at"])]


class GiftCardEntry(LedgerEntry):
    account = models.ForeignKey(GiftCard, on_delete=models.PROTECT, related_name="entries")
    hold = models.ForeignKey(
        GiftCardHold, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )

    class Meta:
        verbose_name_plural = "gift card entries"
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="gcentry_amount_ne_0")]
        indexes = [models.Index(fields=["account", "-created_at"])]


class WalletEntry(LedgerEntry):
    account = models.ForeignKey(StoreCreditWallet, on_delete=models.PROTECT, related_name="entries")
    hold = models.ForeignKey(
        WalletHold, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )

    class Meta:
        verbose_name_plural = "wallet entries"
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="walletentry_amount_ne_0")
        ]
        indexes = [models.Index(fields=["account", "-created_at"])]


# ---- provider payments -------------------------------------------------------------------------


class TenderKind(models.TextChoices):
    CARD = "card", "Card through the payment provider"
    TILL = "till", "Cash or card at the store till (recorded by the POS)"
    GIFT_CARD = "gift_card", "Gift card"
    STORE_CREDIT = "store_credit", "Store credit"
    LOYALTY_POINTS = "loyalty_points", "Loyalty points"


class TenderStatus(models.TextChoices):
    PENDING = "pending", "Authorisation requested"
    AUTHORISED = "authorised", "Authorised"
    CAPTURED = "captured", "Captured (in full or in part)"
    VOIDED = "voided", "Voided / released"
    FAILED = "failed", "Declined or failed"
    EXPIRED = "expired", "Authorisation expired"


class OrderPayment(models.Model):
    """What payments knows of one order: its total and how much of it live tenders cover.

    `covered` = amounts of pending/authorised tenders + captured amounts of captured ones. A
    tender is only added once this row is locked and `covered + x <= total` checked, so two
    channels adding tenders at once can never cover more than the total.
    """

    order_reference = models.CharField(max_length=20, unique=True)
    currency = models.CharField(max_length=3)
    total = models.DecimalField(**MONEY)
    covered = models.DecimalField(default=0, **MONEY)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(covered__gte=0), name="orderpayment_covered_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.order_reference}: {self.covered}/{self.total} {self.currency}"


class Tender(models.Model):
    """One way an order is paid. Amounts are in the order's currency.

    `order_reference` is the public reference of orders.Order (a foreign key follows once the
    orders app has its migration; see docs/payments.md).
    """

    order_reference = models.CharField(max_length=20, db_index=True)
    kind = models.CharField(max_length=20, choices=TenderKind.choices)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(help_text="What this tender was asked to cover.", **MONEY)
    amount_authorised = models.DecimalField(default=0, **MONEY)
    amount_captured = models.DecimalField(default=0, **MONEY)
    amount_refunded = models.DecimalField(default=0, **MONEY)
    status = models.CharField(
        max_length=12, choices=TenderStatus.choices, default=TenderStatus.PENDING
    )
    provider = models.CharField(max_length=30, blank=True)
    provider_reference = models.CharField(max_length=100, blank=True)
    authorisation_expires_at = models.DateTimeField(null=True, blank=True)
    capture_on_authorise = models.BooleanField(
        default=False, help_text="Pay now: captured as soon as it is authorised."
    )
    needed_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The pickup deadline: an authorisation lapsing earlier is renewed or released "
        "(then the till takes the payment at pickup).",
    )
    failure_code = models.CharField(max_length=40, blank=True)
    gift_card_hold = models.OneToOneField(
        GiftCardHold, null=True, blank=True, on_delete=models.PROTECT, related_name="tender"
    )
    wallet_hold = models.OneToOneField(
        WalletHold, null=True, blank=True, on_delete=models.PROTECT, related_name="tender"
    )
    loyalty_spend = models.OneToOneField(
        "loyalty.PointsSpend",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tender",
    )
    idempotency_key = models.CharField(max_length=255, unique=True)
    channel = models.CharField(max_length=20, choices=SalesChannel.choices)
    actor = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="tender_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(amount_authorised__gte=0, amount_authorised__lte=F("amount")),
                name="tender_authorised_range",
            ),
            models.CheckConstraint(
                condition=Q(amount_captured__gte=0, amount_captured__lte=F("amount")),
                name="tender_captured_range",
            ),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0, amount_refunded__lte=F("amount_captured")),
                name="tender_refunded_range",
            ),
            models.UniqueConstraint(
                fields=["provider", "provider_reference"],
                condition=~Q(provider_reference=""),
                name="uniq_tender_provider_reference",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency} for {self.order_reference}"


class TenderEvent(models.Model):
    """Append-only log of what happened to a tender: what we asked, what the provider said."""

    tender = models.ForeignKey(Tender, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=40)
    amount = models.DecimalField(null=True, blank=True, **MONEY)
    data = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    occurred_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["occurred_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} ({self.tender_id})"


class ProviderEvent(models.Model):
    """A webhook received from a payment provider, stored under its event id before anything
    else: a replay hits the unique constraint and has no second effect."""

    provider = models.CharField(max_length=30)
    event_id = models.CharField(max_length=100)
    event_type = models.CharField(max_length=60)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=255, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="uniq_provider_event")
        ]
        indexes = [models.Index(fields=["processed_at"])]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id} {self.event_type}"


class SandboxIntentStatus(models.TextChoices):
    AUTHORISED = "authorised", "Authorised"
    DECLINED = "declined", "Declined"
    CAPTURED = "captured", "Captured"
    VOIDED = "voided", "Voided"


class SandboxIntent(models.Model):
    """The sandbox processor's own record of a payment (what Stripe or Adyen keep on their side).

    Only `payments.providers.sandbox` reads or writes it; our code sees it through webhooks.
    """

    reference = models.CharField(max_length=40, unique=True)
    request_key = models.CharField(max_length=255, unique=True, help_text="Idempotency key.")
    merchant_reference = models.CharField(max_length=255, db_index=True)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(**MONEY)
    amount_captured = models.DecimalField(default=0, **MONEY)
    amount_refunded = models.DecimalField(default=0, **MONEY)
    status = models.CharField(max_length=12, choices=SandboxIntentStatus.choices)
    token = models.CharField(max_length=40)
    decline_code = models.CharField(max_length=40, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.reference

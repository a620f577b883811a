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
from django.utils.translation import gettext_lazy as _

from common.channels import SalesChannel

MONEY = {"max_digits": 12, "decimal_places": 2}


class GiftCardStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    BLOCKED = "blocked", _("Blocked")


class GiftCardSource(models.TextChoices):
    SOLD = "sold", _("Sold")
    GOODWILL = "goodwill", _("Goodwill gesture")
    REFUND = "refund", _("Refund issued as a gift card")


class HoldStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CAPTURED = "captured", _("Captured")
    RELEASED = "released", _("Released")
    EXPIRED = "expired", _("Expired")


class EntryKind(models.TextChoices):
    ISSUE = "issue", _("Issued (initial balance)")
    CAPTURE = "capture", _("Spent (hold captured)")
    REFUND = "refund", _("Refund of an earlier spend")
    CREDIT = "credit", _("Credit (refund issued as store credit)")
    GOODWILL = "goodwill", _("Goodwill")
    ADJUSTMENT = "adjustment", _("Manual adjustment")
    MERGE_IN = "merge_in", _("Moved in by a customer merge")
    MERGE_OUT = "merge_out", _("Moved out by a customer merge")


class BalanceAccount(models.Model):
    """What a gift card and a wallet have in common: a cached balance and the part of it held."""

    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    balance = models.DecimalField(
        default=0,
        help_text=_("Cache of SUM(entries); written by services only."),
        **MONEY,
        verbose_name=_("balance"),
    )
    held = models.DecimalField(
        default=0,
        help_text=_("Cache of the open holds; written by services only."),
        **MONEY,
        verbose_name=_("held"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

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

    code_hash = models.CharField(
        max_length=64, unique=True, editable=False, verbose_name=_("code hash")
    )
    code_last4 = models.CharField(max_length=4, editable=False, verbose_name=_("code last4"))
    initial_balance = models.DecimalField(**MONEY, verbose_name=_("initial balance"))
    status = models.CharField(
        max_length=10,
        choices=GiftCardStatus.choices,
        default=GiftCardStatus.ACTIVE,
        verbose_name=_("status"),
    )
    expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expires at"))
    source = models.CharField(
        max_length=10, choices=GiftCardSource.choices, verbose_name=_("source")
    )
    issued_channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, verbose_name=_("issued channel")
    )
    issued_by = models.CharField(max_length=150, blank=True, verbose_name=_("issued by"))
    reference = models.CharField(
        max_length=120,
        blank=True,
        help_text=_("Sale or order number."),
        verbose_name=_("reference"),
    )
    block_reason = models.CharField(max_length=255, blank=True, verbose_name=_("block reason"))

    class Meta:
        verbose_name = _("gift card")
        verbose_name_plural = _("gift cards")
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
        "customers.Customer",
        on_delete=models.PROTECT,
        related_name="store_credit_wallets",
        verbose_name=_("customer"),
    )

    class Meta:
        verbose_name = _("store credit wallet")
        verbose_name_plural = _("store credit wallets")
        constraints = [
            models.UniqueConstraint(fields=["customer", "currency"], name="uniq_wallet_currency"),
            models.CheckConstraint(condition=Q(held__gte=0), name="wallet_held_gte_0"),
            models.CheckConstraint(condition=Q(held__lte=F("balance")), name="wallet_held_lte"),
        ]

    def __str__(self) -> str:
        return f"Store credit of {self.customer_id} ({self.balance} {self.currency})"


class LedgerEntry(models.Model):
    """One append-only change of a balance. Never updated, never deleted."""

    amount = models.DecimalField(
        help_text=_("Signed: + credit, − debit."), **MONEY, verbose_name=_("amount")
    )
    balance_after = models.DecimalField(**MONEY, verbose_name=_("balance after"))
    kind = models.CharField(max_length=12, choices=EntryKind.choices, verbose_name=_("kind"))
    idempotency_key = models.CharField(
        max_length=255, unique=True, verbose_name=_("idempotency key")
    )
    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, verbose_name=_("channel")
    )
    actor = models.CharField(max_length=150, blank=True, verbose_name=_("actor"))
    reference = models.CharField(max_length=120, blank=True, verbose_name=_("reference"))
    reason = models.CharField(max_length=255, blank=True, verbose_name=_("reason"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"


class BalanceHold(models.Model):
    """Part of a balance set aside for a cart, an order or a till ticket: captured (spent, in
    full or in part, the rest released), released, or expired by the periodic task."""

    public_id = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False, verbose_name=_("public id")
    )
    amount = models.DecimalField(**MONEY, verbose_name=_("amount"))
    captured_amount = models.DecimalField(default=0, **MONEY, verbose_name=_("captured amount"))
    refunded_amount = models.DecimalField(default=0, **MONEY, verbose_name=_("refunded amount"))
    status = models.CharField(
        max_length=10, choices=HoldStatus.choices, default=HoldStatus.OPEN, verbose_name=_("status")
    )
    expires_at = models.DateTimeField(verbose_name=_("expires at"))
    idempotency_key = models.CharField(
        max_length=255, unique=True, verbose_name=_("idempotency key")
    )
    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, verbose_name=_("channel")
    )
    actor = models.CharField(max_length=150, blank=True, verbose_name=_("actor"))
    reference = models.CharField(
        max_length=120,
        blank=True,
        help_text=_("Order or till ticket."),
        verbose_name=_("reference"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("closed at"))

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
    account = models.ForeignKey(
        GiftCard, on_delete=models.PROTECT, related_name="holds", verbose_name=_("account")
    )

    class Meta:
        verbose_name = _("gift card hold")
        verbose_name_plural = _("gift card holds")
        constraints = _hold_constraints("gchold")
        indexes = [models.Index(fields=["status", "expires_at"])]


class WalletHold(BalanceHold):
    account = models.ForeignKey(
        StoreCreditWallet, on_delete=models.PROTECT, related_name="holds", verbose_name=_("account")
    )

    class Meta:
        verbose_name = _("wallet hold")
        verbose_name_plural = _("wallet holds")
        constraints = _hold_constraints("wallethold")
        indexes = [models.Index(fields=["status", "expires_at"])]


class GiftCardEntry(LedgerEntry):
    account = models.ForeignKey(
        GiftCard, on_delete=models.PROTECT, related_name="entries", verbose_name=_("account")
    )
    hold = models.ForeignKey(
        GiftCardHold,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="entries",
        verbose_name=_("hold"),
    )

    class Meta:
        verbose_name = _("gift card entry")
        verbose_name_plural = _("gift card entries")
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="gcentry_amount_ne_0")]
        indexes = [models.Index(fields=["account", "-created_at"])]


class WalletEntry(LedgerEntry):
    account = models.ForeignKey(
        StoreCreditWallet,
        on_delete=models.PROTECT,
        related_name="entries",
        verbose_name=_("account"),
    )
    hold = models.ForeignKey(
        WalletHold,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="entries",
        verbose_name=_("hold"),
    )

    class Meta:
        verbose_name = _("wallet entry")
        verbose_name_plural = _("wallet entries")
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="walletentry_amount_ne_0")
        ]
        indexes = [models.Index(fields=["account", "-created_at"])]


# ---- provider payments -------------------------------------------------------------------------


class TenderKind(models.TextChoices):
    CARD = "card", _("Card through the payment provider")
    TILL = "till", _("Cash or card at the store till (recorded by the POS)")
    GIFT_CARD = "gift_card", _("Gift card")
    STORE_CREDIT = "store_credit", _("Store credit")
    LOYALTY_POINTS = "loyalty_points", _("Loyalty points")


class TenderStatus(models.TextChoices):
    PENDING = "pending", _("Authorisation requested")
    AUTHORISED = "authorised", _("Authorised")
    CAPTURED = "captured", _("Captured (in full or in part)")
    VOIDED = "voided", _("Voided / released")
    FAILED = "failed", _("Declined or failed")
    EXPIRED = "expired", _("Authorisation expired")


class OrderPayment(models.Model):
    """What payments knows of one order: its total and how much of it live tenders cover.

    `covered` = amounts of pending/authorised tenders + captured amounts of captured ones. A
    tender is only added once this row is locked and `covered + x <= total` checked, so two
    channels adding tenders at once can never cover more than the total.
    """

    order_reference = models.CharField(
        max_length=20, unique=True, verbose_name=_("order reference")
    )
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    total = models.DecimalField(**MONEY, verbose_name=_("total"))
    covered = models.DecimalField(default=0, **MONEY, verbose_name=_("covered"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("order payment")
        verbose_name_plural = _("order payments")
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

    order_reference = models.CharField(
        max_length=20, db_index=True, verbose_name=_("order reference")
    )
    kind = models.CharField(max_length=20, choices=TenderKind.choices, verbose_name=_("kind"))
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    amount = models.DecimalField(
        help_text=_("What this tender was asked to cover."), **MONEY, verbose_name=_("amount")
    )
    amount_authorised = models.DecimalField(default=0, **MONEY, verbose_name=_("amount authorised"))
    amount_captured = models.DecimalField(default=0, **MONEY, verbose_name=_("amount captured"))
    amount_refunded = models.DecimalField(default=0, **MONEY, verbose_name=_("amount refunded"))
    status = models.CharField(
        max_length=12,
        choices=TenderStatus.choices,
        default=TenderStatus.PENDING,
        verbose_name=_("status"),
    )
    provider = models.CharField(max_length=30, blank=True, verbose_name=_("provider"))
    provider_reference = models.CharField(
        max_length=100, blank=True, verbose_name=_("provider reference")
    )
    authorisation_expires_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("authorisation expires at")
    )
    capture_on_authorise = models.BooleanField(
        default=False,
        help_text=_("Pay now: captured as soon as it is authorised."),
        verbose_name=_("capture on authorise"),
    )
    needed_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_(
            "The pickup deadline: an authorisation lapsing earlier is renewed or released "
            "(then the till takes the payment at pickup)."
        ),
        verbose_name=_("needed until"),
    )
    failure_code = models.CharField(max_length=40, blank=True, verbose_name=_("failure code"))
    gift_card_hold = models.OneToOneField(
        GiftCardHold,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tender",
        verbose_name=_("gift card hold"),
    )
    wallet_hold = models.OneToOneField(
        WalletHold,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tender",
        verbose_name=_("wallet hold"),
    )
    loyalty_spend = models.OneToOneField(
        "loyalty.PointsSpend",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tender",
        verbose_name=_("loyalty spend"),
    )
    idempotency_key = models.CharField(
        max_length=255, unique=True, verbose_name=_("idempotency key")
    )
    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, verbose_name=_("channel")
    )
    actor = models.CharField(max_length=150, blank=True, verbose_name=_("actor"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("tender")
        verbose_name_plural = _("tenders")
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
        indexes = [models.Index(fields=["created_at"], name="tender_created_at")]  # tender mix

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency} for {self.order_reference}"


class TenderEvent(models.Model):
    """Append-only log of what happened to a tender: what we asked, what the provider said."""

    tender = models.ForeignKey(
        Tender, on_delete=models.PROTECT, related_name="events", verbose_name=_("tender")
    )
    kind = models.CharField(max_length=40, verbose_name=_("kind"))
    amount = models.DecimalField(null=True, blank=True, **MONEY, verbose_name=_("amount"))
    data = models.JSONField(default=dict, blank=True, verbose_name=_("data"))
    actor = models.CharField(max_length=150, blank=True, verbose_name=_("actor"))
    occurred_at = models.DateTimeField(auto_now_add=True, verbose_name=_("occurred at"))

    class Meta:
        verbose_name = _("tender event")
        verbose_name_plural = _("tender events")
        ordering = ["occurred_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} ({self.tender_id})"


class ProviderEvent(models.Model):
    """A webhook received from a payment provider, stored under its event id before anything
    else: a replay hits the unique constraint and has no second effect."""

    provider = models.CharField(max_length=30, verbose_name=_("provider"))
    event_id = models.CharField(max_length=100, verbose_name=_("event id"))
    event_type = models.CharField(max_length=60, verbose_name=_("event type"))
    payload = models.JSONField(verbose_name=_("payload"))
    received_at = models.DateTimeField(auto_now_add=True, verbose_name=_("received at"))
    processed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("processed at"))
    outcome = models.CharField(max_length=255, blank=True, verbose_name=_("outcome"))

    class Meta:
        verbose_name = _("provider event")
        verbose_name_plural = _("provider events")
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="uniq_provider_event")
        ]
        indexes = [models.Index(fields=["processed_at"])]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id} {self.event_type}"


class SandboxIntentStatus(models.TextChoices):
    AUTHORISED = "authorised", _("Authorised")
    DECLINED = "declined", _("Declined")
    CAPTURED = "captured", _("Captured")
    VOIDED = "voided", _("Voided")


class SandboxIntent(models.Model):
    """The sandbox processor's own record of a payment (what Stripe or Adyen keep on their side).

    Only `payments.providers.sandbox` reads or writes it; our code sees it through webhooks.
    """

    reference = models.CharField(max_length=40, unique=True, verbose_name=_("reference"))
    request_key = models.CharField(
        max_length=255, unique=True, help_text=_("Idempotency key."), verbose_name=_("request key")
    )
    merchant_reference = models.CharField(
        max_length=255, db_index=True, verbose_name=_("merchant reference")
    )
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    amount = models.DecimalField(**MONEY, verbose_name=_("amount"))
    amount_captured = models.DecimalField(default=0, **MONEY, verbose_name=_("amount captured"))
    amount_refunded = models.DecimalField(default=0, **MONEY, verbose_name=_("amount refunded"))
    status = models.CharField(
        max_length=12, choices=SandboxIntentStatus.choices, verbose_name=_("status")
    )
    token = models.CharField(max_length=40, verbose_name=_("token"))
    decline_code = models.CharField(max_length=40, blank=True, verbose_name=_("decline code"))
    expires_at = models.DateTimeField(verbose_name=_("expires at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("sandbox intent")
        verbose_name_plural = _("sandbox intents")

    def __str__(self) -> str:
        return self.reference

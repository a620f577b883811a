"""Signed outbound webhooks, fed by the outbox (common.outbox).

A service that changes state records an OutboxEvent (common.models) in the same transaction.
After commit, a Celery task fans each event out to the subscribed endpoints as WebhookDelivery
rows and posts them, signed with HMAC-SHA256 over the timestamp and body, retrying with
exponential back-off. Every attempt is kept (DeliveryAttempt) and visible in the admin.
"""

import secrets

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.models import OutboxEvent


def generate_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    """A subscriber. It receives the events that occur from `deliver_from` on (its creation, or
    an explicit replay start), signed with its secret; while a secret rotates, the previous one
    signs too until `previous_secret_expires_at`."""

    name = models.CharField(max_length=100, unique=True, verbose_name=_("name"))
    url = models.URLField(max_length=500, verbose_name=_("url"))
    secret = models.CharField(
        max_length=100,
        default=generate_webhook_secret,
        help_text=_("Shared secret the receiver uses to check our signature."),
        verbose_name=_("secret"),
    )
    previous_secret = models.CharField(
        max_length=100, blank=True, verbose_name=_("previous secret")
    )
    previous_secret_expires_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("previous secret expires at")
    )
    topics = models.JSONField(
        default=list,
        blank=True,
        help_text=_('Topics to receive, e.g. ["stock.available_changed", "order.*"]; empty: all.'),
        verbose_name=_("topics"),
    )
    deliver_from = models.DateTimeField(
        default=timezone.now,
        help_text=_("Events that occurred before this are not delivered to this endpoint."),
        verbose_name=_("deliver from"),
    )
    is_active = models.BooleanField(
        default=True,
        help_text=_(
            "Unticked: paused. Its events are kept (up to the retention) and sent on resume."
        ),
        verbose_name=_("is active"),
    )
    # The endpoint's own back-off: after a failed send nothing is tried before retry_at, so a
    # dead subscriber costs one attempt per period, not one per waiting delivery.
    failures_in_a_row = models.PositiveIntegerField(default=0, verbose_name=_("failures in a row"))
    retry_at = models.DateTimeField(null=True, blank=True, verbose_name=_("retry at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.name

    def wants(self, topic: str) -> bool:
        return not self.topics or any(
            topic == wanted or (wanted.endswith(".*") and topic.startswith(wanted[:-1]))
            for wanted in self.topics
        )

    def signing_secrets(self, now) -> list[str]:
        secrets_ = [self.secret]
        if self.previous_secret and (
            self.previous_secret_expires_at is None or self.previous_secret_expires_at > now
        ):
            secrets_.append(self.previous_secret)
        return secrets_


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Delivered")
    FAILED = "failed", _("Failed, will retry")
    DEAD = "dead", _("Gave up")


class WebhookDelivery(models.Model):
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("endpoint"),
    )
    event = models.ForeignKey(
        OutboxEvent, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("event")
    )
    status = models.CharField(
        max_length=10,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
        verbose_name=_("status"),
    )
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=_("attempts"))
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("next attempt at"))
    last_response_status = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name=_("last response status")
    )
    last_error = models.CharField(max_length=500, blank=True, verbose_name=_("last error"))
    delivered_at = models.DateTimeField(null=True, blank=True, verbose_name=_("delivered at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event"], name="uniq_delivery_endpoint_event"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            # A relay's claim: one endpoint's due deliveries.
            models.Index(
                fields=["endpoint", "status", "next_attempt_at"], name="delivery_endpoint_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint} ({self.status})"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(
        WebhookDelivery,
        on_delete=models.CASCADE,
        related_name="attempt_log",
        verbose_name=_("delivery"),
    )
    attempted_at = models.DateTimeField(verbose_name=_("attempted at"))
    response_status = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name=_("response status")
    )
    error = models.CharField(max_length=500, blank=True, verbose_name=_("error"))
    duration_ms = models.PositiveIntegerField(default=0, verbose_name=_("duration ms"))

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering = ["-attempted_at"]

    def __str__(self) -> str:
        return f"attempt at {self.attempted_at:%Y-%m-%d %H:%M:%S}"


# --- POS (store tills) --------------------------------------------------------------------------


class PosIntegration(models.Model):
    """One POS vendor/installation, bound to one or more stores, with its own signing secret.

    During a rotation two secrets are valid at once: set `secret` to the new one and keep the old
    one in `previous_secret` until every till uses the new one, then clear it.
    """

    slug = models.SlugField(
        max_length=50,
        unique=True,
        help_text=_("Appears in the endpoint URL."),
        verbose_name=_("slug"),
    )
    name = models.CharField(max_length=100, verbose_name=_("name"))
    vendor = models.CharField(max_length=100, blank=True, verbose_name=_("vendor"))
    stores = models.ManyToManyField(
        "stores.Location", related_name="pos_integrations", verbose_name=_("stores")
    )
    secret = models.CharField(
        max_length=100, default=generate_webhook_secret, verbose_name=_("secret")
    )
    previous_secret = models.CharField(
        max_length=100, blank=True, verbose_name=_("previous secret")
    )
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name_plural = _("POS integrations")
        verbose_name = _("POS integration")

    def __str__(self) -> str:
        return self.name

    @property
    def valid_secrets(self) -> list[str]:
        return [s for s in (self.secret, self.previous_secret) if s]


class PosTill(models.Model):
    integration = models.ForeignKey(
        PosIntegration,
        on_delete=models.CASCADE,
        related_name="tills",
        verbose_name=_("integration"),
    )
    location = models.ForeignKey(
        "stores.Location",
        on_delete=models.PROTECT,
        related_name="tills",
        verbose_name=_("location"),
    )
    code = models.CharField(max_length=40, verbose_name=_("code"))
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))

    class Meta:
        verbose_name_plural = _("POS tills")
        verbose_name = _("POS till")
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "location", "code"], name="uniq_till_per_store"
            )
        ]

    def __str__(self) -> str:
        return f"{self.location_id}/{self.code}"


class PosEventType(models.TextChoices):
    SALE = "sale", _("Sale (receipt)")
    RETURN = "return", _("Return")
    STOCK_COUNT = "stock_count", _("Stock count")
    PICKUP_HANDOVER = "pickup_handover", _("Click & collect hand-over")


class PosEventStatus(models.TextChoices):
    RECEIVED = "received", _("Received, waiting to be processed")
    PROCESSED = "processed", _("Processed")
    FAILED = "failed", _("Failed (can be replayed)")
    REJECTED = "rejected", _("Rejected at the door (nothing applied)")


class PosEvent(models.Model):
    """The inbox: every POS event as received, before and after processing."""

    integration = models.ForeignKey(
        PosIntegration,
        on_delete=models.PROTECT,
        related_name="events",
        verbose_name=_("integration"),
    )
    event_id = models.CharField(
        max_length=100,
        null=True,
        blank=True,
        help_text=_("The POS's own id; empty when the payload had none."),
        verbose_name=_("event id"),
    )
    event_type = models.CharField(max_length=20, blank=True, verbose_name=_("event type"))
    location = models.ForeignKey(
        "stores.Location",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("location"),
    )
    till = models.CharField(max_length=40, blank=True, verbose_name=_("till"))
    receipt_number = models.CharField(
        max_length=60,
        blank=True,
        help_text=_(
            "A sale's receipt number: one sale per store, till and receipt, whatever "
            "event id the till sends it under."
        ),
        verbose_name=_("receipt number"),
    )
    occurred_at = models.DateTimeField(
        null=True, blank=True, help_text=_("The till's own clock."), verbose_name=_("occurred at")
    )
    payload = models.JSONField(null=True, blank=True, verbose_name=_("payload"))
    raw_body = models.TextField(
        blank=True, help_text=_("Kept for rejected events only."), verbose_name=_("raw body")
    )
    status = models.CharField(
        max_length=10,
        choices=PosEventStatus.choices,
        default=PosEventStatus.RECEIVED,
        verbose_name=_("status"),
    )
    error = models.CharField(max_length=500, blank=True, verbose_name=_("error"))
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=_("attempts"))
    received_at = models.DateTimeField(auto_now_add=True, verbose_name=_("received at"))
    processed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("processed at"))

    class Meta:
        verbose_name_plural = _("POS events")
        verbose_name = _("POS event")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "event_id"],
                name="uniq_pos_event_id",
                condition=models.Q(event_id__isnull=False),
            ),
            # A till that retries a sale under a fresh event id is answered "duplicate".
            models.UniqueConstraint(
                fields=["integration", "location", "till", "receipt_number"],
                name="uniq_pos_sale_receipt",
                condition=models.Q(event_type="sale") & ~models.Q(receipt_number=""),
            ),
        ]
        indexes = [models.Index(fields=["status", "location", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} ({self.status})"


class StoreReceipt(models.Model):
    """A till receipt (sale or return), linked to the customer when the till identified one."""

    event = models.OneToOneField(
        PosEvent, on_delete=models.PROTECT, related_name="receipt", verbose_name=_("event")
    )
    kind = models.CharField(
        max_length=10, choices=[("sale", "Sale"), ("return", "Return")], verbose_name=_("kind")
    )
    number = models.CharField(max_length=60, verbose_name=_("number"))
    location = models.ForeignKey(
        "stores.Location", on_delete=models.PROTECT, related_name="+", verbose_name=_("location")
    )
    till = models.CharField(max_length=40, verbose_name=_("till"))
    customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="store_receipts",
        verbose_name=_("customer"),
    )
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    total = models.DecimalField(max_digits=12, decimal_places=2, verbose_name=_("total"))
    lines = models.JSONField(help_text=_("[{sku, quantity, unit_price}]"), verbose_name=_("lines"))
    # The lines' quantities summed when the receipt is written: the sales KPI adds up units
    # with one SUM instead of opening every receipt's JSON.
    units = models.PositiveIntegerField(
        default=0, help_text=_("Units on the receipt's lines."), verbose_name=_("units")
    )
    tenders = models.JSONField(default=list, blank=True, verbose_name=_("tenders"))
    order_reference = models.CharField(
        max_length=40,
        blank=True,
        help_text=_("The online order a return belongs to."),
        verbose_name=_("order reference"),
    )
    occurred_at = models.DateTimeField(verbose_name=_("occurred at"))
    stock_flagged = models.BooleanField(
        default=False,
        help_text=_("The ledger did not have some units sold."),
        verbose_name=_("stock flagged"),
    )
    payment_issues = models.JSONField(
        default=list,
        blank=True,
        help_text=_(
            "Tenders the till took that could not be applied (a gift card without the "
            "balance, an unknown card…): [{kind, reference, amount, code, message}]."
        ),
        verbose_name=_("payment issues"),
    )

    class Meta:
        verbose_name = _("store receipt")
        verbose_name_plural = _("store receipts")
        ordering = ["-occurred_at"]
        indexes = [
            models.Index(fields=["customer", "-occurred_at"]),
            models.Index(fields=["occurred_at"], name="receipt_occurred_at"),  # the sales KPI
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.number}"

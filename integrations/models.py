"""Signed outbound webhooks, fed by the outbox (common.outbox).

A service that changes state records an OutboxEvent (common.models) in the same transaction.
After commit, a Celery task fans each event out to the subscribed endpoints as WebhookDelivery
rows and posts them, signed with HMAC-SHA256 over the timestamp and body, retrying with
exponential back-off. Every attempt is kept (DeliveryAttempt) and visible in the admin.
"""

import secrets

from django.db import models
from django.utils import timezone

from common.models import OutboxEvent


def generate_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    """A subscriber. It receives the events that occur from `deliver_from` on (its creation, or
    an explicit replay start), signed with its secret; while a secret rotates, the previous one
    signs too until `previous_secret_expires_at`."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500)
    secret = models.CharField(
        max_length=100,
        default=generate_webhook_secret,
        help_text="Shared secret the receiver uses to check our signature.",
    )
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    topics = models.JSONField(
        default=list,
        blank=True,
        help_text='Topics to receive, e.g. ["stock.available_changed", "order.*"]; empty: all.',
    )
    deliver_from = models.DateTimeField(
        default=timezone.now,
        help_text="Events that occurred before this are not delivered to this endpoint.",
    )
    is_active = models.BooleanField(
        default=True,
        help_text="Unticked: paused. Its events are kept (up to the retention) and sent on resume.",
    )
    # The endpoint's own back-off: after a failed send nothing is tried before retry_at, so a
    # dead subscriber costs one attempt per period, not one per waiting delivery.
    failures_in_a_row = models.PositiveIntegerField(default=0)
    retry_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

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
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed, will retry"
    DEAD = "dead", "Gave up"


class WebhookDelivery(models.Model):
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
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
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    attempted_at = models.DateTimeField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-attempted_at"]

    def __str__(self) -> str:
        return f"attempt at {self.attempted_at:%Y-%m-%d %H:%M:%S}"


# --- POS (store tills) --------------------------------------------------------------------------


class PosIntegration(models.Model):
    """One POS vendor/installation, bound to one or more stores, with its own signing secret.

    During a rotation two secrets are valid at once: set `secret` to the new one and keep the old
    one in `previous_secret` until every till uses the new one, then clear it.
    """

    slug = models.SlugField(max_length=50, unique=True, help_text="Appears in the endpoint URL.")
    name = models.CharField(max_length=100)
    vendor = models.CharField(max_length=100, blank=True)
    stores = models.ManyToManyField("stores.Location", related_name="pos_integrations")
    secret = models.CharField(max_length=100, default=generate_webhook_secret)
    previous_secret = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "POS integration"

    def __str__(self) -> str:
        return self.name

    @property
    def valid_secrets(self) -> list[str]:
        return [s for s in (self.secret, self.previous_secret) if s]


class PosTill(models.Model):
    integration = models.ForeignKey(PosIntegration, on_delete=models.CASCADE, related_name="tills")
    location = models.ForeignKey("stores.Location", on_delete=models.PROTECT, related_name="tills")
    code = models.CharField(max_length=40)
    is_active = models.BooleanField(default=True)

    class Meta:
        verbose_name = "POS till"
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "location", "code"], name="uniq_till_per_store"
            )
        ]

    def __str__(self) -> str:
        return f"{self.location_id}/{self.code}"


class PosEventType(models.TextChoices):
    SALE = "sale", "Sale (receipt)"
    RETURN = "return", "Return"
    STOCK_COUNT = "stock_count", "Stock count"
    PICKUP_HANDOVER = "pickup_handover", "Click & collect hand-over"


class PosEventStatus(models.TextChoices):
    RECEIVED = "received", "Received, waiting to be processed"
    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed (can be replayed)"
    REJECTED = "rejected", "Rejected at the door (nothing applied)"


class PosEvent(models.Model):
    """The inbox: every POS event as received, before and after processing."""

    integration = models.ForeignKey(PosIntegration, on_delete=models.PROTECT, related_name="events")
    event_id = models.CharField(
        max_length=100,
        null=True,
        blank=True,
        help_text="The POS's own id; empty when the payload had none.",
    )
    event_type = models.CharField(max_length=20, blank=True)
    location = models.ForeignKey(
        "stores.Location", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    till = models.CharField(max_length=40, blank=True)
    receipt_number = models.CharField(
        max_length=60,
        blank=True,
        help_text="A sale's receipt number: one sale per store, till and receipt, whatever "
        "event id the till sends it under.",
    )
    occurred_at = models.DateTimeField(null=True, blank=True, help_text="The till's own clock.")
    payload = models.JSONField(null=True, blank=True)
    raw_body = models.TextField(blank=True, help_text="Kept for rejected events only.")
    status = models.CharField(
        max_length=10, choices=PosEventStatus.choices, default=PosEventStatus.RECEIVED
    )
    error = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "POS event"
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

    event = models.OneToOneField(PosEvent, on_delete=models.PROTECT, related_name="receipt")
    kind = models.CharField(max_length=10, choices=[("sale", "Sale"), ("return", "Return")])
    number = models.CharField(max_length=60)
    location = models.ForeignKey("stores.Location", on_delete=models.PROTECT, related_name="+")
    till = models.CharField(max_length=40)
    customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="store_receipts",
    )
    currency = models.CharField(max_length=3)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    lines = models.JSONField(help_text="[{sku, quantity, unit_price}]")
    tenders = models.JSONField(default=list, blank=True)
    order_reference = models.CharField(
        max_length=40, blank=True, help_text="The online order a return belongs to."
    )
    occurred_at = models.DateTimeField()
    stock_flagged = models.BooleanField(
        default=False, help_text="The ledger did not have some units sold."
    )
    payment_issues = models.JSONField(
        default=list,
        blank=True,
        help_text="Tenders the till took that could not be applied (a gift card without the "
        "balance, an unknown card…): [{kind, reference, amount, code, message}].",
    )

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [models.Index(fields=["customer", "-occurred_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.number}"

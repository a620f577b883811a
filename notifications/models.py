from django.db import models


class NotificationChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


class NotificationStatus(models.TextChoices):
    SENT = "sent", "Sent"
    SKIPPED = "skipped", "Skipped (no address, or no consent)"


class Notification(models.Model):
    """One message sent (or deliberately not sent) to a customer. `dedupe_key` makes a task that
    runs twice send once. The body is not kept (personal data); the kind and language are."""

    dedupe_key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=40)
    channel = models.CharField(max_length=5, choices=NotificationChannel.choices)
    language = models.CharField(max_length=2)
    customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
    )
    subject_reference = models.CharField(
        max_length=60, blank=True, help_text="Order reference or alert id."
    )
    status = models.CharField(max_length=8, choices=NotificationStatus.choices)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["subject_reference"])]

    def __str__(self) -> str:
        return f"{self.kind} by {self.channel} ({self.status})"


class AlertStatus(models.TextChoices):
    OPEN = "open", "Waiting for stock"
    NOTIFIED = "notified", "Notified"
    CLOSED_NO_CONSENT = "no_consent", "Closed: no consent for this channel"
    CANCELLED = "cancelled", "Cancelled"


class BackInStockAlert(models.Model):
    """A shopper asked to be told when a SKU is available at a store, or within `radius_km` of
    a place. One notification is sent, then the alert closes."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="stock_alerts"
    )
    sku = models.ForeignKey("inventory.Sku", on_delete=models.CASCADE, related_name="+")
    location = models.ForeignKey(
        "stores.Location", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    radius_km = models.DecimalField(max_digits=6, decimal_places=1, null=True, blank=True)
    quantity = models.PositiveIntegerField(default=1)
    channel = models.CharField(max_length=5, choices=NotificationChannel.choices)
    contact = models.CharField(max_length=254, help_text="Email address or E.164 phone number.")
    language = models.CharField(max_length=2, default="fr")
    sales_channel = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    notified_location = models.ForeignKey(
        "stores.Location", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "sku"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(location__isnull=False)
                | models.Q(
                    latitude__isnull=False, longitude__isnull=False, radius_km__isnull=False
                ),
                name="alert_has_store_or_area",
            )
        ]

    def __str__(self) -> str:
        return f"Alert {self.pk} for {self.sku_id} ({self.status})"

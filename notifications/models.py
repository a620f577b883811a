from django.db import models
from django.utils.translation import gettext_lazy as _


class NotificationChannel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")


class NotificationStatus(models.TextChoices):
    SENT = "sent", _("Sent")
    SKIPPED = "skipped", _("Skipped (no address, or no consent)")


class Notification(models.Model):
    """One message sent (or deliberately not sent) to a customer. `dedupe_key` makes a task that
    runs twice send once. The body is not kept (personal data); the kind and language are."""

    dedupe_key = models.CharField(max_length=200, unique=True, verbose_name=_("dedupe key"))
    kind = models.CharField(max_length=40, verbose_name=_("kind"))
    channel = models.CharField(
        max_length=5, choices=NotificationChannel.choices, verbose_name=_("channel")
    )
    language = models.CharField(max_length=2, verbose_name=_("language"))
    customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
        verbose_name=_("customer"),
    )
    subject_reference = models.CharField(
        max_length=60,
        blank=True,
        help_text=_("Order reference or alert id."),
        verbose_name=_("subject reference"),
    )
    status = models.CharField(
        max_length=8, choices=NotificationStatus.choices, verbose_name=_("status")
    )
    note = models.CharField(max_length=200, blank=True, verbose_name=_("note"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-id"]
        indexes = [models.Index(fields=["subject_reference"])]

    def __str__(self) -> str:
        return f"{self.kind} by {self.channel} ({self.status})"


class AlertStatus(models.TextChoices):
    OPEN = "open", _("Waiting for stock")
    NOTIFIED = "notified", _("Notified")
    CLOSED_NO_CONSENT = "no_consent", _("Closed: no consent for this channel")
    CANCELLED = "cancelled", _("Cancelled")


class BackInStockAlert(models.Model):
    """A shopper asked to be told when a SKU is available at a store, or within `radius_km` of
    a place. One notification is sent, then the alert closes."""

    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.CASCADE,
        related_name="stock_alerts",
        verbose_name=_("customer"),
    )
    sku = models.ForeignKey(
        "inventory.Sku", on_delete=models.CASCADE, related_name="+", verbose_name=_("sku")
    )
    location = models.ForeignKey(
        "stores.Location",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("location"),
    )
    latitude = models.DecimalField(
        max_digits=9, decimal_places=6, null=True, blank=True, verbose_name=_("latitude")
    )
    longitude = models.DecimalField(
        max_digits=9, decimal_places=6, null=True, blank=True, verbose_name=_("longitude")
    )
    radius_km = models.DecimalField(
        max_digits=6, decimal_places=1, null=True, blank=True, verbose_name=_("radius km")
    )
    quantity = models.PositiveIntegerField(default=1, verbose_name=_("quantity"))
    channel = models.CharField(
        max_length=5, choices=NotificationChannel.choices, verbose_name=_("channel")
    )
    contact = models.CharField(
        max_length=254,
        help_text=_("Email address or E.164 phone number."),
        verbose_name=_("contact"),
    )
    language = models.CharField(max_length=2, default="fr", verbose_name=_("language"))
    sales_channel = models.CharField(max_length=20, verbose_name=_("sales channel"))
    status = models.CharField(
        max_length=10,
        choices=AlertStatus.choices,
        default=AlertStatus.OPEN,
        verbose_name=_("status"),
    )
    notified_location = models.ForeignKey(
        "stores.Location",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("notified location"),
    )
    created_by_key = models.CharField(max_length=255, unique=True, verbose_name=_("created by key"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("closed at"))

    class Meta:
        verbose_name = _("back in stock alert")
        verbose_name_plural = _("back in stock alerts")
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

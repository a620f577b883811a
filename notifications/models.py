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

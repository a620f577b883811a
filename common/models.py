import hashlib
import secrets

from django.conf import settings
from django.db import models

from common.channels import SalesChannel


class Scope(models.TextChoices):
    """What an API key may do. A key holds a list of these."""

    STOCK_READ = "stock:read", "Read stock and availability"
    STOCK_WRITE = "stock:write", "Move stock (receipts, adjustments, reservations, transfers)"
    ORDERS_READ = "orders:read", "Read orders"
    ORDERS_WRITE = "orders:write", "Place and manage orders"
    CUSTOMERS_RESOLVE = "customers:resolve", "Resolve and identify customers"
    CUSTOMERS_READ = "customers:read", "Read customer profiles and history"
    CUSTOMERS_WRITE = "customers:write", "Update customer profiles, identifiers and consents"
    CUSTOMERS_PRIVACY = "customers:privacy", "Export and erase customer data (GDPR)"
    CUSTOMERS_MERGE = "customers:merge", "Merge duplicate customer records and undo merges"
    CUSTOMERS_CONSENT = "customers:consent", "Record consents given at the counter (tills)"
    PAYMENTS_READ = "payments:read", "Read payments, gift card balances and store credit"
    PAYMENTS_WRITE = "payments:write", "Add tenders, hold gift cards and store credit"
    PAYMENTS_REFUND = "payments:refund", "Refund orders (to their tenders or as store credit)"
    GIFT_CARDS_ISSUE = "gift_cards:issue", "Issue (sell) gift cards"
    STORE_CREDIT_ISSUE = "store_credit:issue", "Grant goodwill store credit"
    LOYALTY_WRITE = "loyalty:write", "Spend points, redeem coupons"
    CAMPAIGNS_WRITE = "campaigns:write", "Create campaigns and issue their coupons"
    POS_EVENTS = "pos:events", "Post POS events"
    WEBHOOKS_MANAGE = "webhooks:manage", "Manage outbound webhook endpoints and their deliveries"


def hash_api_key(raw_key: str) -> str:
    # Keys are 32 random bytes: a fast hash is enough (no dictionary to guess from) and keeps
    # authentication to one indexed lookup per request.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    """One key per integration (web storefront, mobile app, marketplace, a POS...).

    Only the SHA-256 of the key is stored; the key itself is shown once, when it is created.
    """

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=12, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    channel = models.CharField(max_length=20, choices=SalesChannel.choices)
    scopes = models.JSONField(default=list, help_text='List of scopes, e.g. ["stock:read"].')
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate_raw_key() -> str:
        return "osk_" + secrets.token_urlsafe(32)

    def set_key(self, raw_key: str) -> None:
        self.prefix = raw_key[:12]
        self.key_hash = hash_api_key(raw_key)

    def has_scopes(self, scopes) -> bool:
        return set(scopes).issubset(set(self.scopes or []))


class IdempotencyRecord(models.Model):
    """The first response to a write, kept so that a retry with the same key gets it again."""

    owner = models.CharField(max_length=64, help_text="API key id or user id the key belongs to.")
    key = models.CharField(max_length=255)
    endpoint = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="uniq_idempotency_owner_key")
        ]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.owner}:{self.key}"


class OutboxEvent(models.Model):
    """Something that happened, recorded in the transaction that made it happen (common.outbox).

    Relays (the webhook dispatcher in `integrations`) read it after commit; an event exists if
    and only if its change committed."""

    topic = models.CharField(max_length=60, db_index=True)
    payload = models.JSONField()
    occurred_at = models.DateTimeField()
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The table kept its name when the model moved here from `integrations`: renaming it
        # would lock the table every stock write inserts into, and fail the writes of processes
        # still running the previous release during a rolling deploy.
        db_table = "integrations_outboxevent"
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"],
                condition=models.Q(dispatched_at__isnull=True),
                name="outbox_undispatched",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic} #{self.pk}"


class SchedulerHeartbeat(models.Model):
    """When a job of the schedule last ran: written by the beat's heartbeat task through a
    worker, read by /healthz. One row per job name; a late row means no beat or no worker."""

    name = models.CharField(max_length=60, primary_key=True)
    last_run_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_run_at:%Y-%m-%d %H:%M:%S}"


class QueuedTask(models.Model):
    """A Celery task owed by a committed transaction (an outbox for tasks): written in the
    transaction, published after its commit and then deleted. A publish that fails (the broker
    is down) leaves the row, and the beat's sweep publishes it once the broker is back, so a
    broker outage delays the work and never turns the committed write into an error."""

    name = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    publish_after = models.DateTimeField(
        help_text="The sweep leaves the row alone until then (the commit publishes it first)."
    )
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["publish_after"])]

    def __str__(self) -> str:
        return f"{self.name}{tuple(self.args)}"

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from common.channels import SalesChannel


class Scope(models.TextChoices):
    """What an API key may do. A key holds a list of these."""

    STOCK_READ = "stock:read", _("Read stock and availability")
    STOCK_WRITE = "stock:write", _("Move stock (receipts, adjustments, reservations, transfers)")
    ORDERS_READ = "orders:read", _("Read orders")
    ORDERS_WRITE = "orders:write", _("Place and manage orders")
    CUSTOMERS_RESOLVE = "customers:resolve", _("Resolve and identify customers")
    CUSTOMERS_READ = "customers:read", _("Read customer profiles and history")
    CUSTOMERS_WRITE = "customers:write", _("Update customer profiles, identifiers and consents")
    CUSTOMERS_PRIVACY = "customers:privacy", _("Export and erase customer data (GDPR)")
    CUSTOMERS_MERGE = "customers:merge", _("Merge duplicate customer records and undo merges")
    CUSTOMERS_CONSENT = "customers:consent", _("Record consents given at the counter (tills)")
    PAYMENTS_READ = "payments:read", _("Read payments, gift card balances and store credit")
    PAYMENTS_WRITE = "payments:write", _("Add tenders, hold gift cards and store credit")
    PAYMENTS_REFUND = "payments:refund", _("Refund orders (to their tenders or as store credit)")
    GIFT_CARDS_ISSUE = "gift_cards:issue", _("Issue (sell) gift cards")
    STORE_CREDIT_ISSUE = "store_credit:issue", _("Grant goodwill store credit")
    LOYALTY_WRITE = "loyalty:write", _("Spend points, redeem coupons")
    CAMPAIGNS_WRITE = "campaigns:write", _("Create campaigns and issue their coupons")
    POS_EVENTS = "pos:events", _("Post POS events")
    WEBHOOKS_MANAGE = "webhooks:manage", _("Manage outbound webhook endpoints and their deliveries")
    REPORTS_READ = "reports:read", _("Read the omnichannel KPIs (reports, CSV)")


def hash_api_key(raw_key: str) -> str:
    # Keys are 32 random bytes: a fast hash is enough (no dictionary to guess from) and keeps
    # authentication to one indexed lookup per request.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    """One key per integration (web storefront, mobile app, marketplace, a POS...).

    Only the SHA-256 of the key is stored; the key itself is shown once, when it is created.
    """

    name = models.CharField(max_length=100, unique=True, verbose_name=_("name"))
    prefix = models.CharField(
        max_length=12, db_index=True, editable=False, verbose_name=_("prefix")
    )
    key_hash = models.CharField(
        max_length=64, unique=True, editable=False, verbose_name=_("key hash")
    )
    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, verbose_name=_("channel")
    )
    scopes = models.JSONField(
        default=list, help_text=_('List of scopes, e.g. ["stock:read"].'), verbose_name=_("scopes")
    )
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("last used at")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        verbose_name_plural = _("API keys")
        verbose_name = _("API key")

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

    owner = models.CharField(
        max_length=64,
        help_text=_("API key id or user id the key belongs to."),
        verbose_name=_("owner"),
    )
    key = models.CharField(max_length=255, verbose_name=_("key"))
    endpoint = models.CharField(max_length=200, verbose_name=_("endpoint"))
    request_hash = models.CharField(max_length=64, verbose_name=_("request hash"))
    response_status = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name=_("response status")
    )
    response_body = models.JSONField(null=True, blank=True, verbose_name=_("response body"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    completed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("completed at"))

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
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

    topic = models.CharField(max_length=60, db_index=True, verbose_name=_("topic"))
    payload = models.JSONField(verbose_name=_("payload"))
    occurred_at = models.DateTimeField(verbose_name=_("occurred at"))
    dispatched_at = models.DateTimeField(null=True, blank=True, verbose_name=_("dispatched at"))

    class Meta:
        # The table kept its name when the model moved here from `integrations`: renaming it
        # would lock the table every stock write inserts into, and fail the writes of processes
        # still running the previous release during a rolling deploy.
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox events")
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

    name = models.CharField(max_length=60, primary_key=True, verbose_name=_("name"))
    last_run_at = models.DateTimeField(verbose_name=_("last run at"))

    class Meta:
        verbose_name = _("scheduler heartbeat")
        verbose_name_plural = _("scheduler heartbeats")

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_run_at:%Y-%m-%d %H:%M:%S}"


class QueuedTask(models.Model):
    """A Celery task owed by a committed transaction (an outbox for tasks): written in the
    transaction, published after its commit and then deleted. A publish that fails (the broker
    is down) leaves the row, and the beat's sweep publishes it once the broker is back, so a
    broker outage delays the work and never turns the committed write into an error."""

    name = models.CharField(max_length=200, verbose_name=_("name"))
    args = models.JSONField(default=list, verbose_name=_("args"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    publish_after = models.DateTimeField(
        help_text=_("The sweep leaves the row alone until then (the commit publishes it first)."),
        verbose_name=_("publish after"),
    )
    attempts = models.PositiveIntegerField(default=0, verbose_name=_("attempts"))

    class Meta:
        verbose_name = _("queued task")
        verbose_name_plural = _("queued tasks")
        indexes = [models.Index(fields=["publish_after"])]

    def __str__(self) -> str:
        return f"{self.name}{tuple(self.args)}"

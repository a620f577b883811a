"""Orders, their allocations to locations, the routing log and the fulfilment journal.

Writes go through `orders.services` (the state machine lives there); routing is pure code in
`orders.routing`; reads with rules in them are in `orders.selectors`. Stock is never touched here:
every unit held or moved for an order is an `inventory.Reservation` / ledger movement, and an
AllocationLine names the reservation that holds its units.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.channels import SalesChannel
from inventory.models import Reservation, Sku, Transfer
from stores.models import Location


class OrderStatus(models.TextChoices):
    PLACED = "placed", _("Placed")
    ALLOCATED = "allocated", _("Allocated (stock reserved)")
    PICKING = "picking", _("Being picked")
    READY_FOR_PICKUP = "ready_for_pickup", _("Ready for pickup")
    COLLECTED = "collected", _("Collected")
    SHIPPED = "shipped", _("Shipped")
    DELIVERED = "delivered", _("Delivered")
    CANCELLED = "cancelled", _("Cancelled")
    EXPIRED = "expired", _("Expired (not collected)")


OPEN_STATUSES = frozenset(
    {
        OrderStatus.PLACED,
        OrderStatus.ALLOCATED,
        OrderStatus.PICKING,
        OrderStatus.READY_FOR_PICKUP,
        OrderStatus.SHIPPED,
    }
)


class FulfilmentType(models.TextChoices):
    PICKUP = "pickup", _("Click & collect")
    DELIVERY = "delivery", _("Home delivery")


class Order(models.Model):
    reference = models.CharField(
        max_length=20, unique=True, editable=False, verbose_name=_("reference")
    )
    created_by_key = models.CharField(
        max_length=255,
        unique=True,
        editable=False,
        help_text=_("The placing request's key."),
        verbose_name=_("created by key"),
    )
    request_hash = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text=_("SHA-256 of what was ordered: a retry with the same key must match it."),
        verbose_name=_("request hash"),
    )
    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, verbose_name=_("channel")
    )
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.PROTECT,
        related_name="orders",
        verbose_name=_("customer"),
    )
    language = models.CharField(
        max_length=2, default="fr", help_text=_("Of the notifications."), verbose_name=_("language")
    )
    contact_email = models.EmailField(blank=True, verbose_name=_("contact email"))
    contact_phone = models.CharField(max_length=20, blank=True, verbose_name=_("contact phone"))
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    total_amount = models.DecimalField(
        max_digits=12, decimal_places=2, verbose_name=_("total amount")
    )
    status = models.CharField(
        max_length=20,
        choices=OrderStatus.choices,
        default=OrderStatus.PLACED,
        db_index=True,
        verbose_name=_("status"),
    )
    fulfilment = models.CharField(
        max_length=10, choices=FulfilmentType.choices, verbose_name=_("fulfilment")
    )
    pickup_location = models.ForeignKey(
        Location,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="pickup_orders",
        verbose_name=_("pickup location"),
    )
    ship_name = models.CharField(max_length=200, blank=True, verbose_name=_("ship name"))
    ship_address = models.CharField(max_length=300, blank=True, verbose_name=_("ship address"))
    ship_postcode = models.CharField(max_length=12, blank=True, verbose_name=_("ship postcode"))
    ship_city = models.CharField(max_length=80, blank=True, verbose_name=_("ship city"))
    ship_country = models.CharField(max_length=2, blank=True, verbose_name=_("ship country"))
    ship_latitude = models.DecimalField(
        max_digits=9, decimal_places=6, null=True, blank=True, verbose_name=_("ship latitude")
    )
    ship_longitude = models.DecimalField(
        max_digits=9, decimal_places=6, null=True, blank=True, verbose_name=_("ship longitude")
    )
    # The pickup code itself is never stored: it is an HMAC of this nonce with SECRET_KEY, so
    # neither a database dump nor the admin reveals it (see orders.pickup).
    pickup_nonce = models.CharField(
        max_length=32, blank=True, editable=False, verbose_name=_("pickup nonce")
    )
    ready_by = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("Promised readiness: for pickup in the store, for delivery to be shipped."),
        verbose_name=_("ready by"),
    )
    delivery_expected_on = models.DateField(
        null=True,
        blank=True,
        help_text=_("Home delivery: the day the parcel should arrive."),
        verbose_name=_("delivery expected on"),
    )
    ready_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ready at"))
    pickup_deadline = models.DateTimeField(null=True, blank=True, verbose_name=_("pickup deadline"))
    reminder_sent_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("reminder sent at")
    )
    placed_at = models.DateTimeField(verbose_name=_("placed at"))
    capacity_slots = models.JSONField(
        default=list,
        blank=True,
        editable=False,
        help_text=_(
            "[[location id, local day], …] this order counts in (daily capacity); given "
            "back when it is cancelled before preparation starts."
        ),
        verbose_name=_("capacity slots"),
    )
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("closed at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-placed_at", "-id"]
        permissions = [
            ("prepare_order", "Can start picking, mark ready and ship orders"),
            ("handover_order", "Can hand over click & collect orders"),
            ("reject_order_line", "Can reject an order line that cannot be prepared"),
            ("receive_order_transfer", "Can ship and receive the transfers of orders"),
            ("cancel_order", "Can cancel orders"),
            ("view_all_locations", "Sees the orders of every location"),
        ]
        indexes = [
            models.Index(fields=["customer", "-placed_at", "-id"]),
            models.Index(fields=["status", "pickup_deadline"]),
            models.Index(fields=["pickup_location", "status"]),
            # the KPI tables read the orders of a period (analytics.kpis.scope.orders_placed)
            models.Index(fields=["placed_at"], name="order_placed_at"),
            models.Index(fields=["pickup_location", "placed_at"], name="order_pickup_placed_at"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(fulfilment="delivery") | Q(pickup_location__isnull=False),
                name="order_pickup_has_store",
            ),
            models.CheckConstraint(condition=Q(total_amount__gte=0), name="order_total_gte_0"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class LineStatus(models.TextChoices):
    OPEN = "open", _("Open")
    UNAVAILABLE = "unavailable", _("Unavailable (nothing left to route to)")
    CANCELLED = "cancelled", _("Cancelled")
    FULFILLED = "fulfilled", _("Fulfilled (handed over or delivered)")


class OrderLine(models.Model):
    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="lines", verbose_name=_("order")
    )
    line_no = models.PositiveSmallIntegerField(verbose_name=_("line no"))
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="+", verbose_name=_("sku"))
    quantity = models.PositiveIntegerField(verbose_name=_("quantity"))
    unit_price = models.DecimalField(max_digits=12, decimal_places=2, verbose_name=_("unit price"))
    status = models.CharField(
        max_length=12, choices=LineStatus.choices, default=LineStatus.OPEN, verbose_name=_("status")
    )
    quantity_returned = models.PositiveIntegerField(default=0, verbose_name=_("quantity returned"))
    # Units whose price was given back, by a return or a per-line refund (a unit kept by the
    # shopper but refunded, e.g. damaged in transit): never more than `quantity`.
    quantity_refunded = models.PositiveIntegerField(default=0, verbose_name=_("quantity refunded"))

    class Meta:
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        ordering = ["order", "line_no"]
        constraints = [
            models.UniqueConstraint(fields=["order", "line_no"], name="uniq_order_line_no"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_line_quantity_gt_0"),
            models.CheckConstraint(
                condition=Q(quantity_returned__lte=models.F("quantity")),
                name="order_line_returned_lte_quantity",
            ),
            models.CheckConstraint(
                condition=Q(quantity_refunded__lte=models.F("quantity")),
                name="order_line_refunded_lte_quantity",
            ),
        ]

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.quantity} unit(s)"


class AllocationKind(models.TextChoices):
    PICKUP_LOCAL = "pickup_local", _("Prepared at the pickup store")
    TRANSFER = "transfer", _("Sent to the pickup store by transfer")
    SHIP = "ship", _("Shipped to the customer")


class AllocationStatus(models.TextChoices):
    RESERVED = "reserved", _("Reserved")
    IN_TRANSIT = "in_transit", _("Transfer shipped")
    RECEIVED = "received", _("Received at the pickup store")
    FULFILLED = "fulfilled", _("Collected or shipped")
    RELEASED = "released", _("Released")


class Allocation(models.Model):
    """A group of an order's lines served from one location (one shipment or one transfer)."""

    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="allocations", verbose_name=_("order")
    )
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="allocations", verbose_name=_("location")
    )
    kind = models.CharField(max_length=12, choices=AllocationKind.choices, verbose_name=_("kind"))
    status = models.CharField(
        max_length=12,
        choices=AllocationStatus.choices,
        default=AllocationStatus.RESERVED,
        verbose_name=_("status"),
    )
    transfer = models.ForeignKey(
        Transfer,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("transfer"),
    )
    expected_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Transfer arrival."), verbose_name=_("expected at")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("allocation")
        verbose_name_plural = _("allocations")
        ordering = ["order", "id"]
        indexes = [
            models.Index(fields=["location", "status"]),
            # a period's allocations (the stores KPI), and a store's (a manager's KPIs)
            models.Index(fields=["created_at"], name="allocation_created_at"),
            models.Index(fields=["location", "created_at"], name="allocation_location_created"),
        ]

    def __str__(self) -> str:
        return f"{self.order_id}@{self.location_id} ({self.kind}, {self.status})"


class AllocationLine(models.Model):
    allocation = models.ForeignKey(
        Allocation, on_delete=models.CASCADE, related_name="lines", verbose_name=_("allocation")
    )
    order_line = models.ForeignKey(
        OrderLine, on_delete=models.CASCADE, related_name="allocated", verbose_name=_("order line")
    )
    quantity = models.PositiveIntegerField(verbose_name=_("quantity"))
    reservation = models.ForeignKey(
        Reservation,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("reservation"),
    )
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))

    class Meta:
        verbose_name = _("allocation line")
        verbose_name_plural = _("allocation lines")

    def __str__(self) -> str:
        return f"{self.quantity} of line {self.order_line_id} (reservation {self.reservation_id})"


class RoutingDecision(models.Model):
    """Why an order's lines went where they went: the candidates considered, the rules that ranked
    them (with each candidate's scores), the choice and why the others were rejected."""

    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="routing_decisions", verbose_name=_("order")
    )
    trigger = models.CharField(
        max_length=20,
        help_text=_("placement, rejection, transfer_short…"),
        verbose_name=_("trigger"),
    )
    rules = models.JSONField(default=list, verbose_name=_("rules"))
    candidates = models.JSONField(default=list, verbose_name=_("candidates"))
    chosen = models.JSONField(default=list, verbose_name=_("chosen"))
    outcome = models.CharField(max_length=20, verbose_name=_("outcome"))
    note = models.CharField(max_length=255, blank=True, verbose_name=_("note"))
    duration_ms = models.DecimalField(
        max_digits=9, decimal_places=3, default=0, verbose_name=_("duration ms")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("routing decision")
        verbose_name_plural = _("routing decisions")
        ordering = ["order", "id"]
        # the re-routings of a period (the stores KPI); placements are most rows, left out
        indexes = [
            models.Index(
                fields=["created_at"], condition=~Q(trigger="placement"), name="routing_again_at"
            )
        ]

    def __str__(self) -> str:
        return f"{self.order_id} {self.trigger}: {self.outcome}"


class OrderEvent(models.Model):
    """The journal of an order: every transition and notable action, never updated."""

    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="events", verbose_name=_("order")
    )
    kind = models.CharField(max_length=30, verbose_name=_("kind"))
    from_status = models.CharField(max_length=20, blank=True, verbose_name=_("from status"))
    to_status = models.CharField(max_length=20, blank=True, verbose_name=_("to status"))
    actor = models.CharField(max_length=150, verbose_name=_("actor"))
    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, verbose_name=_("channel")
    )
    data = models.JSONField(default=dict, blank=True, verbose_name=_("data"))
    idempotency_key = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        unique=True,
        help_text=_("Of the request that did it."),
        verbose_name=_("idempotency key"),
    )
    occurred_at = models.DateTimeField(verbose_name=_("occurred at"))

    class Meta:
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        ordering = ["order", "id"]
        indexes = [models.Index(fields=["kind", "-occurred_at"])]

    def __str__(self) -> str:
        return f"{self.order_id} {self.kind} {self.from_status}→{self.to_status}"


class PendingNotification(models.Model):
    """A message an order owes its customer, written in the transaction that owes it (a
    transactional outbox). `orders.services.order_notifications_send` sends what is due, then
    deletes it: a crash between the commit and the queueing cannot lose a message, and a burst
    of orders costs one Celery task per second and process instead of one per order. A send
    that fails is tried again later (`due_at`); after MAX attempts the row stays, for staff."""

    MAX_ATTEMPTS = 8

    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="+", verbose_name=_("order")
    )
    kind = models.CharField(max_length=40, verbose_name=_("kind"))
    extra = models.JSONField(default=dict, blank=True, verbose_name=_("extra"))
    due_at = models.DateTimeField(default=timezone.now, verbose_name=_("due at"))
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=_("attempts"))
    last_error = models.CharField(max_length=200, blank=True, verbose_name=_("last error"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("pending notification")
        verbose_name_plural = _("pending notifications")
        ordering = ["id"]
        indexes = [models.Index(fields=["due_at"], name="pending_notification_due")]

    def __str__(self) -> str:
        return f"{self.kind} for order {self.order_id}"


class RoutingRuleName(models.TextChoices):
    DISTANCE = "distance", _("Nearest to the customer (or to the pickup store)")
    PRIORITY = "priority", _("Location routing priority (lower first)")
    PROTECT_LAST_UNITS = "protect_last_units", _("Keep a store's last units for walk-in shoppers")
    STOCK_DEPTH = "stock_depth", _("Deepest stock first")
    WAREHOUSE_FIRST = "warehouse_first", _("Warehouses before stores")


DEFAULT_RULES = [
    RoutingRuleName.DISTANCE,
    RoutingRuleName.PROTECT_LAST_UNITS,
    RoutingRuleName.PRIORITY,
    RoutingRuleName.STOCK_DEPTH,
]


def validate_rule_names(value) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError('A non-empty list of rule names, e.g. ["distance", "priority"].')
    unknown = [name for name in value if name not in RoutingRuleName.values]
    if unknown:
        raise ValidationError(f"Unknown rule(s) {unknown}; known: {RoutingRuleName.values}.")
    if len(set(value)) != len(value):
        raise ValidationError("A rule appears twice.")


class RoutingRule(models.Model):
    """How the router ranks candidate locations for one sales channel (set by an operator)."""

    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, unique=True, verbose_name=_("channel")
    )
    rules = models.JSONField(
        default=list,
        validators=[validate_rule_names],
        help_text="Ordered rule names: the first decides, the next ones break ties. Known: "
        + ", ".join(RoutingRuleName.values),
        verbose_name=_("rules"),
    )
    protect_last_units = models.PositiveSmallIntegerField(
        default=2,
        help_text=_("protect_last_units: a store keeps at least this many units."),
        verbose_name=_("protect last units"),
    )
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("updated by"),
    )

    class Meta:
        verbose_name = _("routing rule")
        verbose_name_plural = _("routing rules")
        ordering = ["channel"]

    def __str__(self) -> str:
        return f"{self.channel}: {' > '.join(self.rules)}"


class LocationDayLoad(models.Model):
    """Online orders a capped location prepares on one local day (a counter under its cap)."""

    location = models.ForeignKey(
        Location, on_delete=models.CASCADE, related_name="+", verbose_name=_("location")
    )
    day = models.DateField(verbose_name=_("day"))
    orders = models.PositiveIntegerField(default=0, verbose_name=_("orders"))

    class Meta:
        verbose_name = _("location day load")
        verbose_name_plural = _("location day loads")
        constraints = [
            models.UniqueConstraint(fields=["location", "day"], name="uniq_location_day_load")
        ]

    def __str__(self) -> str:
        return f"{self.location_id} {self.day}: {self.orders}"


class Return(models.Model):
    """Units of an order brought back to a location (any store, not only the one that served)."""

    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, related_name="returns", verbose_name=_("order")
    )
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.PROTECT,
        related_name="order_returns",
        verbose_name=_("customer"),
    )
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="+", verbose_name=_("location")
    )
    refund_amount = models.DecimalField(
        max_digits=12, decimal_places=2, verbose_name=_("refund amount")
    )
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    actor = models.CharField(max_length=150, verbose_name=_("actor"))
    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, verbose_name=_("channel")
    )
    idempotency_key = models.CharField(
        max_length=255, unique=True, verbose_name=_("idempotency key")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("return")
        verbose_name_plural = _("returns")
        ordering = ["-id"]
        indexes = [models.Index(fields=["created_at"], name="return_created_at")]  # KPIs

    def __str__(self) -> str:
        return f"Return {self.pk} of {self.order_id} at {self.location_id}"


class ReturnLine(models.Model):
    order_return = models.ForeignKey(
        Return, on_delete=models.CASCADE, related_name="lines", verbose_name=_("order return")
    )
    order_line = models.ForeignKey(
        OrderLine, on_delete=models.PROTECT, related_name="+", verbose_name=_("order line")
    )
    quantity = models.PositiveIntegerField(verbose_name=_("quantity"))
    unsellable = models.BooleanField(default=False, verbose_name=_("unsellable"))
    reason = models.CharField(max_length=120, blank=True, verbose_name=_("reason"))
    refund_amount = models.DecimalField(
        max_digits=12, decimal_places=2, verbose_name=_("refund amount")
    )

    class Meta:
        verbose_name = _("return line")
        verbose_name_plural = _("return lines")

    def __str__(self) -> str:
        return f"{self.quantity} of line {self.order_line_id}"

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

from common.channels import SalesChannel
from inventory.models import Reservation, Sku, Transfer
from stores.models import Location


class OrderStatus(models.TextChoices):
    PLACED = "placed", "Placed"
    ALLOCATED = "allocated", "Allocated (stock reserved)"
    PICKING = "picking", "Being picked"
    READY_FOR_PICKUP = "ready_for_pickup", "Ready for pickup"
    COLLECTED = "collected", "Collected"
    SHIPPED = "shipped", "Shipped"
    DELIVERED = "delivered", "Delivered"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired (not collected)"


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
    PICKUP = "pickup", "Click & collect"
    DELIVERY = "delivery", "Home delivery"


class Order(models.Model):
    reference = models.CharField(max_length=20, unique=True, editable=False)
    created_by_key = models.CharField(
        max_length=255, unique=True, editable=False, help_text="The placing request's key."
    )
    request_hash = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="SHA-256 of what was ordered: a retry with the same key must match it.",
    )
    channel = models.CharField(max_length=20, choices=SalesChannel.choices)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="orders"
    )
    language = models.CharField(max_length=2, default="fr", help_text="Of the notifications.")
    contact_email = models.EmailField(blank=True)
    contact_phone = models.CharField(max_length=20, blank=True)
    currency = models.CharField(max_length=3)
    total_amount = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(
        max_length=20, choices=OrderStatus.choices, default=OrderStatus.PLACED, db_index=True
    )
    fulfilment = models.CharField(max_length=10, choices=FulfilmentType.choices)
    pickup_location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.PROTECT, related_name="pickup_orders"
    )
    ship_name = models.CharField(max_length=200, blank=True)
    ship_address = models.CharField(max_length=300, blank=True)
    ship_postcode = models.CharField(max_length=12, blank=True)
    ship_city = models.CharField(max_length=80, blank=True)
    ship_country = models.CharField(max_length=2, blank=True)
    ship_latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    ship_longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    # The pickup code itself is never stored: it is an HMAC of this nonce with SECRET_KEY, so
    # neither a database dump nor the admin reveals it (see orders.pickup).
    pickup_nonce = models.CharField(max_length=32, blank=True, editable=False)
    ready_by = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Promised readiness: for pickup in the store, for delivery to be shipped.",
    )
    delivery_expected_on = models.DateField(
        null=True, blank=True, help_text="Home delivery: the day the parcel should arrive."
    )
    ready_at = models.DateTimeField(null=True, blank=True)
    pickup_deadline = models.DateTimeField(null=True, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    placed_at = models.DateTimeField()
    capacity_slots = models.JSONField(
        default=list,
        blank=True,
        editable=False,
        help_text="[[location id, local day], …] this order counts in (daily capacity); given "
        "back when it is cancelled before preparation starts.",
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
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
    OPEN = "open", "Open"
    UNAVAILABLE = "unavailable", "Unavailable (nothing left to route to)"
    CANCELLED = "cancelled", "Cancelled"
    FULFILLED = "fulfilled", "Fulfilled (handed over or delivered)"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    line_no = models.PositiveSmallIntegerField()
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=12, choices=LineStatus.choices, default=LineStatus.OPEN)
    quantity_returned = models.PositiveIntegerField(default=0)
    # Units whose price was given back, by a return or a per-line refund (a unit kept by the
    # shopper but refunded, e.g. damaged in transit): never more than `quantity`.
    quantity_refunded = models.PositiveIntegerField(default=0)

    class Meta:
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
        return f"{self.order_id}#{self.line_no} {self.quantity} × {self.sku_id}"


class AllocationKind(models.TextChoices):
    PICKUP_LOCAL = "pickup_local", "Prepared at the pickup store"
    TRANSFER = "transfer", "Sent to the pickup store by transfer"
    SHIP = "ship", "Shipped to the customer"


class AllocationStatus(models.TextChoices):
    RESERVED = "reserved", "Reserved"
    IN_TRANSIT = "in_transit", "Transfer shipped"
    RECEIVED = "received", "Received at the pickup store"
    FULFILLED = "fulfilled", "Collected or shipped"
    RELEASED = "released", "Released"


class Allocation(models.Model):
    """A group of an order's lines served from one location (one shipment or one transfer)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="allocations")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="allocations")
    kind = models.CharField(max_length=12, choices=AllocationKind.choices)
    status = models.CharField(
        max_length=12, choices=AllocationStatus.choices, default=AllocationStatus.RESERVED
    )
    transfer = models.ForeignKey(
        Transfer, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    expected_at = models.DateTimeField(null=True, blank=True, help_text="Transfer arrival.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["order", "id"]
        indexes = [models.Index(fields=["location", "status"])]

    def __str__(self) -> str:
        return f"{self.order_id}@{self.location_id} ({self.kind}, {self.status})"


class AllocationLine(models.Model):
    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey(OrderLine, on_delete=models.CASCADE, related_name="allocated")
    quantity = models.PositiveIntegerField()
    reservation = models.ForeignKey(
        Reservation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.quantity} of line {self.order_line_id} (reservation {self.reservation_id})"


class RoutingDecision(models.Model):
    """Why an order's lines went where they went: the candidates considered, the rules that ranked
    them (with each candidate's scores), the choice and why the others were rejected."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="routing_decisions")
    trigger = models.CharField(max_length=20, help_text="placement, rejection, transfer_short…")
    rules = models.JSONField(default=list)
    candidates = models.JSONField(default=list)
    chosen = models.JSONField(default=list)
    outcome = models.CharField(max_length=20)
    note = models.CharField(max_length=255, blank=True)
    duration_ms = models.DecimalField(max_digits=9, decimal_places=3, default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return f"{self.order_id} {self.trigger}: {self.outcome}"


class OrderEvent(models.Model):
    """The journal of an order: every transition and notable action, never updated."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=30)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    actor = models.CharField(max_length=150)
    channel = models.CharField(max_length=20, choices=SalesChannel.choices)
    data = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(
        max_length=255, null=True, blank=True, unique=True, help_text="Of the request that did it."
    )
    occurred_at = models.DateTimeField()

    class Meta:
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

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=40)
    extra = models.JSONField(default=dict, blank=True)
    due_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["due_at"], name="pending_notification_due")]

    def __str__(self) -> str:
        return f"{self.kind} for order {self.order_id}"


class RoutingRuleName(models.TextChoices):
    DISTANCE = "distance", "Nearest to the customer (or to the pickup store)"
    PRIORITY = "priority", "Location routing priority (lower first)"
    PROTECT_LAST_UNITS = "protect_last_units", "Keep a store's last units for walk-in shoppers"
    STOCK_DEPTH = "stock_depth", "Deepest stock first"
    WAREHOUSE_FIRST = "warehouse_first", "Warehouses before stores"


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

    channel = models.CharField(max_length=20, choices=SalesChannel.choices, unique=True)
    rules = models.JSONField(
        default=list,
        validators=[validate_rule_names],
        help_text="Ordered rule names: the first decides, the next ones break ties. Known: "
        + ", ".join(RoutingRuleName.values),
    )
    protect_last_units = models.PositiveSmallIntegerField(
        default=2, help_text="protect_last_units: a store keeps at least this many units."
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["channel"]

    def __str__(self) -> str:
        return f"{self.channel}: {' > '.join(self.rules)}"


class LocationDayLoad(models.Model):
    """Online orders a capped location prepares on one local day (a counter under its cap)."""

    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    orders = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["location", "day"], name="uniq_location_day_load")
        ]

    def __str__(self) -> str:
        return f"{self.location_id} {self.day}: {self.orders}"


class Return(models.Model):
    """Units of an order brought back to a location (any store, not only the one that served)."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="returns")
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="order_returns"
    )
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="+")
    refund_amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    actor = models.CharField(max_length=150)
    channel = models.CharField(max_length=20, choices=SalesChannel.choices)
    idempotency_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Return {self.pk} of {self.order_id} at {self.location_id}"


class ReturnLine(models.Model):
    order_return = models.ForeignKey(Return, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey(OrderLine, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()
    unsellable = models.BooleanField(default=False)
    reason = models.CharField(max_length=120, blank=True)
    refund_amount = models.DecimalField(max_digits=12, decimal_places=2)

    def __str__(self) -> str:
        return f"{self.quantity} of line {self.order_line_id}"

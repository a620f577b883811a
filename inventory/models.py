"""The stock ledger.

StockMovement rows are the truth and are never updated or deleted. StockPosition is a projection
of them (one row per SKU and location), updated in the same transaction by the one service that
changes stock, `inventory.services.stock_apply`. `manage.py stock_reconcile` proves the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Greatest

from common.channels import SalesChannel
from inventory.validators import validate_gtin
from stores.models import Location


class Sku(models.Model):
    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    barcode = models.CharField(
        max_length=14,
        unique=True,
        null=True,
        blank=True,
        validators=[validate_gtin],
        help_text="EAN-13 / GTIN, check digit verified.",
    )
    category = models.CharField(max_length=80, blank=True, db_index=True)
    attributes = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"size": "M", "colour": "navy"}'
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        verbose_name = "SKU"

    def __str__(self) -> str:
        return f"{self.code} – {self.name}"


@dataclass(frozen=True, slots=True)
class Quantities:
    """A position's four quantities, or a change of them (a movement's deltas)."""

    on_hand: int = 0
    reserved: int = 0
    unsellable: int = 0
    incoming: int = 0

    @classmethod
    def zero(cls) -> Quantities:
        return cls()

    def __add__(self, other: Quantities) -> Quantities:
        return Quantities(
            self.on_hand + other.on_hand,
            self.reserved + other.reserved,
            self.unsellable + other.unsellable,
            self.incoming + other.incoming,
        )

    def times(self, factor: int) -> Quantities:
        return Quantities(
            self.on_hand * factor,
            self.reserved * factor,
            self.unsellable * factor,
            self.incoming * factor,
        )

    @property
    def sellable(self) -> int:
        """Units on hand that are neither held nor damaged (may be negative after till sales)."""
        return self.on_hand - self.reserved - self.unsellable

    def available(self, safety_stock: int = 0) -> int:
        """What may be sold: `available` for online channels (with the safety stock),
        `available_at_till` with 0. The database computes the same columns (SELLABLE below)."""
        return max(self.sellable - safety_stock, 0)


# The one spelling of "sellable" in SQL, for the generated columns and any query that needs it.
SELLABLE = F("on_hand") - F("reserved") - F("unsellable")


class StockPosition(models.Model):
    """Named quantities of one SKU at one location: the projection of its movements.

    on_hand      units physically there (unsellable ones included)
    reserved     units promised to orders or carts, still on hand
    unsellable   damaged / in quality control, still on hand
    incoming     units shipped to here by a transfer, not received yet
    safety_stock units kept back from online channels: the SKU's override, else the location's
    available    on_hand − reserved − unsellable − safety_stock, never below 0 (online channels)
    available_at_till  the same without safety stock: a till may sell the shelf's last units
    """

    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="positions")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="positions")
    on_hand = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    unsellable = models.IntegerField(default=0)
    incoming = models.IntegerField(default=0)
    safety_stock_override = models.PositiveIntegerField(
        null=True, blank=True, help_text="Overrides the location's safety stock for this SKU."
    )
    safety_stock = models.PositiveIntegerField(default=0, editable=False)
    available = models.GeneratedField(
        expression=Greatest(SELLABLE - F("safety_stock"), 0),
        output_field=models.IntegerField(),
        db_persist=True,
    )
    available_at_till = models.GeneratedField(
        expression=Greatest(SELLABLE, 0),
        output_field=models.IntegerField(),
        db_persist=True,
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # Stock writes by staff, in the admin and through the API with a staff session
        # (inventory.access): given to the groups by orders 0010.
        permissions = [
            ("receive_stock", "Can receive stock"),
            ("adjust_stock", "Can adjust stock and set units aside or back"),
            ("count_stock", "Can record stock counts"),
            ("move_stock", "Can request, ship and receive stock transfers"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["sku", "location"], name="uniq_position_sku_location"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="position_reserved_gte_0"),
            models.CheckConstraint(
                condition=Q(unsellable__gte=0), name="position_unsellable_gte_0"
            ),
            models.CheckConstraint(condition=Q(incoming__gte=0), name="position_incoming_gte_0"),
        ]
        indexes = [models.Index(fields=["location", "sku"])]

    def __str__(self) -> str:
        return f"{self.sku_id}@{self.location_id}"

    @property
    def quantities(self) -> Quantities:
        return Quantities(self.on_hand, self.reserved, self.unsellable, self.incoming)

    @quantities.setter
    def quantities(self, value: Quantities) -> None:
        self.on_hand, self.reserved = value.on_hand, value.reserved
        self.unsellable, self.incoming = value.unsellable, value.incoming


class MovementKind(models.TextChoices):
    RECEIPT = "receipt", "Receipt"
    SALE = "sale", "Sale at the till"
    RETURN = "return", "Return"
    ADJUSTMENT = "adjustment", "Adjustment"
    UNSELLABLE_IN = "unsellable_in", "Set aside as unsellable"
    UNSELLABLE_OUT = "unsellable_out", "Back to sellable"
    WRITE_OFF = "write_off", "Unsellable units written off"
    TRANSFER_OUT = "transfer_out", "Transfer shipped out"
    TRANSFER_INCOMING = "transfer_incoming", "Transfer on its way in"
    TRANSFER_IN = "transfer_in", "Transfer received"
    TRANSFER_DISCREPANCY = "transfer_discrepancy", "Transfer discrepancy"
    RESERVE = "reserve", "Reserve"
    RELEASE = "release", "Release a reservation"
    COMMIT = "commit", "Commit a reservation (units leave)"


class AdjustmentReason(models.TextChoices):
    COUNT = "count", "Stock count"
    DAMAGE = "damage", "Damaged"
    SHRINKAGE = "shrinkage", "Shrinkage (loss, theft)"
    FOUND = "found", "Found"
    NOT_ON_SHELF = "not_on_shelf", "Not found on the shelf when picking"
    CORRECTION = "correction", "Correction"


class StockOperation(models.Model):
    """One call of a stock service: the unit of idempotency. Its movements share its key."""

    idempotency_key = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=40)
    request_hash = models.CharField(max_length=64)
    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, default=SalesChannel.BACKOFFICE
    )
    actor = models.CharField(
        max_length=150, blank=True, help_text="Who asked: api:<key> or staff:<user>."
    )
    reference = models.CharField(
        max_length=120, blank=True, help_text="Order, receipt or document number."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["reference"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.idempotency_key}"


class StockMovement(models.Model):
    """One append-only change of one position's quantities. Never updated, never deleted."""

    operation = models.ForeignKey(
        StockOperation, on_delete=models.PROTECT, related_name="movements"
    )
    position = models.ForeignKey(StockPosition, on_delete=models.PROTECT, related_name="movements")
    # Denormalised for filtering the ledger without joins.
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="+")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=24, choices=MovementKind.choices)
    reason = models.CharField(max_length=20, choices=AdjustmentReason.choices, blank=True)
    quantity = models.PositiveIntegerField(help_text="Units concerned (always positive).")
    on_hand_delta = models.IntegerField(default=0)
    reserved_delta = models.IntegerField(default=0)
    unsellable_delta = models.IntegerField(default=0)
    incoming_delta = models.IntegerField(default=0)
    reservation = models.ForeignKey(
        "Reservation", null=True, blank=True, on_delete=models.PROTECT, related_name="movements"
    )
    transfer = models.ForeignKey(
        "Transfer", null=True, blank=True, on_delete=models.PROTECT, related_name="movements"
    )
    note = models.CharField(max_length=255, blank=True)
    occurred_at = models.DateTimeField(
        help_text="When it happened (a till's own clock for POS events)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["position", "occurred_at"]),
            models.Index(fields=["sku", "-id"]),
            models.Index(fields=["location", "-id"]),
            models.Index(fields=["kind", "-id"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.quantity} of {self.sku_id}@{self.location_id}"


class ReservationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMMITTED = "committed", "Committed"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


class Reservation(models.Model):
    """Units of a SKU held at a location for an order or a cart, until committed or released."""

    position = models.ForeignKey(
        StockPosition, on_delete=models.PROTECT, related_name="reservations"
    )
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="+")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()
    committed_quantity = models.PositiveIntegerField(default=0)
    released_quantity = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=10, choices=ReservationStatus.choices, default=ReservationStatus.ACTIVE
    )
    channel = models.CharField(max_length=20, choices=SalesChannel.choices)
    reference = models.CharField(max_length=120, blank=True, help_text="Order or cart reference.")
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: held until released."
    )
    created_by_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(committed_quantity__lte=F("quantity") - F("released_quantity")),
                name="reservation_within_quantity",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"]),
            models.Index(fields=["reference"]),
        ]

    def __str__(self) -> str:
        return f"Reservation {self.pk} ({self.quantity} × {self.sku_id}@{self.location_id})"

    @property
    def open_quantity(self) -> int:
        return self.quantity - self.committed_quantity - self.released_quantity


class TransferStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    SHIPPED = "shipped", "Shipped"
    PARTIALLY_RECEIVED = "partially_received", "Partially received"
    RECEIVED = "received", "Received"
    CANCELLED = "cancelled", "Cancelled"


class Transfer(models.Model):
    source = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="transfers_out")
    destination = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="transfers_in")
    status = models.CharField(
        max_length=20, choices=TransferStatus.choices, default=TransferStatus.REQUESTED
    )
    reference = models.CharField(max_length=120, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_by_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(source=F("destination")), name="transfer_distinct_ends"
            ),
        ]

    def __str__(self) -> str:
        return f"Transfer {self.pk} {self.source_id}→{self.destination_id} ({self.status})"


class TransferLine(models.Model):
    transfer = models.ForeignKey(Transfer, on_delete=models.CASCADE, related_name="lines")
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="+")
    quantity_requested = models.PositiveIntegerField()
    quantity_shipped = models.PositiveIntegerField(default=0)
    quantity_received = models.PositiveIntegerField(default=0)
    discrepancy = models.IntegerField(
        default=0,
        help_text="received − shipped once the transfer is closed (negative: missing units).",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["transfer", "sku"], name="uniq_transfer_line_sku")
        ]

    def __str__(self) -> str:
        return f"{self.sku_id} × {self.quantity_requested}"


class TillDiscrepancy(models.Model):
    """A till sold units the ledger did not think were sellable.

    Recorded and flagged, never refused: the goods already left the shop.
    """

    movement = models.OneToOneField(
        StockMovement, on_delete=models.PROTECT, related_name="discrepancy"
    )
    on_hand_after = models.IntegerField()
    sellable_after = models.IntegerField(
        help_text="on_hand − reserved − unsellable after the sale."
    )
    resolved = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "till discrepancies"

    def __str__(self) -> str:
        return f"Discrepancy on movement {self.movement_id}"


class StockCount(models.Model):
    """A physical count of some SKUs at a location; each difference became an adjustment."""

    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="stock_counts")
    operation = models.OneToOneField(
        StockOperation, on_delete=models.PROTECT, related_name="stock_count"
    )
    counted_at = models.DateTimeField(help_text="When the shelf was counted.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Count {self.pk} at {self.location_id}"


class StockCountLine(models.Model):
    count = models.ForeignKey(StockCount, on_delete=models.CASCADE, related_name="lines")
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="+")
    expected = models.IntegerField(help_text="On hand according to the ledger at the count's time.")
    counted = models.PositiveIntegerField()
    difference = models.IntegerField()

    def __str__(self) -> str:
        return f"{self.sku_id}: {self.expected} → {self.counted}"

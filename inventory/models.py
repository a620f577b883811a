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
from django.utils.translation import gettext_lazy as _

from common.channels import SalesChannel
from inventory.validators import validate_gtin
from stores.models import Location


class Sku(models.Model):
    code = models.CharField(max_length=64, unique=True, verbose_name=_("code"))
    name = models.CharField(max_length=200, verbose_name=_("name"))
    barcode = models.CharField(
        max_length=14,
        unique=True,
        null=True,
        blank=True,
        validators=[validate_gtin],
        help_text=_("EAN-13 / GTIN, check digit verified."),
        verbose_name=_("barcode"),
    )
    category = models.CharField(
        max_length=80, blank=True, db_index=True, verbose_name=_("category")
    )
    attributes = models.JSONField(
        default=dict,
        blank=True,
        help_text=_('e.g. {"size": "M", "colour": "navy"}'),
        verbose_name=_("attributes"),
    )
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name_plural = _("SKUs")
        ordering = ["code"]
        verbose_name = _("SKU")

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

    sku = models.ForeignKey(
        Sku, on_delete=models.PROTECT, related_name="positions", verbose_name=_("sku")
    )
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="positions", verbose_name=_("location")
    )
    on_hand = models.IntegerField(default=0, verbose_name=_("on hand"))
    reserved = models.IntegerField(default=0, verbose_name=_("reserved"))
    unsellable = models.IntegerField(default=0, verbose_name=_("unsellable"))
    incoming = models.IntegerField(default=0, verbose_name=_("incoming"))
    safety_stock_override = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Overrides the location's safety stock for this SKU."),
        verbose_name=_("safety stock override"),
    )
    safety_stock = models.PositiveIntegerField(
        default=0, editable=False, verbose_name=_("safety stock")
    )
    available = models.GeneratedField(
        expression=Greatest(SELLABLE - F("safety_stock"), 0),
        output_field=models.IntegerField(),
        db_persist=True,
        verbose_name=_("available"),
    )
    available_at_till = models.GeneratedField(
        expression=Greatest(SELLABLE, 0),
        output_field=models.IntegerField(),
        db_persist=True,
        verbose_name=_("available at till"),
    )
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        # Stock writes by staff, in the admin and through the API with a staff session
        # (inventory.access): given to the groups by orders 0010.
        verbose_name = _("stock position")
        verbose_name_plural = _("stock positions")
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
    RECEIPT = "receipt", _("Receipt")
    SALE = "sale", _("Sale at the till")
    RETURN = "return", _("Return")
    ADJUSTMENT = "adjustment", _("Adjustment")
    UNSELLABLE_IN = "unsellable_in", _("Set aside as unsellable")
    UNSELLABLE_OUT = "unsellable_out", _("Back to sellable")
    WRITE_OFF = "write_off", _("Unsellable units written off")
    TRANSFER_OUT = "transfer_out", _("Transfer shipped out")
    TRANSFER_INCOMING = "transfer_incoming", _("Transfer on its way in")
    TRANSFER_IN = "transfer_in", _("Transfer received")
    TRANSFER_DISCREPANCY = "transfer_discrepancy", _("Transfer discrepancy")
    RESERVE = "reserve", _("Reserve")
    RELEASE = "release", _("Release a reservation")
    COMMIT = "commit", _("Commit a reservation (units leave)")


class AdjustmentReason(models.TextChoices):
    COUNT = "count", _("Stock count")
    DAMAGE = "damage", _("Damaged")
    SHRINKAGE = "shrinkage", _("Shrinkage (loss, theft)")
    FOUND = "found", _("Found")
    NOT_ON_SHELF = "not_on_shelf", _("Not found on the shelf when picking")
    CORRECTION = "correction", _("Correction")


class StockOperation(models.Model):
    """One call of a stock service: the unit of idempotency. Its movements share its key."""

    idempotency_key = models.CharField(
        max_length=255, unique=True, verbose_name=_("idempotency key")
    )
    kind = models.CharField(max_length=40, verbose_name=_("kind"))
    request_hash = models.CharField(max_length=64, verbose_name=_("request hash"))
    channel = models.CharField(
        max_length=20,
        choices=SalesChannel.choices,
        default=SalesChannel.BACKOFFICE,
        verbose_name=_("channel"),
    )
    actor = models.CharField(
        max_length=150,
        blank=True,
        help_text=_("Who asked: api:<key> or staff:<user>."),
        verbose_name=_("actor"),
    )
    reference = models.CharField(
        max_length=120,
        blank=True,
        help_text=_("Order, receipt or document number."),
        verbose_name=_("reference"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("stock operation")
        verbose_name_plural = _("stock operations")
        indexes = [models.Index(fields=["reference"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.idempotency_key}"


class StockMovement(models.Model):
    """One append-only change of one position's quantities. Never updated, never deleted."""

    operation = models.ForeignKey(
        StockOperation,
        on_delete=models.PROTECT,
        related_name="movements",
        verbose_name=_("operation"),
    )
    position = models.ForeignKey(
        StockPosition,
        on_delete=models.PROTECT,
        related_name="movements",
        verbose_name=_("position"),
    )
    # Denormalised for filtering the ledger without joins.
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="+", verbose_name=_("sku"))
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="+", verbose_name=_("location")
    )
    kind = models.CharField(max_length=24, choices=MovementKind.choices, verbose_name=_("kind"))
    reason = models.CharField(
        max_length=20, choices=AdjustmentReason.choices, blank=True, verbose_name=_("reason")
    )
    quantity = models.PositiveIntegerField(
        help_text=_("Units concerned (always positive)."), verbose_name=_("quantity")
    )
    on_hand_delta = models.IntegerField(default=0, verbose_name=_("on hand delta"))
    reserved_delta = models.IntegerField(default=0, verbose_name=_("reserved delta"))
    unsellable_delta = models.IntegerField(default=0, verbose_name=_("unsellable delta"))
    incoming_delta = models.IntegerField(default=0, verbose_name=_("incoming delta"))
    reservation = models.ForeignKey(
        "Reservation",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="movements",
        verbose_name=_("reservation"),
    )
    transfer = models.ForeignKey(
        "Transfer",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="movements",
        verbose_name=_("transfer"),
    )
    note = models.CharField(max_length=255, blank=True, verbose_name=_("note"))
    occurred_at = models.DateTimeField(
        help_text=_("When it happened (a till's own clock for POS events)."),
        verbose_name=_("occurred at"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("stock movement")
        verbose_name_plural = _("stock movements")
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
    ACTIVE = "active", _("Active")
    COMMITTED = "committed", _("Committed")
    RELEASED = "released", _("Released")
    EXPIRED = "expired", _("Expired")


class Reservation(models.Model):
    """Units of a SKU held at a location for an order or a cart, until committed or released."""

    position = models.ForeignKey(
        StockPosition,
        on_delete=models.PROTECT,
        related_name="reservations",
        verbose_name=_("position"),
    )
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="+", verbose_name=_("sku"))
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="+", verbose_name=_("location")
    )
    quantity = models.PositiveIntegerField(verbose_name=_("quantity"))
    committed_quantity = models.PositiveIntegerField(
        default=0, verbose_name=_("committed quantity")
    )
    released_quantity = models.PositiveIntegerField(default=0, verbose_name=_("released quantity"))
    status = models.CharField(
        max_length=10,
        choices=ReservationStatus.choices,
        default=ReservationStatus.ACTIVE,
        verbose_name=_("status"),
    )
    channel = models.CharField(
        max_length=20, choices=SalesChannel.choices, verbose_name=_("channel")
    )
    reference = models.CharField(
        max_length=120,
        blank=True,
        help_text=_("Order or cart reference."),
        verbose_name=_("reference"),
    )
    expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("Empty: held until released."),
        verbose_name=_("expires at"),
    )
    created_by_key = models.CharField(max_length=255, unique=True, verbose_name=_("created by key"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("reservation")
        verbose_name_plural = _("reservations")
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
    REQUESTED = "requested", _("Requested")
    SHIPPED = "shipped", _("Shipped")
    PARTIALLY_RECEIVED = "partially_received", _("Partially received")
    RECEIVED = "received", _("Received")
    CANCELLED = "cancelled", _("Cancelled")


class Transfer(models.Model):
    source = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="transfers_out", verbose_name=_("source")
    )
    destination = models.ForeignKey(
        Location,
        on_delete=models.PROTECT,
        related_name="transfers_in",
        verbose_name=_("destination"),
    )
    status = models.CharField(
        max_length=20,
        choices=TransferStatus.choices,
        default=TransferStatus.REQUESTED,
        verbose_name=_("status"),
    )
    reference = models.CharField(max_length=120, blank=True, verbose_name=_("reference"))
    requested_by = models.CharField(max_length=150, blank=True, verbose_name=_("requested by"))
    created_by_key = models.CharField(max_length=255, unique=True, verbose_name=_("created by key"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    shipped_at = models.DateTimeField(null=True, blank=True, verbose_name=_("shipped at"))
    received_at = models.DateTimeField(null=True, blank=True, verbose_name=_("received at"))

    class Meta:
        verbose_name = _("transfer")
        verbose_name_plural = _("transfers")
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(source=F("destination")), name="transfer_distinct_ends"
            ),
        ]

    def __str__(self) -> str:
        return f"Transfer {self.pk} {self.source_id}→{self.destination_id} ({self.status})"


class TransferLine(models.Model):
    transfer = models.ForeignKey(
        Transfer, on_delete=models.CASCADE, related_name="lines", verbose_name=_("transfer")
    )
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="+", verbose_name=_("sku"))
    quantity_requested = models.PositiveIntegerField(verbose_name=_("quantity requested"))
    quantity_shipped = models.PositiveIntegerField(default=0, verbose_name=_("quantity shipped"))
    quantity_received = models.PositiveIntegerField(default=0, verbose_name=_("quantity received"))
    discrepancy = models.IntegerField(
        default=0,
        help_text=_("received − shipped once the transfer is closed (negative: missing units)."),
        verbose_name=_("discrepancy"),
    )

    class Meta:
        verbose_name = _("transfer line")
        verbose_name_plural = _("transfer lines")
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
        StockMovement,
        on_delete=models.PROTECT,
        related_name="discrepancy",
        verbose_name=_("movement"),
    )
    on_hand_after = models.IntegerField(verbose_name=_("on hand after"))
    sellable_after = models.IntegerField(
        help_text=_("on_hand − reserved − unsellable after the sale."),
        verbose_name=_("sellable after"),
    )
    resolved = models.BooleanField(default=False, verbose_name=_("resolved"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("till discrepancy")
        verbose_name_plural = _("till discrepancies")

    def __str__(self) -> str:
        return f"Discrepancy on movement {self.movement_id}"


class StockCount(models.Model):
    """A physical count of some SKUs at a location; each difference became an adjustment."""

    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="stock_counts", verbose_name=_("location")
    )
    operation = models.OneToOneField(
        StockOperation,
        on_delete=models.PROTECT,
        related_name="stock_count",
        verbose_name=_("operation"),
    )
    counted_at = models.DateTimeField(
        help_text=_("When the shelf was counted."), verbose_name=_("counted at")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("stock count")
        verbose_name_plural = _("stock counts")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Count {self.pk} at {self.location_id}"


class StockCountLine(models.Model):
    count = models.ForeignKey(
        StockCount, on_delete=models.CASCADE, related_name="lines", verbose_name=_("count")
    )
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="+", verbose_name=_("sku"))
    expected = models.IntegerField(
        help_text=_("On hand according to the ledger at the count's time."),
        verbose_name=_("expected"),
    )
    counted = models.PositiveIntegerField(verbose_name=_("counted"))
    difference = models.IntegerField(verbose_name=_("difference"))

    class Meta:
        verbose_name = _("stock count line")
        verbose_name_plural = _("stock count lines")

    def __str__(self) -> str:
        return f"{self.sku_id}: {self.expected} → {self.counted}"

import zoneinfo

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone (e.g. Europe/Paris).")


class LocationKind(models.TextChoices):
    WAREHOUSE = "warehouse", "Warehouse"
    STORE = "store", "Store"


class Location(models.Model):
    """A place that holds stock: the warehouse or a store."""

    code = models.CharField(
        max_length=20,
        unique=True,
        validators=[
            RegexValidator(r"^[A-Z0-9][A-Z0-9_-]*$", "Upper-case letters, digits, - and _.")
        ],
    )
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=10, choices=LocationKind.choices, default=LocationKind.STORE)
    address_line = models.CharField(max_length=200, blank=True)
    postcode = models.CharField(max_length=12, blank=True)
    city = models.CharField(max_length=80, blank=True)
    country = models.CharField(max_length=2, default="FR")
    phone = models.CharField(
        max_length=20, blank=True, help_text="The store's own number (never taken as a customer's)."
    )
    latitude = models.DecimalField(
        max_digits=9, decimal_places=6, validators=[MinValueValidator(-90), MaxValueValidator(90)]
    )
    longitude = models.DecimalField(
        max_digits=9, decimal_places=6, validators=[MinValueValidator(-180), MaxValueValidator(180)]
    )
    timezone = models.CharField(
        max_length=64, default="Europe/Paris", validators=[validate_timezone]
    )

    is_active = models.BooleanField(default=True)
    allows_pickup = models.BooleanField("click & collect pickup", default=False)
    ships_from_location = models.BooleanField(
        "ships to customers",
        default=False,
        help_text="Warehouses ship by nature; a store ships only when this is on "
        "(ship-from-store).",
    )
    receives_transfers = models.BooleanField(default=True)

    preparation_minutes = models.PositiveIntegerField(
        default=120, help_text="Opening-hours minutes needed to prepare an order."
    )
    pickup_hold_days = models.PositiveIntegerField(
        default=7,
        help_text="Days a ready order is held for pickup before the stock goes back on sale.",
    )
    routing_priority = models.PositiveSmallIntegerField(
        default=100, help_text="Lower is preferred when the router ranks by priority."
    )
    safety_stock = models.PositiveIntegerField(
        default=0,
        help_text="Units kept back from online channels (per SKU, unless the SKU overrides).",
    )
    low_stock_threshold = models.PositiveIntegerField(
        default=2,
        help_text="An event is sent when a SKU's online availability falls to this level.",
    )
    daily_order_capacity = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most online orders prepared per day (empty: no cap)."
    )
    transfer_days_to_stores = models.PositiveSmallIntegerField(
        default=2, help_text="Days for a transfer from here to reach a store."
    )
    delivery_days = models.PositiveSmallIntegerField(
        default=2,
        help_text="Delivery days (Monday to Saturday) for a parcel shipped from here to reach a "
        "customer: the home delivery promise.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        indexes = [models.Index(fields=["is_active", "kind"])]

    def __str__(self) -> str:
        return f"{self.code} – {self.name}"

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def can_ship(self) -> bool:
        return self.kind == LocationKind.WAREHOUSE or self.ships_from_location


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class OpeningHours(models.Model):
    """One opening interval in local time; a day may have two (a lunch break)."""

    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="opening_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens_at = models.TimeField()
    closes_at = models.TimeField()

    class Meta:
        ordering = ["location", "weekday", "opens_at"]
        verbose_name_plural = "opening hours"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(opens_at__lt=models.F("closes_at")),
                name="opening_hours_opens_before_closes",
            ),
            models.UniqueConstraint(
                fields=["location", "weekday", "opens_at"], name="uniq_opening_interval"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens_at:%H:%M}–{self.closes_at:%H:%M}"


class Closure(models.Model):
    """An exceptional closed day (public holiday, inventory day, works)."""

    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="closures")
    date = models.DateField()
    reason = models.CharField(max_length=120, blank=True)

    class Meta:
        ordering = ["location", "date"]
        constraints = [
            models.UniqueConstraint(fields=["location", "date"], name="uniq_closure_day")
        ]

    def __str__(self) -> str:
        return f"{self.location.code} closed {self.date}"


class StaffAssignment(models.Model):
    """A staff user works at a location: the admin shows them that location's orders and stock
    only (store associates, store managers, warehouse operators)."""

    user = models.ForeignKey(
        "auth.User", on_delete=models.CASCADE, related_name="location_assignments"
    )
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="staff")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "location"], name="uniq_staff_location")
        ]

    def __str__(self) -> str:
        return f"{self.user.get_username()} works at {self.location.code}"

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone (e.g. Europe/Paris).")


class LocationKind(models.TextChoices):
    WAREHOUSE = "warehouse", _("Warehouse")
    STORE = "store", _("Store")


class Location(models.Model):
    """A place that holds stock: the warehouse or a store."""

    code = models.CharField(
        max_length=20,
        unique=True,
        validators=[
            RegexValidator(r"^[A-Z0-9][A-Z0-9_-]*$", "Upper-case letters, digits, - and _.")
        ],
        verbose_name=_("code"),
    )
    name = models.CharField(max_length=120, verbose_name=_("name"))
    kind = models.CharField(
        max_length=10,
        choices=LocationKind.choices,
        default=LocationKind.STORE,
        verbose_name=_("kind"),
    )
    address_line = models.CharField(max_length=200, blank=True, verbose_name=_("address line"))
    postcode = models.CharField(max_length=12, blank=True, verbose_name=_("postcode"))
    city = models.CharField(max_length=80, blank=True, verbose_name=_("city"))
    country = models.CharField(max_length=2, default="FR", verbose_name=_("country"))
    phone = models.CharField(
        max_length=20,
        blank=True,
        help_text=_("The store's own number (never taken as a customer's)."),
        verbose_name=_("phone"),
    )
    latitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        validators=[MinValueValidator(-90), MaxValueValidator(90)],
        verbose_name=_("latitude"),
    )
    longitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        validators=[MinValueValidator(-180), MaxValueValidator(180)],
        verbose_name=_("longitude"),
    )
    timezone = models.CharField(
        max_length=64,
        default="Europe/Paris",
        validators=[validate_timezone],
        verbose_name=_("timezone"),
    )

    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    allows_pickup = models.BooleanField(_("click & collect pickup"), default=False)
    ships_from_location = models.BooleanField(
        _("ships to customers"),
        default=False,
        help_text=_(
            "Warehouses ship by nature; a store ships only when this is on (ship-from-store)."
        ),
    )
    receives_transfers = models.BooleanField(default=True, verbose_name=_("receives transfers"))

    preparation_minutes = models.PositiveIntegerField(
        default=120,
        help_text=_("Opening-hours minutes needed to prepare an order."),
        verbose_name=_("preparation minutes"),
    )
    pickup_hold_days = models.PositiveIntegerField(
        default=7,
        help_text=_("Days a ready order is held for pickup before the stock goes back on sale."),
        verbose_name=_("pickup hold days"),
    )
    routing_priority = models.PositiveSmallIntegerField(
        default=100,
        help_text=_("Lower is preferred when the router ranks by priority."),
        verbose_name=_("routing priority"),
    )
    safety_stock = models.PositiveIntegerField(
        default=0,
        help_text=_("Units kept back from online channels (per SKU, unless the SKU overrides)."),
        verbose_name=_("safety stock"),
    )
    low_stock_threshold = models.PositiveIntegerField(
        default=2,
        help_text=_("An event is sent when a SKU's online availability falls to this level."),
        verbose_name=_("low stock threshold"),
    )
    daily_order_capacity = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Most online orders prepared per day (empty: no cap)."),
        verbose_name=_("daily order capacity"),
    )
    transfer_days_to_stores = models.PositiveSmallIntegerField(
        default=2,
        help_text=_("Days for a transfer from here to reach a store."),
        verbose_name=_("transfer days to stores"),
    )
    delivery_days = models.PositiveSmallIntegerField(
        default=2,
        help_text=_(
            "Delivery days (Monday to Saturday) for a parcel shipped from here to reach a "
            "customer: the home delivery promise."
        ),
        verbose_name=_("delivery days"),
    )

    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("location")
        verbose_name_plural = _("locations")
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
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class OpeningHours(models.Model):
    """One opening interval in local time; a day may have two (a lunch break)."""

    location = models.ForeignKey(
        Location, on_delete=models.CASCADE, related_name="opening_hours", verbose_name=_("location")
    )
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices, verbose_name=_("weekday"))
    opens_at = models.TimeField(verbose_name=_("opens at"))
    closes_at = models.TimeField(verbose_name=_("closes at"))

    class Meta:
        verbose_name = _("opening hours")
        ordering = ["location", "weekday", "opens_at"]
        verbose_name_plural = _("opening hours")
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

    location = models.ForeignKey(
        Location, on_delete=models.CASCADE, related_name="closures", verbose_name=_("location")
    )
    date = models.DateField(verbose_name=_("date"))
    reason = models.CharField(max_length=120, blank=True, verbose_name=_("reason"))

    class Meta:
        verbose_name = _("closure")
        verbose_name_plural = _("closures")
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
        "auth.User",
        on_delete=models.CASCADE,
        related_name="location_assignments",
        verbose_name=_("user"),
    )
    location = models.ForeignKey(
        Location, on_delete=models.CASCADE, related_name="staff", verbose_name=_("location")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("staff assignment")
        verbose_name_plural = _("staff assignments")
        constraints = [
            models.UniqueConstraint(fields=["user", "location"], name="uniq_staff_location")
        ]

    def __str__(self) -> str:
        return f"{self.user.get_username()} works at {self.location.code}"


class StaffPreference(models.Model):
    """What a staff member chose for herself in the back office: the language she reads it in
    (empty: the browser's). It follows her from one tablet to the next, unlike a cookie."""

    user = models.OneToOneField(
        "auth.User",
        on_delete=models.CASCADE,
        related_name="staff_preference",
        verbose_name=_("user"),
    )
    language = models.CharField(
        max_length=10,
        blank=True,
        choices=settings.LANGUAGES,
        verbose_name=_("language"),
        help_text=_("Empty: the language of the browser."),
    )
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("staff preference")
        verbose_name_plural = _("staff preferences")

    def __str__(self) -> str:
        return f"{self.user.get_username()}: {self.language or 'browser language'}"

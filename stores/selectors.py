"""Reads with rules in them: pickup promises from opening hours, and distances."""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from common.exceptions import NotFound
from stores.models import Closure, Location, OpeningHours

EARTH_RADIUS_KM = 6371.0088
# A store with no opening in this many days gets no pickup promise at all.
PROMISE_HORIZON_DAYS = 21


def location_get(*, code: str) -> Location:
    location = Location.objects.filter(code=code).first()
    if location is None:
        raise NotFound(f"No location with code {code!r}.", details={"location": ["unknown"]})
    return location


def locations_with_calendar(queryset: QuerySet | None = None) -> QuerySet:
    """Locations with their opening hours and upcoming closures prefetched (no query per store)."""
    queryset = Location.objects.all() if queryset is None else queryset
    today = timezone.now().date() - timedelta(days=1)
    return queryset.prefetch_related(
        Prefetch("opening_hours", queryset=OpeningHours.objects.order_by("weekday", "opens_at")),
        Prefetch("closures", queryset=Closure.objects.filter(date__gte=today)),
    )


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


@dataclass(frozen=True)
class _Interval:
    opens: datetime
    closes: datetime


def _intervals_on(location: Location, day: date, closed_days: set[date]) -> list[_Interval]:
    if day in closed_days:
        return []
    tz = location.tz
    intervals = []
    for hours in location.opening_hours.all():
        if hours.weekday == day.weekday():
            intervals.append(
                _Interval(
                    opens=datetime.combine(day, hours.opens_at, tzinfo=tz),
                    closes=datetime.combine(day, hours.closes_at, tzinfo=tz),
                )
            )
    return sorted(intervals, key=lambda interval: interval.opens)


def location_ready_by(
    location: Location,
    *,
    at: datetime | None = None,
    work_minutes: int | None = None,
    not_before: datetime | None = None,
) -> datetime | None:
    """When an order placed `at` is ready at `location`, in the location's time zone.

    Preparation only happens while the location is open: `work_minutes` (default: its preparation
    lead time) are counted through its opening intervals, skipping closed days. An order at 19:55
    in a store closing at 20:00 with a two-hour lead time is ready at 11:55 the next opening day
    (5 minutes tonight, 115 tomorrow). `not_before` delays the start (e.g. a transfer's arrival).
    Returns None when the location has no opening in the next three weeks.
    """
    at = at or timezone.now()
    start = max(at, not_before) if not_before else at
    remaining = timedelta(
        minutes=location.preparation_minutes if work_minutes is None else work_minutes
    )
    tz = location.tz
    cursor = start.astimezone(tz)
    closed_days = {closure.date for closure in location.closures.all()}
    day = cursor.date()
    for _ in range(PROMISE_HORIZON_DAYS):
        for interval in _intervals_on(location, day, closed_days):
            begin = max(cursor, interval.opens)
            if begin >= interval.closes:
                continue
            available = interval.closes - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
            cursor = interval.closes
        day += timedelta(days=1)
        cursor = max(cursor, datetime.combine(day, time.min, tzinfo=tz))
    return None


def location_is_open(location: Location, *, at: datetime | None = None) -> bool:
    at = (at or timezone.now()).astimezone(location.tz)
    closed_days = {closure.date for closure in location.closures.all()}
    return any(i.opens <= at < i.closes for i in _intervals_on(location, at.date(), closed_days))


def locations_by_distance(
    locations: Iterable[Location],
    *,
    latitude: float,
    longitude: float,
    radius_km: float | None = None,
) -> list[tuple[Location, float]]:
    ranked = []
    for location in locations:
        km = distance_km(latitude, longitude, float(location.latitude), float(location.longitude))
        if radius_km is None or km <= radius_km:
            ranked.append((location, km))
    ranked.sort(key=lambda pair: (pair[1], pair[0].code))
    return ranked

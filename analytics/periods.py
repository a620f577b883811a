"""The period a KPI table covers: a date range on the report's clock, cut into days, weeks or
months, optionally one sales channel and some locations (store staff: their stores only)."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db.models import DateField
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from common.channels import SalesChannel
from common.exceptions import InvalidInput

GRANULARITIES = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}
MAX_DAYS = 400  # a year and a bit: last year's same period stays comparable
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)


@dataclass(frozen=True)
class Period:
    first_day: date
    last_day: date  # inclusive
    granularity: str = "day"
    channel: str | None = None
    location_ids: tuple[int, ...] | None = None  # None: every location

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(settings.REPORTS_TIME_ZONE)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time.min, tzinfo=self.zone)

    @property
    def end(self) -> datetime:  # exclusive
        return datetime.combine(self.last_day + timedelta(days=1), time.min, tzinfo=self.zone)

    def bucket(self, field: str):
        """The day, week (Monday) or month a timestamp falls in, on the report's clock."""
        return GRANULARITIES[self.granularity](field, tzinfo=self.zone, output_field=DateField())

    def within(self, field: str) -> dict:
        return {f"{field}__gte": self.start, f"{field}__lt": self.end}

    def days(self) -> list[date]:
        return [
            self.first_day + timedelta(days=n)
            for n in range((self.last_day - self.first_day).days + 1)
        ]


def period_parse(
    *,
    first_day: date | None,
    last_day: date | None,
    granularity: str | None = None,
    channel: str | None = None,
    location_ids: list[int] | None = None,
) -> Period:
    """A Period from request parameters: the last 28 days by default, at most MAX_DAYS."""
    today = timezone.localdate(timezone=zoneinfo.ZoneInfo(settings.REPORTS_TIME_ZONE))
    last_day = last_day or today
    first_day = first_day or last_day - timedelta(days=27)
    if not (EARLIEST <= first_day <= LATEST and EARLIEST <= last_day <= LATEST):
        raise InvalidInput(
            f"Dates are between {EARLIEST} and {LATEST}.", details={"from": ["out of range"]}
        )
    if first_day > last_day:
        raise InvalidInput("`from` is after `to`.", details={"from": ["after to"]})
    if (last_day - first_day).days >= MAX_DAYS:
        raise InvalidInput(
            f"A report covers at most {MAX_DAYS} days.", details={"to": [f"≤ {MAX_DAYS} days"]}
        )
    granularity = granularity or "day"
    if granularity not in GRANULARITIES:
        raise InvalidInput(
            f"granularity is one of {list(GRANULARITIES)}.", details={"granularity": ["invalid"]}
        )
    if channel and channel not in SalesChannel.values:
        raise InvalidInput(
            f"channel is one of {SalesChannel.values}.", details={"channel": ["invalid"]}
        )
    return Period(
        first_day=first_day,
        last_day=last_day,
        granularity=granularity,
        channel=channel or None,
        location_ids=tuple(sorted(location_ids)) if location_ids is not None else None,
    )

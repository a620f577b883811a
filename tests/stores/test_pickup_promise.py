"""When is an order ready? Preparation counts only while the store is open, in its time zone."""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from stores.models import Closure
from stores.selectors import distance_km, location_is_open, location_ready_by
from tests.factories import LocationFactory

pytestmark = pytest.mark.django_db
PARIS = ZoneInfo("Europe/Paris")


def at(*args, tz=PARIS):
    return datetime(*args, tzinfo=tz)


def test_order_at_1955_in_a_store_closing_at_20_is_ready_the_next_opening_day():
    store = LocationFactory(preparation_minutes=60)  # Mon–Sat 10:00–20:00

    ready = location_ready_by(store, at=at(2026, 11, 24, 19, 55))  # a Tuesday

    # 5 minutes tonight, the remaining 55 tomorrow from opening.
    assert ready == at(2026, 11, 25, 10, 55)


def test_order_during_opening_hours_is_ready_after_the_lead_time():
    store = LocationFactory(preparation_minutes=60)
    assert location_ready_by(store, at=at(2026, 11, 24, 14, 0)) == at(2026, 11, 24, 15, 0)


def test_order_on_saturday_evening_waits_for_monday_when_closed_on_sunday():
    store = LocationFactory(preparation_minutes=30)
    assert location_ready_by(store, at=at(2026, 11, 28, 21, 0)) == at(2026, 11, 30, 10, 30)


def test_exceptional_closure_is_skipped():
    store = LocationFactory(preparation_minutes=30)
    Closure.objects.create(location=store, date=date(2026, 12, 25), reason="Christmas")
    assert location_ready_by(store, at=at(2026, 12, 24, 19, 45)) == at(2026, 12, 26, 10, 15)


def test_lunch_break_is_not_preparation_time():
    store = LocationFactory(
        preparation_minutes=60,
        hours=[(day, time(9), time(12)) for day in range(7)]
        + [(day, time(14), time(18)) for day in range(7)],
    )
    assert location_ready_by(store, at=at(2026, 11, 24, 11, 30)) == at(2026, 11, 24, 14, 30)


def test_promise_is_given_in_the_store_time_zone_whatever_the_order_time_zone():
    store = LocationFactory(preparation_minutes=60, timezone="America/Martinique")
    ordered = datetime(2026, 11, 24, 18, 0, tzinfo=ZoneInfo("UTC"))  # 14:00 in Martinique
    ready = location_ready_by(store, at=ordered)
    assert ready.tzinfo == ZoneInfo("America/Martinique")
    assert (ready.hour, ready.minute) == (15, 0)


def test_store_that_never_opens_gives_no_promise():
    store = LocationFactory(hours=[])
    assert location_ready_by(store, at=at(2026, 11, 24, 12, 0)) is None


def test_is_open():
    store = LocationFactory()
    assert location_is_open(store, at=at(2026, 11, 24, 12, 0))
    assert not location_is_open(store, at=at(2026, 11, 24, 20, 0))
    assert not location_is_open(store, at=at(2026, 11, 29, 12, 0))  # Sunday


def test_distance_paris_lyon():
    assert 390 < distance_km(48.8566, 2.3522, 45.7640, 4.8357) < 393

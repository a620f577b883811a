"""Events dated by a till's clock produce the same stock whatever order they arrive in."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from inventory import services
from inventory.selectors import ledger_mismatches
from tests.factories import LocationFactory, SkuFactory
from tests.inventory.conftest import position

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _events(store, sku):
    """A morning at a till: two sales, a count, a return, a second count, a last sale."""
    return [
        (
            "sale-1",
            lambda: services.stock_sell_at_till(
                location_id=store.pk,
                lines=[(sku.pk, 1)],
                idempotency_key=f"{store.pk}-sale-1",
                occurred_at=T0 + timedelta(minutes=10),
            ),
        ),
        (
            "sale-2",
            lambda: services.stock_sell_at_till(
                location_id=store.pk,
                lines=[(sku.pk, 2)],
                idempotency_key=f"{store.pk}-sale-2",
                occurred_at=T0 + timedelta(minutes=20),
            ),
        ),
        (
            "count-1",
            lambda: services.stock_count_apply(
                location_id=store.pk,
                counts=[(sku.pk, 6)],
                idempotency_key=f"{store.pk}-count-1",
                counted_at=T0 + timedelta(minutes=30),
            ),
        ),
        (
            "return-1",
            lambda: services.stock_return(
                location_id=store.pk,
                lines=[(sku.pk, 1)],
                idempotency_key=f"{store.pk}-return-1",
                occurred_at=T0 + timedelta(minutes=40),
            ),
        ),
        (
            "count-2",
            lambda: services.stock_count_apply(
                location_id=store.pk,
                counts=[(sku.pk, 5)],
                idempotency_key=f"{store.pk}-count-2",
                counted_at=T0 + timedelta(minutes=50),
            ),
        ),
        (
            "sale-3",
            lambda: services.stock_sell_at_till(
                location_id=store.pk,
                lines=[(sku.pk, 1)],
                idempotency_key=f"{store.pk}-sale-3",
                occurred_at=T0 + timedelta(minutes=60),
            ),
        ),
    ]


def _final_on_hand(order):
    store, sku = LocationFactory(), SkuFactory()
    # The opening stock, dated before the morning's events.
    services.stock_return(
        location_id=store.pk,
        lines=[(sku.pk, 10)],
        idempotency_key=f"{store.pk}-open",
        occurred_at=T0 - timedelta(hours=1),
    )
    events = dict(_events(store, sku))
    for name in order:
        events[name]()
    assert ledger_mismatches(position_ids=[position(store, sku).pk]) == []
    return position(store, sku).on_hand


def test_live_order_gives_the_counts_truth():
    live = ["sale-1", "sale-2", "count-1", "return-1", "count-2", "sale-3"]
    # The last count said 5, then one more unit was sold.
    assert _final_on_hand(live) == 4


@pytest.mark.parametrize(
    "order",
    [
        ["sale-3", "count-2", "return-1", "count-1", "sale-2", "sale-1"],  # fully reversed
        ["count-2", "count-1", "sale-1", "sale-2", "sale-3", "return-1"],  # counts first
        ["sale-1", "count-1", "sale-3", "sale-2", "count-2", "return-1"],
        ["return-1", "sale-3", "count-1", "count-2", "sale-1", "sale-2"],
    ],
)
def test_any_arrival_order_ends_with_the_same_stock_as_live(order):
    assert _final_on_hand(order) == 4


def test_every_permutation_of_a_sale_and_two_counts_agrees():
    results = set()
    for order in itertools.permutations(["sale-2", "count-1", "count-2"]):
        results.add(_final_on_hand(["sale-1", *order]))
    # Without the return and the last sale: the last count's 5 stands.
    assert results == {5}

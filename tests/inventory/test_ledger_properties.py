"""Property-based: whatever sequence of stock operations runs, the ledger's invariants hold."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.exceptions import DomainError
from inventory import services
from inventory.models import Reservation, ReservationStatus, StockPosition
from inventory.selectors import ledger_mismatches
from tests.factories import LocationFactory, SkuFactory

pytestmark = pytest.mark.django_db

operation = st.one_of(
    st.tuples(st.just("receive"), st.integers(1, 5)),
    st.tuples(st.just("sell"), st.integers(1, 5)),
    st.tuples(st.just("adjust"), st.integers(-5, 5).filter(bool)),
    st.tuples(st.just("reserve_web"), st.integers(1, 5)),
    st.tuples(st.just("reserve_till"), st.integers(1, 5)),
    st.tuples(st.just("release"), st.integers(0, 10)),
    st.tuples(st.just("commit"), st.integers(0, 10)),
    st.tuples(st.just("set_aside"), st.integers(1, 3)),
    st.tuples(st.just("restore"), st.integers(1, 3)),
    st.tuples(st.just("count"), st.integers(0, 10)),
    st.tuples(st.just("safety"), st.integers(0, 3)),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(operation, min_size=1, max_size=25))
def test_random_operation_sequences_keep_the_ledger_consistent(steps):
    store, sku = LocationFactory(), SkuFactory()
    keys = itertools.count()

    def key():
        return f"prop-{store.pk}-{next(keys)}"

    for name, value in steps:
        open_reservations = list(
            Reservation.objects.filter(
                location=store, sku=sku, status=ReservationStatus.ACTIVE
            ).order_by("pk")
        )
        try:
            if name == "receive":
                services.stock_receive(
                    location_id=store.pk, lines=[(sku.pk, value)], idempotency_key=key()
                )
            elif name == "sell":
                services.stock_sell_at_till(
                    location_id=store.pk, lines=[(sku.pk, value)], idempotency_key=key()
                )
            elif name == "adjust":
                services.stock_adjust(
                    location_id=store.pk,
                    sku_id=sku.pk,
                    delta=value,
                    reason="correction",
                    idempotency_key=key(),
                )
            elif name in {"reserve_web", "reserve_till"}:
                services.reservation_create(
                    sku_id=sku.pk,
                    location_id=store.pk,
                    quantity=value,
                    idempotency_key=key(),
                    ttl_seconds=0,
                    channel="web" if name == "reserve_web" else "store",
                )
            elif name in {"release", "commit"} and open_reservations:
                target = open_reservations[value % len(open_reservations)]
                if name == "release":
                    services.reservation_release(reservation_id=target.pk, idempotency_key=key())
                else:
                    services.reservation_commit(reservation_id=target.pk, idempotency_key=key())
            elif name in {"set_aside", "restore"}:
                services.stock_set_aside(
                    location_id=store.pk,
                    sku_id=sku.pk,
                    quantity=value,
                    reason="damage",
                    restore=name == "restore",
                    idempotency_key=key(),
                )
            elif name == "count":
                services.stock_count_apply(
                    location_id=store.pk, counts=[(sku.pk, value)], idempotency_key=key()
                )
            elif name == "safety":
                services.safety_stock_set(location_id=store.pk, quantity=value)
        except DomainError:
            pass  # a refused operation must leave everything as it was: checked below

        position = StockPosition.objects.filter(location=store, sku=sku).first()
        if position is None:
            continue
        open_held = sum(
            r.open_quantity for r in Reservation.objects.filter(location=store, sku=sku)
        )
        assert position.reserved == open_held
        assert position.reserved >= 0 and position.unsellable >= 0 and position.incoming >= 0
        assert position.available == max(
            position.on_hand - position.reserved - position.unsellable - position.safety_stock, 0
        )
        assert 0 <= position.available <= position.available_at_till
        assert ledger_mismatches(position_ids=[position.pk]) == []

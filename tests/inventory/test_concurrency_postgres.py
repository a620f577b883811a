"""Concurrency guarantees on a real PostgreSQL server (`make test` starts one)."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections, transaction

from inventory import services
from inventory.exceptions import InsufficientStock
from inventory.models import Reservation, StockMovement, StockOperation
from inventory.selectors import ledger_mismatches
from tests.factories import LocationFactory, SkuFactory, WarehouseFactory
from tests.inventory.conftest import position, receive

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(workers: int, call):
    """Run `call(i)` in `workers` threads released together; return results or exceptions."""
    barrier = threading.Barrier(workers)

    def run(index):
        try:
            barrier.wait()
            return call(index)
        except Exception as exc:  # collected and asserted on below
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, range(workers)))


def test_24_workers_racing_for_10_units_get_exactly_10_and_the_rest_are_refused():
    assert connection.vendor == "postgresql"
    store, sku = LocationFactory(code="PARIS01"), SkuFactory()
    receive(store, sku, 10)

    # 24 workers each want 1 unit of the last 10: exactly 10 must win.
    outcomes = _race(
        24,
        lambda i: services.reservation_create(
            sku_id=sku.pk,
            location_id=store.pk,
            quantity=1,
            idempotency_key=f"race-{i}",
            channel="web",
        ),
    )

    granted = [o for o in outcomes if isinstance(o, Reservation)]
    refused = [o for o in outcomes if isinstance(o, InsufficientStock)]
    others = [o for o in outcomes if not isinstance(o, (Reservation, InsufficientStock))]
    assert others == []  # no deadlock, no serialization failure, no crash
    assert (len(granted), len(refused)) == (10, 14)
    pos = position(store, sku)
    assert (pos.on_hand, pos.reserved, pos.available) == (10, 10, 0)
    assert Reservation.objects.count() == 10
    assert ledger_mismatches() == []


def test_workers_asking_for_several_units_never_oversell():
    store, sku = LocationFactory(), SkuFactory()
    receive(store, sku, 25)

    outcomes = _race(
        20,
        lambda i: services.reservation_create(
            sku_id=sku.pk,
            location_id=store.pk,
            quantity=1 + i % 4,
            idempotency_key=f"multi-{i}",
            channel="web",
        ),
    )

    granted = sum(o.quantity for o in outcomes if isinstance(o, Reservation))
    assert all(isinstance(o, (Reservation, InsufficientStock)) for o in outcomes)
    assert granted <= 25
    pos = position(store, sku)
    assert pos.reserved == granted
    assert pos.available == 25 - granted
    # Whatever was refused asked for more than what was left at its turn.
    assert (
        min(
            (
                o.details["lines"][0]["requested"]
                for o in outcomes
                if isinstance(o, InsufficientStock)
            ),
            default=99,
        )
        > pos.available
    )
    assert ledger_mismatches() == []


def test_multi_line_orders_locking_in_opposite_orders_never_deadlock():
    store, warehouse = LocationFactory(), WarehouseFactory()
    skus = [SkuFactory() for _ in range(4)]
    for sku in skus:
        receive(store, sku, 50)
        receive(warehouse, sku, 50)

    def order(i):
        lines = [
            services.ReservationRequest(sku.pk, loc.pk, 1)
            for sku in skus
            for loc in (store, warehouse)
        ]
        if i % 2:
            lines.reverse()  # the other half asks for the same rows in the opposite order
        return services.reservations_create(
            requests=lines, idempotency_key=f"dl-{i}", channel="web"
        )

    outcomes = _race(20, order)

    assert all(isinstance(o, list) for o in outcomes), [
        o for o in outcomes if not isinstance(o, list)
    ]
    assert Reservation.objects.count() == 20 * 8
    assert ledger_mismatches() == []


def test_the_same_idempotency_key_sent_by_many_workers_at_once_applies_once():
    store, sku = LocationFactory(), SkuFactory()

    outcomes = _race(
        20,
        lambda i: services.stock_receive(
            location_id=store.pk, lines=[(sku.pk, 5)], idempotency_key="delivery-9"
        ),
    )

    assert len({o.pk for o in outcomes}) == 1
    assert sum(1 for o in outcomes if not o.replayed) == 1
    assert position(store, sku).on_hand == 5
    assert StockOperation.objects.count() == 1 and StockMovement.objects.count() == 1


def test_one_api_request_retried_by_many_clients_at_once_reserves_once(api_client_factory):
    """The API's idempotency record is claimed with INSERT … ON CONFLICT DO NOTHING: a retry
    arriving while the first is in flight waits for it, then replays its response."""
    store, sku = LocationFactory(), SkuFactory()
    receive(store, sku, 50)
    client = api_client_factory()
    body = json.dumps({"lines": [{"sku": sku.code, "location": store.code, "quantity": 2}]})

    responses = _race(
        16,
        lambda i: client.post(
            "/api/v1/reservations/",
            data=body,
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="checkout-77",
        ),
    )

    assert {r.status_code for r in responses} == {201}
    assert len({json.dumps(r.json(), sort_keys=True) for r in responses}) == 1
    assert sum(1 for r in responses if "Idempotent-Replayed" not in r.headers) == 1
    assert position(store, sku).reserved == 2
    assert Reservation.objects.count() == 1
    assert ledger_mismatches() == []


@pytest.mark.parametrize("positions_received", [1, 2], ids=["one-position", "set-based"])
def test_a_transaction_that_changed_a_position_then_reserves_it_never_deadlocks_a_reserver(
    positions_received,
):
    """Every writer queues on the position's advisory lock before its row. Found by review: a
    receipt (general path) followed by a one-line reservation in the same transaction, as a
    transfer received for an order does, deadlocked with a reservation of that position
    arriving in between when only the one-statement reservation queued."""
    store, sku, other_sku = LocationFactory(), SkuFactory(), SkuFactory()
    receive(store, sku, 5)
    received = [(sku.pk, 3), (other_sku.pk, 1)][:positions_received]
    row_held = threading.Event()

    def reserve(quantity, key):
        return services.reservation_create(
            sku_id=sku.pk,
            location_id=store.pk,
            quantity=quantity,
            idempotency_key=key,
            channel="web",
        )

    def receive_then_reserve():
        with transaction.atomic():
            services.stock_receive(
                location_id=store.pk, lines=received, idempotency_key="transfer-in"
            )
            row_held.set()
            time.sleep(0.5)  # the other reserver arrives meanwhile
            reserve(2, "for-order")

    def reserve_meanwhile():
        row_held.wait(5)
        reserve(1, "shopper")

    errors = [
        outcome
        for outcome in _race(2, lambda i: (receive_then_reserve, reserve_meanwhile)[i]())
        if isinstance(outcome, Exception)
    ]

    assert errors == []
    assert (position(store, sku).on_hand, position(store, sku).reserved) == (8, 3)
    assert ledger_mismatches() == []


def test_a_safety_stock_change_never_deadlocks_with_a_reservation_at_the_same_store():
    """Found by review: the location's row was locked FOR UPDATE, which blocks the foreign-key
    checks a reservation at that store makes at its commit, while the change waited for the
    reservation's position."""
    store, sku = LocationFactory(), SkuFactory()
    receive(store, sku, 5)
    position_held = threading.Event()

    def reserve_in_a_transaction():
        with transaction.atomic():
            services.reservation_create(
                sku_id=sku.pk,
                location_id=store.pk,
                quantity=1,
                idempotency_key="cart-1",
                channel="web",
            )
            position_held.set()
            time.sleep(0.5)  # the safety stock change arrives meanwhile

    def change_safety_stock():
        position_held.wait(5)
        return services.safety_stock_set(location_id=store.pk, quantity=1)

    outcomes = _race(2, lambda i: (reserve_in_a_transaction, change_safety_stock)[i]())

    assert [o for o in outcomes if isinstance(o, Exception)] == []
    assert (position(store, sku).reserved, position(store, sku).safety_stock) == (1, 1)


def test_till_backlogs_applied_in_batches_race_reservations_without_deadlock_or_drift():
    """8 batches of overlapping sales (lines in opposite orders) and 16 single reservations at
    once: every call succeeds and the ledger still adds up. (Batches lock their positions in
    key order, as single operations do; this race is too short-lived to prove that part alone.)"""
    stores = LocationFactory.create_batch(2)
    skus = SkuFactory.create_batch(6)
    for location in stores:
        for sku in skus:
            receive(location, sku, 100)

    def work(index):
        if index % 3 == 0:  # a batch of 20 receipts over every position
            order = skus if index % 2 else list(reversed(skus))
            return services.stock_sell_at_till_many(
                [
                    services.TillSale(
                        location_id=stores[n % 2].pk,
                        lines=[(sku.pk, 1) for sku in order],
                        idempotency_key=f"batch-{index}-{n}",
                    )
                    for n in range(20)
                ]
            )
        sku = skus[index % len(skus)]
        return services.reservation_create(
            sku_id=sku.pk,
            location_id=stores[index % 2].pk,
            quantity=1,
            idempotency_key=f"hold-{index}",
            channel="web",
        )

    outcomes = _race(24, work)

    assert [o for o in outcomes if isinstance(o, Exception)] == []
    sold = StockMovement.objects.filter(kind="sale").count()
    assert sold == 8 * 20 * len(skus)
    assert ledger_mismatches() == []

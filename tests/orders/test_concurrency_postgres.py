"""Orders racing for the last units, on a real PostgreSQL server (`make test` starts one)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connections

from inventory.models import Reservation, StockPosition
from inventory.selectors import ledger_mismatches
from orders import services
from orders.exceptions import LineRefundExceedsQuantity, OutOfStock
from orders.models import Order
from payments.selectors import order_payment_summary
from tests.customers.factories import CustomerFactory
from tests.factories import LocationFactory, SkuFactory, WarehouseFactory
from tests.orders.conftest import line, place_delivery, place_pickup, receive
from tests.orders.test_payment_wiring import _paid_two_lines

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(workers: int, call):
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


def test_two_orders_for_the_last_units_of_the_nearest_store_one_is_routed_elsewhere():
    # given the nearest ship-from-store holds the last 2 units, a far warehouse 2 more
    customer = CustomerFactory()
    sku = SkuFactory()
    near = LocationFactory(code="NEAR", ships_from_location=True)
    far = WarehouseFactory(code="FAR", latitude="45.764043", longitude="4.835659")
    receive(near, sku, 2)
    receive(far, sku, 2)

    # when two orders for 2 units race (both routers see NEAR first)
    outcomes = _race(2, lambda i: place_delivery(customer, [line(sku, 2)], key=f"race-{i}"))

    # then both are accepted, one from each location, and nothing is oversold
    assert all(isinstance(o, Order) for o in outcomes), outcomes
    served = sorted(
        Reservation.objects.filter(status="active").values_list("location__code", flat=True)
    )
    assert served == ["FAR", "NEAR"]
    for position in StockPosition.objects.all():
        assert position.reserved <= position.on_hand
    assert ledger_mismatches() == []


def test_many_orders_for_one_last_unit_one_wins_the_others_are_refused_naming_the_line():
    customer = CustomerFactory()
    sku = SkuFactory(code="LAST-ONE")
    store = LocationFactory(code="PARIS01")
    receive(store, sku, 1)

    outcomes = _race(8, lambda i: place_pickup(customer, store, [line(sku)], key=f"last-{i}"))

    won = [o for o in outcomes if isinstance(o, Order)]
    refused = [o for o in outcomes if isinstance(o, OutOfStock)]
    assert (len(won), len(refused)) == (1, 7), outcomes
    assert all(r.details["lines"][0]["sku"] == "LAST-ONE" for r in refused)
    position = StockPosition.objects.get(sku=sku, location=store)
    assert (position.on_hand, position.reserved) == (1, 1)
    assert Order.objects.count() == 1
    assert ledger_mismatches() == []


def test_a_burst_of_mixed_orders_never_oversells_and_every_order_is_fully_reserved():
    customer = CustomerFactory()
    skus = [SkuFactory() for _ in range(3)]
    stores = [LocationFactory(code=f"S{i}", ships_from_location=i % 2 == 0) for i in range(4)]
    warehouse = WarehouseFactory(code="WH")
    for location in [*stores, warehouse]:
        for sku in skus:
            receive(location, sku, 3)

    def order(i):
        lines = [line(skus[i % 3], 1 + i % 2), line(skus[(i + 1) % 3], 1)]
        if i % 2:
            return place_pickup(customer, stores[i % 4], lines, key=f"mix-{i}")
        return place_delivery(customer, lines, key=f"mix-{i}")

    outcomes = _race(16, order)

    assert all(isinstance(o, (Order, OutOfStock)) for o in outcomes), outcomes
    for accepted in (o for o in outcomes if isinstance(o, Order)):
        wanted = {ln.sku_id: ln.quantity for ln in accepted.lines.all()}
        held: dict[int, int] = {}
        for reservation in Reservation.objects.filter(reference=accepted.reference):
            held[reservation.sku_id] = held.get(reservation.sku_id, 0) + reservation.quantity
        assert held == wanted
    for position in StockPosition.objects.all():
        assert 0 <= position.reserved <= position.on_hand
    assert ledger_mismatches() == []


def test_cancellations_rejections_and_placements_racing_leave_a_consistent_ledger():
    # given 8 open delivery orders of two SKUs spread over two ship-from-stores and a warehouse
    from common.exceptions import DomainError
    from orders import services

    customer = CustomerFactory()
    a, b = SkuFactory(), SkuFactory()
    shops = [LocationFactory(code=f"SHOP{i}", ships_from_location=True) for i in range(2)]
    warehouse = WarehouseFactory(code="WH")
    for location in [*shops, warehouse]:
        receive(location, a, 20)
        receive(location, b, 20)
    placed = [
        place_delivery(customer, [line(a, 1), line(b, 1)] if i % 2 else [line(b, 2), line(a, 1)])
        for i in range(8)
    ]

    def work(i):
        order = placed[i % 8]
        if i < 4:
            return services.order_cancel(
                order_id=order.pk, actor="t", channel="backoffice", idempotency_key=f"c{i}"
            )
        if i < 8:
            held = Reservation.objects.filter(reference=order.reference, status="active").first()
            line_no = order.lines.get(sku_id=held.sku_id).line_no
            return services.order_line_reject(
                order_id=order.pk,
                line_no=line_no,
                location_id=held.location_id,
                reason="damaged",
                actor="t",
                channel="backoffice",
                idempotency_key=f"r{i}",
            )
        return place_delivery(customer, [line(b, 1), line(a, 2)], key=f"new-{i}")

    # when cancellations, rejections and new orders run at once
    outcomes = _race(16, work)

    # then nothing crashed (domain refusals are fine), and the ledger is consistent
    crashes = [o for o in outcomes if isinstance(o, Exception) and not isinstance(o, DomainError)]
    assert crashes == []
    for position in StockPosition.objects.all():
        assert 0 <= position.reserved <= position.on_hand
    assert ledger_mismatches() == []
    for order in Order.objects.filter(status="allocated"):
        held = sum(
            r.quantity
            for r in Reservation.objects.filter(reference=order.reference, status="active")
        )
        assert held == sum(ln.quantity for ln in order.lines.filter(status="open"))


def test_concurrent_refunds_of_one_line_refund_each_unit_once():
    # given line 1 of 2 × 20.00, collected and paid, and 8 desks refunding one unit of it
    order, _card = _paid_two_lines(CustomerFactory(), LocationFactory(), SkuFactory(), SkuFactory())

    outcomes = _race(
        8,
        lambda i: services.order_lines_refund(
            reference=order.reference,
            lines=[(1, 1)],
            idempotency_key=f"desk-{i}",
            channel="store",
            actor=f"desk {i}",
        ),
    )

    # then exactly two are refunded, the others refused by the line's cap, and the money agrees
    refused = [o for o in outcomes if isinstance(o, LineRefundExceedsQuantity)]
    refunded = [o for o in outcomes if isinstance(o, list)]
    assert (len(refunded), len(refused)) == (2, 6), outcomes
    assert order.lines.get(line_no=1).quantity_refunded == 2
    assert order_payment_summary(order_reference=order.reference).refunded == Decimal("40.00")

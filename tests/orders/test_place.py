"""Placing orders: routing, all-or-nothing reservations, decisions, bad input."""

from datetime import datetime
from decimal import Decimal

import pytest
from django.core import mail

from common.exceptions import IdempotencyKeyReused, InvalidInput
from common.money import CurrencyMismatch
from inventory.exceptions import InvalidQuantity, UnknownLocation
from inventory.models import Reservation, StockMovement, Transfer
from orders.exceptions import OutOfStock, PickupNotOffered, StoreClosed, StoreInactive
from orders.models import Order, OrderEvent, RoutingDecision, RoutingRule
from tests.factories import LocationFactory, WarehouseFactory
from tests.orders.conftest import (
    active_reservations,
    line,
    place_delivery,
    place_pickup,
    position,
    receive,
)

pytestmark = pytest.mark.django_db
# A Wednesday, 11:00 in Paris: the store (Mon–Sat 10–20, 60 min preparation) is open.
WEDNESDAY_11H = datetime.fromisoformat("2026-11-25T11:00:00+01:00")


def nothing_reserved():
    return (
        Order.objects.count(),
        Reservation.objects.count(),
        StockMovement.objects.filter(kind="reserve").count(),
    ) == (0, 0, 0)


def test_click_and_collect_with_every_line_in_store_reserves_there_and_promises_its_lead_time(
    customer, store, warehouse, sku, sku2
):
    # given the store holds both SKUs (and the warehouse too)
    for location in (store, warehouse):
        receive(location, sku, 5)
        receive(location, sku2, 5)

    # when a web order for pickup there is placed on Wednesday at 11:00
    order = place_pickup(customer, store, [line(sku, 2), line(sku2, 1)], at=WEDNESDAY_11H)

    # then both lines are held at the store, ready one hour later, and the decision is recorded
    assert order.status == "allocated"
    assert [(r.location_id, r.sku_id, r.quantity) for r in active_reservations(order)] == [
        (store.pk, sku.pk, 2),
        (store.pk, sku2.pk, 1),
    ]
    assert order.ready_by == datetime.fromisoformat("2026-11-25T12:00:00+01:00")
    assert order.total_amount == Decimal("59.70") and order.currency == "EUR"
    decision = RoutingDecision.objects.get(order=order)
    assert decision.outcome == "pickup_local"
    assert decision.chosen[0]["location"] == "PARIS01"
    assert list(order.events.values_list("kind", flat=True)) == ["placed", "allocated"]
    assert position(store, sku).reserved == 2
    assert position(warehouse, sku).reserved == 0


def test_click_and_collect_missing_line_comes_from_the_warehouse_by_transfer_with_a_later_promise(
    customer, store, warehouse, sku, sku2
):
    # given the store has the T-shirt but only the warehouse has the jeans
    receive(store, sku, 5)
    receive(warehouse, sku2, 5)

    # when the order is placed on Wednesday 11:00
    order = place_pickup(customer, store, [line(sku, 1), line(sku2, 1)], at=WEDNESDAY_11H)

    # then the jeans are held at the warehouse and a transfer to the store is requested
    held = {(r.location_id, r.sku_id) for r in active_reservations(order)}
    assert held == {(store.pk, sku.pk), (warehouse.pk, sku2.pk)}
    transfer = Transfer.objects.get(reference=order.reference)
    assert (transfer.source_id, transfer.destination_id, transfer.status) == (
        warehouse.pk,
        store.pk,
        "requested",
    )
    assert list(transfer.lines.values_list("sku_id", "quantity_requested")) == [(sku2.pk, 1)]
    # and the promise waits for the transfer (2 days: Friday 11:00) plus one hour of preparation
    assert order.ready_by == datetime.fromisoformat("2026-11-27T12:00:00+01:00")
    decision = order.routing_decisions.get()
    assert decision.outcome == "pickup_transfer"
    assert [c["location"] for c in decision.candidates if "location" in c] == ["PARIS01", "WH01"]


def test_delivery_prefers_one_location_serving_every_line_over_nearer_partial_ones(
    customer, warehouse, sku, sku2
):
    # given a ship-from-store next to the customer with one SKU, and a far warehouse with both
    near = LocationFactory(code="NEAR", ships_from_location=True)
    receive(near, sku, 10)
    receive(warehouse, sku, 10)
    receive(warehouse, sku2, 10)

    # when a delivery order for both SKUs is placed
    order = place_delivery(customer, [line(sku), line(sku2)])

    # then the whole order ships from the warehouse, in one parcel
    assert {r.location_id for r in active_reservations(order)} == {warehouse.pk}
    decision = order.routing_decisions.get()
    assert decision.outcome == "single"
    near_row = next(c for c in decision.candidates if c.get("location") == "NEAR")
    assert near_row["rejected"] == "missing JEANS-32: 0 of 1"


def test_an_inactive_location_s_stock_is_never_routed_to(customer, warehouse, sku):
    # given the only stock of the SKU is in a ship-from-store that has been deactivated
    closed = LocationFactory(code="CLOSED", ships_from_location=True)
    receive(closed, sku, 10)
    closed.is_active = False
    closed.save()

    # when a delivery order for it is placed, it is refused and nothing is reserved
    with pytest.raises(OutOfStock):
        place_delivery(customer, [line(sku)])
    assert nothing_reserved()

    # and once the warehouse has some, the order ships from there
    receive(warehouse, sku, 3)
    order = place_delivery(customer, [line(sku)])
    assert {r.location_id for r in active_reservations(order)} == {warehouse.pk}


def test_delivery_splits_with_the_fewest_shipments_when_no_location_has_everything(
    customer, sku, sku2
):
    # given A has lines 1 and 2, B has line 3, C has line 1 and D line 2 (all ship)
    from tests.factories import SkuFactory

    sku3 = SkuFactory(code="CAP")
    a, b, c, d = (WarehouseFactory(code=code) for code in ("WA", "WB", "WC", "WD"))
    receive(a, sku, 1)
    receive(a, sku2, 1)
    receive(b, sku3, 1)
    receive(c, sku, 1)
    receive(d, sku2, 1)

    # when a three-line order is placed
    order = place_delivery(customer, [line(sku), line(sku2), line(sku3)])

    # then it ships in two parcels: A (lines 1, 2) and B (line 3)
    assert sorted((r.location.code, r.sku_id) for r in active_reservations(order)) == [
        ("WA", sku.pk),
        ("WA", sku2.pk),
        ("WB", sku3.pk),
    ]
    assert order.routing_decisions.get().outcome == "split"
    assert order.allocations.count() == 2


def test_the_channel_rules_set_by_an_operator_change_the_choice(customer, sku):
    # given two warehouses: NEAR (priority 100) and FAR (priority 1), both with stock
    near = WarehouseFactory(code="NEAR", routing_priority=100)
    far = WarehouseFactory(
        code="FAR", latitude="43.296482", longitude="5.369780", routing_priority=1
    )
    receive(near, sku, 5)
    receive(far, sku, 5)

    # when the web channel ranks by distance first (default), then by priority first
    by_distance = place_delivery(customer, [line(sku)])
    RoutingRule.objects.create(channel="web", rules=["priority", "distance"])
    by_priority = place_delivery(customer, [line(sku)])

    # then the first order goes to the nearest, the second to the preferred location
    assert active_reservations(by_distance)[0].location_id == near.pk
    assert active_reservations(by_priority)[0].location_id == far.pk
    assert by_priority.routing_decisions.get().rules == ["priority", "distance"]


def test_protect_last_units_keeps_a_store_s_last_units_for_walk_in_shoppers(customer, sku):
    # given a ship-from-store near the customer with 2 units, and a farther warehouse with 50
    shop = LocationFactory(code="SHOP", ships_from_location=True)
    depot = WarehouseFactory(code="DEPOT", latitude="48.700000", longitude="2.400000")
    receive(shop, sku, 2)
    receive(depot, sku, 50)
    RoutingRule.objects.create(
        channel="web", rules=["protect_last_units", "distance"], protect_last_units=2
    )

    # when one unit is ordered
    order = place_delivery(customer, [line(sku)])

    # then the store keeps its units: the warehouse ships
    assert active_reservations(order)[0].location_id == depot.pk
    shop_row = next(
        c for c in order.routing_decisions.get().candidates if c.get("location") == "SHOP"
    )
    assert shop_row["scores"]["protect_last_units"] == 1
    assert shop_row["rejected"] == "ranked lower by the rules"


def test_out_of_stock_refuses_the_order_naming_the_short_lines_and_reserves_nothing(
    customer, store, warehouse, sku, sku2
):
    # given the T-shirt is in stock but only 1 pair of jeans exists in the network
    receive(store, sku, 5)
    receive(warehouse, sku2, 1)

    # when an order asks for 2 pairs of jeans
    with pytest.raises(OutOfStock) as refused:
        place_pickup(customer, store, [line(sku, 1), line(sku2, 2)])

    # then the error names the jeans line and nothing was written
    assert refused.value.details["lines"] == [
        {"line": 2, "sku": "JEANS-32", "requested": 2, "available": 1, "elsewhere": []}
    ]
    assert "JEANS-32" in refused.value.message
    assert nothing_reserved()
    assert position(store, sku).reserved == 0


@pytest.mark.parametrize(
    ("store_options", "error"),
    [
        ({"allows_pickup": False}, PickupNotOffered),
        ({"is_active": False}, StoreInactive),
        ({"hours": []}, StoreClosed),
    ],
)
def test_pickup_is_refused_at_stores_that_cannot_hand_it_over(customer, sku, store_options, error):
    # given a store with stock that cannot serve click & collect
    shop = LocationFactory(code="SHOP", **store_options)
    receive(shop, sku, 5) if store_options.get("is_active", True) else None

    # when an order for pickup there is placed, then it is refused and nothing is reserved
    with pytest.raises(error):
        place_pickup(customer, shop, [line(sku)])
    assert nothing_reserved()


def test_bad_lines_are_refused_before_anything_is_reserved(customer, store, sku, sku2):
    receive(store, sku, 5)
    receive(store, sku2, 5)
    with pytest.raises(InvalidQuantity):
        place_pickup(customer, store, [line(sku, 0)])
    with pytest.raises(CurrencyMismatch):
        place_pickup(customer, store, [line(sku, 1, currency="EUR"), line(sku2, 1, currency="USD")])
    with pytest.raises(InvalidInput):
        place_pickup(customer, store, [line(sku, 1, price="1.999")])
    with pytest.raises(InvalidInput):
        place_pickup(customer, store, [line(sku, 1), line(sku, 2)])
    with pytest.raises(InvalidInput):
        place_pickup(customer, store, [])
    with pytest.raises(UnknownLocation):
        from orders import services

        services.order_place(
            channel="web",
            customer=customer,
            lines=[line(sku)],
            fulfilment="pickup",
            pickup_location_id=999999,
            idempotency_key="unknown-store",
            actor="test",
        )
    assert nothing_reserved()


def test_the_same_idempotency_key_returns_the_same_order_and_reserves_once(customer, store, sku):
    receive(store, sku, 5)
    first = place_pickup(customer, store, [line(sku, 2)], key="retry-me")
    again = place_pickup(customer, store, [line(sku, 2)], key="retry-me")
    assert again.pk == first.pk and again.replayed
    assert Order.objects.count() == 1
    assert position(store, sku).reserved == 2


def test_the_same_key_with_other_lines_or_another_store_is_refused_and_reserves_nothing(
    customer, store, sku
):
    receive(store, sku, 5)
    other_store = LocationFactory(code="OTHER", allows_pickup=True)
    receive(other_store, sku, 5)
    first = place_pickup(customer, store, [line(sku, 2)], key="one-key")

    # a price written differently is the same request
    same = place_pickup(customer, store, [line(sku, 2, price="19.9")], key="one-key")
    free = place_pickup(customer, store, [line(sku, 1, price="0.00")], key="free-key")
    assert place_pickup(customer, store, [line(sku, 1, price="-0")], key="free-key").pk == free.pk
    with pytest.raises(IdempotencyKeyReused):
        place_pickup(customer, store, [line(sku, 3)], key="one-key")
    with pytest.raises(IdempotencyKeyReused):
        place_pickup(customer, other_store, [line(sku, 2)], key="one-key")

    assert same.pk == first.pk and same.replayed
    assert Order.objects.count() == 2
    assert (position(store, sku).reserved, position(other_store, sku).reserved) == (3, 0)


def test_an_order_at_the_till_may_take_units_kept_back_from_online_channels(customer, store, sku):
    # given 3 units at the store, 2 of them kept back from online channels (safety stock)
    from inventory.services import safety_stock_set

    receive(store, sku, 3)
    safety_stock_set(location_id=store.pk, quantity=2)

    # then the web may take 1 unit only, the store channel all 3
    with pytest.raises(OutOfStock):
        place_pickup(customer, store, [line(sku, 2)], channel="web")
    order = place_pickup(customer, store, [line(sku, 3)], channel="store")
    assert active_reservations(order)[0].quantity == 3
    assert OrderEvent.objects.filter(order=order, kind="allocated").exists()


def test_home_delivery_is_promised_a_ship_time_and_a_delivery_day(customer, sku):
    # given a warehouse open Monday–Saturday 10:00–20:00, 2 hours to prepare, 2 delivery days
    warehouse = WarehouseFactory(code="WH-PROMISE", preparation_minutes=120, delivery_days=2)
    receive(warehouse, sku, 5)

    # when an order comes on Friday at 19:30 (30 minutes of work left that evening)
    friday_evening = datetime.fromisoformat("2026-11-27T19:30:00+01:00")
    order = place_delivery(customer, [line(sku, 1)], at=friday_evening)

    # then it ships on Saturday at 11:30, and arrives 2 delivery days later, Sunday skipped
    assert order.ready_by == datetime.fromisoformat("2026-11-28T11:30:00+01:00")
    assert order.delivery_expected_on.isoformat() == "2026-12-01"
    assert Order.objects.get(pk=order.pk).delivery_expected_on.isoformat() == "2026-12-01"
    # and the confirmation tells the customer (in French here)
    assert "Elle devrait vous parvenir d’ici le mardi 1 décembre 2026" in mail.outbox[-1].body


def test_a_split_delivery_is_promised_by_its_slowest_parcel(customer, sku, sku2):
    near = LocationFactory(code="NEAR", ships_from_location=True, delivery_days=1)
    far = WarehouseFactory(code="FAR", latitude="45.764043", longitude="4.835659", delivery_days=3)
    receive(near, sku, 5)
    receive(far, sku2, 5)

    order = place_delivery(customer, [line(sku, 1), line(sku2, 1)], at=WEDNESDAY_11H)

    # Wednesday 13:00 from both; 1 delivery day (Thursday) and 3 (Saturday): Saturday.
    assert order.allocations.count() == 2
    assert order.delivery_expected_on.isoformat() == "2026-11-28"

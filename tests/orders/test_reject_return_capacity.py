"""Store rejections with re-routing, returns in any store, daily capacity."""

from datetime import date, datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.test import TestCase

from common.exceptions import IllegalTransition, InvalidInput
from inventory.models import StockMovement
from inventory.selectors import ledger_mismatches
from orders import pickup, services
from orders.exceptions import OutOfStock, StoreAtCapacity
from orders.models import LocationDayLoad, Order, Return
from stores.models import Location
from tests.factories import LocationFactory, WarehouseFactory
from tests.orders.conftest import (
    act,
    active_reservations,
    hand_over,
    key,
    line,
    place_delivery,
    place_pickup,
    position,
    receive,
)

pytestmark = pytest.mark.django_db
STAFF = {"actor": "staff:bob", "channel": "backoffice"}


def reject(order, location, reason, line_no=1, **extra):
    return act(
        services.order_line_reject,
        order_id=order.pk,
        line_no=line_no,
        location_id=location.pk,
        reason=reason,
        idempotency_key=key(),
        **STAFF,
        **extra,
    )


def test_not_on_shelf_drops_the_store_s_on_hand_to_what_was_found_and_reroutes_the_line(
    customer, warehouse, sku
):
    # given a ship-from-store that believes it has 4 units, and a warehouse with 10
    shop = LocationFactory(code="SHOP", ships_from_location=True)
    receive(shop, sku, 4)
    receive(warehouse, sku, 10)
    order = place_delivery(customer, [line(sku, 2)])
    assert active_reservations(order)[0].location_id == shop.pk

    # when the picker finds only 1 unit on the shelf and rejects the line
    reject(order, shop, "not_on_shelf", found_quantity=1)

    # then the store's on hand is what was found, nothing is held there any more,
    # and the line is now held at the warehouse
    pos = position(shop, sku)
    assert (pos.on_hand, pos.reserved) == (1, 0)
    assert [(r.location_id, r.quantity) for r in active_reservations(order)] == [(warehouse.pk, 2)]
    adjustment = StockMovement.objects.get(location=shop, kind="adjustment")
    assert (adjustment.reason, adjustment.on_hand_delta) == ("not_on_shelf", -3)
    assert list(order.routing_decisions.values_list("trigger", flat=True)) == [
        "placement",
        "rejection",
    ]
    kinds = list(order.events.values_list("kind", flat=True))
    assert kinds[-2:] == ["line_rejected", "line_rerouted"]
    assert ledger_mismatches() == []


def test_partial_picking_in_the_pickup_store_keeps_what_was_found(customer, store, warehouse, sku):
    # given a click & collect order of 3 units prepared in the pickup store, which believes it
    # has 5, and a warehouse that can send the rest
    receive(store, sku, 5)
    receive(warehouse, sku, 10)
    order = place_pickup(customer, store, [line(sku, 3)])
    act(services.order_picking_start, order_id=order.pk, idempotency_key=key(), **STAFF)

    # when the associate finds only 2 units on the shelf
    reject(order, store, "not_on_shelf", found_quantity=2)

    # then the 2 found stay held for the order here, and only the missing unit comes by transfer
    pos = position(store, sku)
    assert (pos.on_hand, pos.reserved) == (2, 2)
    held = sorted((r.location_id, r.open_quantity) for r in active_reservations(order))
    assert held == sorted([(store.pk, 2), (warehouse.pk, 1)])
    rejected = order.events.get(kind="line_rejected")
    assert (rejected.data["kept"], rejected.data["quantity"]) == (2, 1)
    transfer = order.allocations.get(kind="transfer")

    # and once the missing unit has arrived, the shopper collects all 3 here
    for step in (services.order_transfer_ship, services.order_transfer_receive):
        act(step, order_id=order.pk, allocation_id=transfer.pk, idempotency_key=key(), **STAFF)
    act(services.order_mark_ready, order_id=order.pk, idempotency_key=key(), **STAFF)
    order.refresh_from_db()
    code = pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce)
    hand_over(order, code, **STAFF)

    order.refresh_from_db()
    assert order.status == "collected"
    pos = position(store, sku)
    assert (pos.on_hand, pos.reserved) == (0, 0)  # 2 found + 1 transferred, all 3 taken
    assert position(warehouse, sku).on_hand == 9
    assert ledger_mismatches() == []


def test_finding_every_unit_routes_nothing_again(customer, store, sku):
    receive(store, sku, 5)
    order = place_pickup(customer, store, [line(sku, 2)])

    reject(order, store, "not_on_shelf", found_quantity=3)

    # the shelf had 3, not 5: the ledger says so; the order still holds its 2 units here
    assert (position(store, sku).on_hand, position(store, sku).reserved) == (3, 2)
    assert [(r.location_id, r.open_quantity) for r in active_reservations(order)] == [(store.pk, 2)]
    assert not order.events.filter(kind="line_rerouted").exists()


def test_damaged_units_become_unsellable_and_the_pickup_line_comes_by_transfer(
    customer, store, warehouse, sku
):
    # given a click & collect order prepared from the store's 3 units
    receive(store, sku, 3)
    receive(warehouse, sku, 5)
    order = place_pickup(customer, store, [line(sku, 2)])

    # when staff find the 2 units damaged
    reject(order, store, "damaged")

    # then 2 units are unsellable at the store and the line comes from the warehouse instead
    pos = position(store, sku)
    assert (pos.on_hand, pos.unsellable, pos.reserved, pos.available) == (3, 2, 0, 1)
    allocation = order.allocations.get(kind="transfer")
    assert allocation.location_id == warehouse.pk
    assert allocation.transfer.destination_id == store.pk
    assert Order.objects.get(pk=order.pk).status == "allocated"


def test_one_damaged_unit_of_two_is_set_aside_the_good_one_kept_and_the_customer_told(
    customer, store, warehouse, sku
):
    """#20: "damaged, found 1" of a 2-unit line set both units aside (journal kept: 0) and moved
    the ready-by silently. Only the damaged unit is unsellable now; the good one stays held for
    the order; the missing unit comes by transfer and the customer is told the new ready-by."""
    receive(store, sku, 2)
    receive(warehouse, sku, 5)
    order = place_pickup(customer, store, [line(sku, 2)])
    promised = Order.objects.get(pk=order.pk).ready_by
    mail.outbox = []

    reject(order, store, "damaged", found_quantity=1)

    shelf = position(store, sku)
    assert (shelf.on_hand, shelf.unsellable, shelf.reserved) == (2, 1, 1)
    event = order.events.get(kind="line_rejected")
    assert (event.data["kept"], event.data["set_aside"]) == (1, 1)
    transfer = order.allocations.get(kind="transfer")
    assert transfer.lines.get(is_active=True).quantity == 1  # only the damaged unit comes
    order.refresh_from_db()
    assert order.ready_by > promised
    told = [m for m in mail.outbox if "nouvelle date de retrait" in m.subject]
    assert len(told) == 1 and order.reference in told[0].body


def test_when_nothing_is_left_the_line_is_unavailable_and_the_customer_is_told_with_alternatives(
    customer, store, sku
):
    # given the only units are at the pickup store, plus 3 at another store nearby
    other = LocationFactory(code="PARIS02", latitude="48.870000", longitude="2.340000")
    receive(store, sku, 1)
    receive(other, sku, 3)
    order = place_pickup(customer, store, [line(sku, 1)])

    # when the unit is not on the shelf
    reject(order, store, "not_on_shelf")

    # then the order is cancelled (no line left), with the nearby alternative in the message
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert order.lines.get().status == "unavailable"
    unavailable = order.events.get(kind="line_unavailable").data
    assert unavailable["refund_owed"] == {"amount": "19.90", "currency": "EUR"}
    assert [alt["store"] for alt in unavailable["alternatives"]] == ["PARIS02"]
    cancelled = next(m for m in mail.outbox if "annulée" in m.subject)
    assert "PARIS02" in cancelled.body


def test_a_line_can_only_be_rejected_where_it_is_held_and_while_open(
    customer, store, warehouse, sku
):
    receive(store, sku, 3)
    order = place_pickup(customer, store, [line(sku)])
    with pytest.raises(InvalidInput):
        reject(order, warehouse, "not_on_shelf")
    with pytest.raises(InvalidInput):
        reject(order, store, "stolen")
    act(services.order_cancel, order_id=order.pk, idempotency_key=key(), **STAFF)
    with pytest.raises(IllegalTransition):
        reject(order, store, "damaged")
    assert position(store, sku).on_hand == 3


def test_an_online_order_returned_in_another_store_goes_into_that_store_s_stock(
    customer, warehouse, sku, sku2
):
    # given a delivered order of 2 T-shirts and 1 pair of jeans from the warehouse
    receive(warehouse, sku, 5)
    receive(warehouse, sku2, 5)
    order = place_delivery(customer, [line(sku, 2, price="20.00"), line(sku2, 1, price="50.00")])
    for service in (services.order_picking_start, services.order_ship, services.order_deliver):
        act(service, order_id=order.pk, idempotency_key=key(), **STAFF)
    shop = LocationFactory(code="LYON01")

    # when the customer brings back 1 T-shirt (fine) and the jeans (torn) to a store in Lyon
    record = act(
        services.order_return,
        order_id=order.pk,
        location_id=shop.pk,
        lines=[
            services.ReturnLineRequest(line_no=1, quantity=1),
            services.ReturnLineRequest(line_no=2, quantity=1, unsellable=True, reason="torn"),
        ],
        idempotency_key="return-1",
        actor="staff:lyon",
        channel="store",
    )

    # then the units are in Lyon's stock (the jeans unsellable) and the refund owed is recorded
    assert (position(shop, sku).on_hand, position(shop, sku).available) == (1, 1)
    assert (position(shop, sku2).on_hand, position(shop, sku2).unsellable) == (1, 1)
    assert record.refund_amount == Decimal("70.00") and record.currency == "EUR"
    assert list(order.lines.values_list("quantity_returned", flat=True)) == [1, 1]
    # and the same request again changes nothing; returning more than bought is refused
    again = act(
        services.order_return,
        order_id=order.pk,
        location_id=shop.pk,
        lines=[services.ReturnLineRequest(line_no=1, quantity=1)],
        idempotency_key="return-1",
        actor="staff:lyon",
        channel="store",
    )
    assert again.pk == record.pk and Return.objects.count() == 1
    with pytest.raises(InvalidInput):
        act(
            services.order_return,
            order_id=order.pk,
            location_id=shop.pk,
            lines=[services.ReturnLineRequest(line_no=2, quantity=1)],
            idempotency_key="return-2",
            actor="staff:lyon",
            channel="store",
        )
    assert position(shop, sku2).on_hand == 1
    assert ledger_mismatches() == []


def test_an_open_order_cannot_be_returned(customer, store, sku):
    receive(store, sku, 2)
    order = place_pickup(customer, store, [line(sku)])
    with pytest.raises(IllegalTransition):
        act(
            services.order_return,
            order_id=order.pk,
            location_id=store.pk,
            lines=[services.ReturnLineRequest(line_no=1, quantity=1)],
            idempotency_key="early",
            actor="x",
            channel="store",
        )
    assert Return.objects.count() == 0


def test_a_store_at_its_daily_capacity_takes_no_more_pickup_orders(customer, sku):
    shop = LocationFactory(code="SMALL", daily_order_capacity=1)
    receive(shop, sku, 10)
    place_pickup(customer, shop, [line(sku)])

    with pytest.raises(StoreAtCapacity):
        place_pickup(customer, shop, [line(sku)])

    assert position(shop, sku).reserved == 1
    assert LocationDayLoad.objects.get(location=shop).orders == 1


def test_a_cap_lowered_by_another_process_is_enforced_by_the_next_placement(customer, sku):
    # given this process has the store's cap (7) in its cache and 5 orders booked today
    shop = LocationFactory(code="SMALL", daily_order_capacity=7)
    receive(shop, sku, 20)
    for _ in range(5):
        place_pickup(customer, shop, [line(sku)])

    # when another process lowers the cap to 5 (this process has not seen any signal of it)
    Location.objects.filter(pk=shop.pk).update(daily_order_capacity=5)

    # then the next placements are refused: the slot is taken against the database's cap
    for _ in range(2):
        with pytest.raises(StoreAtCapacity):
            place_pickup(customer, shop, [line(sku)])
    assert LocationDayLoad.objects.get(location=shop).orders == 5
    assert position(shop, sku).reserved == 5


def test_a_cap_set_in_the_admin_is_seen_at_once_and_again_after_commit(customer, sku):
    shop = LocationFactory(code="SMALL", daily_order_capacity=None)
    receive(shop, sku, 20)
    place_pickup(customer, shop, [line(sku)])  # the cache now says: no cap

    shop.daily_order_capacity = 1
    with TestCase.captureOnCommitCallbacks(execute=True) as after_commit:
        shop.save()  # the admin's save: the reference version is bumped now and on commit

    assert len(after_commit) == 1
    place_pickup(customer, shop, [line(sku)])
    with pytest.raises(StoreAtCapacity):
        place_pickup(customer, shop, [line(sku)])


def test_capacity_counts_the_day_the_store_prepares_the_order_not_the_day_it_was_placed(
    customer, sku
):
    # given a store open 10:00-20:00 with a 60-minute lead time that prepares 1 order a day
    shop = LocationFactory(code="SMALL", daily_order_capacity=1)
    receive(shop, sku, 10)
    wednesday_11h = datetime.fromisoformat("2026-11-25T11:00:00+01:00")
    wednesday_19h55 = datetime.fromisoformat("2026-11-25T19:55:00+01:00")

    # when Wednesday's slot is taken in the morning, an order at 19:55 (ready on Thursday)
    # still fits, in Thursday's slot, and the next evening order does not
    morning = place_pickup(customer, shop, [line(sku)], at=wednesday_11h)
    evening = place_pickup(customer, shop, [line(sku)], at=wednesday_19h55)
    with pytest.raises(StoreAtCapacity):
        place_pickup(customer, shop, [line(sku)], at=wednesday_19h55)

    assert morning.capacity_slots == [[shop.pk, "2026-11-25"]]
    assert evening.capacity_slots == [[shop.pk, "2026-11-26"]]
    assert dict(LocationDayLoad.objects.values_list("day", "orders")) == {
        date(2026, 11, 25): 1,
        date(2026, 11, 26): 1,
    }


def cancel(order):
    return act(services.order_cancel, order_id=order.pk, idempotency_key=key(), **STAFF)


def test_an_order_cancelled_before_preparation_gives_its_slot_back(customer, sku):
    shop = LocationFactory(code="SMALL", daily_order_capacity=1)
    receive(shop, sku, 10)
    first = place_pickup(customer, shop, [line(sku)])

    cancel(first)
    second = place_pickup(customer, shop, [line(sku)])

    assert second.status == "allocated"
    assert LocationDayLoad.objects.get(location=shop).orders == 1
    cancelled = first.events.get(kind="cancelled")
    assert cancelled.data["capacity_returned"] == 1
    first.refresh_from_db()
    assert first.capacity_slots == []


def test_once_picking_started_a_cancelled_order_keeps_its_slot(customer, sku):
    near = LocationFactory(code="NEAR", ships_from_location=True, daily_order_capacity=1)
    receive(near, sku, 10)
    order = place_delivery(customer, [line(sku)])
    act(services.order_picking_start, order_id=order.pk, idempotency_key=key(), **STAFF)

    cancel(order)

    assert LocationDayLoad.objects.get(location=near).orders == 1
    assert order.events.get(kind="cancelled").data["capacity_returned"] == 0
    with pytest.raises(OutOfStock):  # the only shipping location is still full today
        place_delivery(customer, [line(sku)])


def test_the_router_ships_around_a_location_at_capacity(customer, sku):
    near = LocationFactory(code="NEAR", ships_from_location=True, daily_order_capacity=1)
    far = WarehouseFactory(code="FAR", latitude="45.764043", longitude="4.835659")
    receive(near, sku, 10)
    receive(far, sku, 10)

    first = place_delivery(customer, [line(sku)])
    second = place_delivery(customer, [line(sku)])

    assert active_reservations(first)[0].location_id == near.pk
    assert active_reservations(second)[0].location_id == far.pk
    others = second.routing_decisions.get().candidates[-1]["others"]
    assert others == {"daily capacity reached": 1}


def test_capacity_refusal_when_every_location_is_full(customer, sku):
    near = LocationFactory(code="NEAR", ships_from_location=True, daily_order_capacity=1)
    receive(near, sku, 10)
    place_delivery(customer, [line(sku)])
    with pytest.raises(OutOfStock):
        place_delivery(customer, [line(sku)])
    assert position(near, sku).reserved == 1


# ---- found by review -------------------------------------------------------------------------


def test_when_the_missing_units_are_nowhere_the_line_shrinks_to_what_was_found(
    customer, store, sku, sku2
):
    receive(store, sku, 3)
    receive(store, sku2, 1)
    order = place_pickup(customer, store, [line(sku, 3), line(sku2, 1)])
    total_before = order.total_amount

    reject(order, store, "not_on_shelf", found_quantity=2)

    first = order.lines.get(line_no=1)
    assert (first.status, first.quantity) == ("open", 2)
    order.refresh_from_db()
    assert order.total_amount == total_before - first.unit_price  # the missing unit is not due
    unavailable = order.events.get(kind="line_unavailable").data
    assert (unavailable["quantity"], unavailable["still_held"]) == (1, 2)
    # and the order can still be handed over, whole or in part
    act(services.order_picking_start, order_id=order.pk, idempotency_key=key(), **STAFF)
    act(services.order_mark_ready, order_id=order.pk, idempotency_key=key(), **STAFF)
    order.refresh_from_db()
    code = pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce)
    hand_over(order, code, taken={2: 1}, **STAFF)
    order.refresh_from_db()
    assert order.status == "collected"
    assert (position(store, sku).on_hand, position(store, sku).reserved) == (2, 0)
    assert ledger_mismatches() == []


def test_a_reroute_to_a_location_already_preparing_the_order_counts_it_once(customer, sku, sku2):
    a = LocationFactory(code="A", ships_from_location=True, daily_order_capacity=5)
    b = WarehouseFactory(
        code="B", latitude="45.764043", longitude="4.835659", daily_order_capacity=5
    )
    receive(a, sku, 5)
    receive(b, sku2, 5)
    order = place_delivery(customer, [line(sku, 1), line(sku2, 1)])
    assert sorted(order.allocations.values_list("location__code", flat=True)) == ["A", "B"]
    receive(b, sku, 5)

    reject(order, a, "not_on_shelf", found_quantity=0)

    order.refresh_from_db()
    assert LocationDayLoad.objects.get(location=b).orders == 1
    assert sorted(location for location, _ in order.capacity_slots) == [a.pk, b.pk]


@pytest.mark.parametrize("placed_at", [None, "2026-11-25T11:00:00+01:00"], ids=["now", "other-day"])
def test_a_full_location_already_preparing_the_order_still_takes_its_rerouted_line(
    customer, sku, sku2, placed_at
):
    """Found by review: a location already preparing the order was skipped when its day was
    full, and took a second slot when the re-routing's day differed from the placement's (a
    line rejected in the evening counts on the next day)."""
    a = LocationFactory(code="A", ships_from_location=True)
    b = WarehouseFactory(
        code="B", latitude="45.764043", longitude="4.835659", daily_order_capacity=1
    )
    receive(a, sku, 5)
    receive(b, sku2, 5)
    at = datetime.fromisoformat(placed_at) if placed_at else None
    order = place_delivery(customer, [line(sku, 1), line(sku2, 1)], at=at)
    receive(b, sku, 5)

    reject(order, a, "not_on_shelf", found_quantity=0)

    order.refresh_from_db()
    assert order.status == "allocated"
    assert {r.location_id for r in active_reservations(order)} == {b.pk}
    assert sum(LocationDayLoad.objects.filter(location=b).values_list("orders", flat=True)) == 1
    assert [location for location, _ in order.capacity_slots] == [b.pk]


def test_an_order_cancelled_because_nothing_is_left_gives_its_slot_back(customer, sku):
    near = LocationFactory(code="NEAR", ships_from_location=True, daily_order_capacity=1)
    receive(near, sku, 3)
    order = place_delivery(customer, [line(sku, 1)])

    reject(order, near, "not_on_shelf", found_quantity=0)

    order.refresh_from_db()
    assert order.status == "cancelled"
    assert LocationDayLoad.objects.get(location=near).orders == 0


def test_capped_locations_calendars_load_in_a_few_queries_whatever_their_number(
    sku, django_assert_max_num_queries
):
    from django.core.cache import caches

    from orders import selectors

    for i in range(20):
        receive(LocationFactory(code=f"CAP{i:02d}", daily_order_capacity=3), sku, 1)
    caches["local"].clear()  # a new process, or reference data just changed

    # the active list, the capped calendars (3), the stock and the day loads
    with django_assert_max_num_queries(6):
        candidates = selectors.routing_candidates(sku_ids=[sku.pk], channel="web")

    assert sum(1 for c in candidates.values() if c.capacity_day is not None) == 20

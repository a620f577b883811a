"""The ledger's rules, through its services."""

from datetime import timedelta

import pytest
from django.utils import timezone

from common.exceptions import IdempotencyKeyReused, InvalidInput
from integrations.models import OutboxEvent
from inventory import services
from inventory.exceptions import InsufficientStock, InvalidQuantity, ReservationNotOpen
from inventory.models import (
    MovementKind,
    ReservationStatus,
    StockMovement,
    StockOperation,
    TillDiscrepancy,
)
from inventory.selectors import ledger_mismatches
from tests.inventory.conftest import position, receive

pytestmark = pytest.mark.django_db


def test_receipt_adds_on_hand_and_records_one_movement(store, sku):
    operation = receive(store, sku, 10)

    pos = position(store, sku)
    assert (pos.on_hand, pos.reserved, pos.available) == (10, 0, 10)
    movement = operation.movements.get()
    assert (movement.kind, movement.on_hand_delta, movement.quantity) == ("receipt", 10, 10)
    assert ledger_mismatches() == []


def test_same_idempotency_key_applies_once_and_returns_the_first_result(store, sku):
    first = receive(store, sku, 10, key="delivery-42")
    again = receive(store, sku, 10, key="delivery-42")

    assert again.pk == first.pk and again.replayed
    assert position(store, sku).on_hand == 10
    assert StockMovement.objects.count() == 1


def test_a_key_too_long_for_its_suffixes_is_refused_not_a_database_error(store, sku):
    receive(store, sku, 5)

    with pytest.raises(InvalidInput):
        services.reservation_create(
            sku_id=sku.pk,
            location_id=store.pk,
            quantity=1,
            idempotency_key="k" * 254,
            channel="web",
        )
    reservation = services.reservation_create(
        sku_id=sku.pk, location_id=store.pk, quantity=1, idempotency_key="k" * 240, channel="web"
    )
    assert reservation.created_by_key == "k" * 240 + "#0"


def test_same_key_with_other_arguments_is_refused_and_changes_nothing(store, sku):
    receive(store, sku, 10, key="delivery-42")

    with pytest.raises(IdempotencyKeyReused):
        receive(store, sku, 11, key="delivery-42")

    assert position(store, sku).on_hand == 10
    assert StockMovement.objects.count() == 1


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", True, None, 10**9])
def test_bad_quantities_are_refused_before_anything_moves(store, sku, bad):
    with pytest.raises(InvalidQuantity):
        services.stock_receive(location_id=store.pk, lines=[(sku.pk, bad)], idempotency_key="k")
    assert StockOperation.objects.count() == 0
    assert StockMovement.objects.count() == 0


def test_online_reservation_respects_safety_stock_but_till_may_take_the_last_units(store, sku):
    receive(store, sku, 5)
    services.safety_stock_set(location_id=store.pk, quantity=2)
    assert position(store, sku).available == 3

    with pytest.raises(InsufficientStock) as refused:
        services.reservation_create(
            sku_id=sku.pk, location_id=store.pk, quantity=4, idempotency_key="web-1", channel="web"
        )
    assert refused.value.details["lines"][0]["available"] == 3
    assert position(store, sku).reserved == 0

    services.reservation_create(
        sku_id=sku.pk, location_id=store.pk, quantity=5, idempotency_key="till-1", channel="store"
    )
    pos = position(store, sku)
    assert (pos.reserved, pos.available, pos.available_at_till) == (5, 0, 0)


def test_per_sku_override_beats_the_location_safety_stock(store, sku):
    receive(store, sku, 5)
    services.safety_stock_set(location_id=store.pk, quantity=2)
    services.safety_stock_set(location_id=store.pk, sku_id=sku.pk, quantity=0)
    assert position(store, sku).available == 5

    services.safety_stock_set(location_id=store.pk, sku_id=sku.pk, quantity=None)
    assert position(store, sku).available == 3


def test_multi_line_reservation_is_all_or_nothing(store, sku):
    from tests.factories import SkuFactory

    other = SkuFactory()
    receive(store, sku, 5)
    receive(store, other, 1)

    with pytest.raises(InsufficientStock) as refused:
        services.reservations_create(
            requests=[
                services.ReservationRequest(sku.pk, store.pk, 2),
                services.ReservationRequest(other.pk, store.pk, 2),
            ],
            idempotency_key="order-1",
            channel="web",
        )

    assert refused.value.details["lines"][0]["sku"] == other.code
    assert position(store, sku).reserved == 0
    assert position(store, other).reserved == 0
    assert not StockOperation.objects.filter(idempotency_key="order-1").exists()


def test_reservation_commit_consumes_on_hand_and_release_gives_back(store, sku):
    receive(store, sku, 10)
    reservation = services.reservation_create(
        sku_id=sku.pk, location_id=store.pk, quantity=4, idempotency_key="r1", channel="web"
    )

    services.reservation_commit(
        reservation_id=reservation.pk, quantity=3, release_rest=True, idempotency_key="r1-commit"
    )

    reservation.refresh_from_db()
    assert (reservation.committed_quantity, reservation.released_quantity) == (3, 1)
    assert reservation.status == ReservationStatus.COMMITTED
    pos = position(store, sku)
    assert (pos.on_hand, pos.reserved, pos.available) == (7, 0, 7)
    with pytest.raises(ReservationNotOpen):
        services.reservation_release(reservation_id=reservation.pk, idempotency_key="r1-release")
    assert ledger_mismatches() == []


def test_expired_holds_are_released_by_the_periodic_task(store, sku):
    receive(store, sku, 3)
    reservation = services.reservation_create(
        sku_id=sku.pk,
        location_id=store.pk,
        quantity=3,
        idempotency_key="cart-1",
        channel="web",
        ttl_seconds=60,
    )
    assert position(store, sku).available == 0

    from inventory.tasks import reservations_release_expired_task

    assert reservations_release_expired_task.delay().get() == 0  # not yet expired
    released = services.reservations_release_expired(now=timezone.now() + timedelta(seconds=61))

    assert released == 1
    reservation.refresh_from_db()
    assert reservation.status == ReservationStatus.EXPIRED
    assert position(store, sku).available == 3
    # Running it again changes nothing.
    assert services.reservations_release_expired(now=timezone.now() + timedelta(seconds=120)) == 0
    assert ledger_mismatches() == []


def test_till_sale_beyond_stock_is_recorded_and_flagged_never_refused(store, sku):
    receive(store, sku, 1)

    operation = services.stock_sell_at_till(
        location_id=store.pk, lines=[(sku.pk, 2)], idempotency_key="receipt-77"
    )

    assert position(store, sku).on_hand == -1
    assert position(store, sku).available == 0
    discrepancy = TillDiscrepancy.objects.get()
    assert discrepancy.movement == operation.movements.get()
    assert OutboxEvent.objects.filter(topic="stock.till_discrepancy").count() == 1


def test_adjustment_cannot_take_on_hand_below_zero(store, sku):
    receive(store, sku, 2)
    with pytest.raises(InsufficientStock):
        services.stock_adjust(
            location_id=store.pk,
            sku_id=sku.pk,
            delta=-3,
            reason="shrinkage",
            idempotency_key="adj-1",
        )
    assert position(store, sku).on_hand == 2

    services.stock_adjust(
        location_id=store.pk, sku_id=sku.pk, delta=-2, reason="shrinkage", idempotency_key="adj-2"
    )
    assert position(store, sku).on_hand == 0


def test_adjustment_needs_a_known_reason(store, sku):
    with pytest.raises(InvalidInput):
        services.stock_adjust(
            location_id=store.pk, sku_id=sku.pk, delta=1, reason="because", idempotency_key="adj-x"
        )


def test_set_aside_restore_and_write_off(store, sku):
    receive(store, sku, 5)
    services.stock_set_aside(
        location_id=store.pk, sku_id=sku.pk, quantity=2, reason="damage", idempotency_key="sa-1"
    )
    pos = position(store, sku)
    assert (pos.on_hand, pos.unsellable, pos.available) == (5, 2, 3)

    services.stock_set_aside(
        location_id=store.pk,
        sku_id=sku.pk,
        quantity=1,
        reason="damage",
        restore=True,
        idempotency_key="sa-2",
    )
    services.stock_set_aside(
        location_id=store.pk,
        sku_id=sku.pk,
        quantity=1,
        reason="damage",
        write_off=True,
        idempotency_key="sa-3",
    )
    pos = position(store, sku)
    assert (pos.on_hand, pos.unsellable, pos.available) == (4, 0, 4)
    with pytest.raises(InsufficientStock):  # nothing unsellable left to restore
        services.stock_set_aside(
            location_id=store.pk,
            sku_id=sku.pk,
            quantity=1,
            reason="damage",
            restore=True,
            idempotency_key="sa-4",
        )
    assert ledger_mismatches() == []


def test_count_becomes_an_adjustment_for_the_difference(store, sku):
    receive(store, sku, 10)

    count = services.stock_count_apply(
        location_id=store.pk, counts=[(sku.pk, 7)], idempotency_key="count-1"
    )

    line = count.lines.get()
    assert (line.expected, line.counted, line.difference) == (10, 7, -3)
    assert position(store, sku).on_hand == 7
    adjustment = StockMovement.objects.get(kind=MovementKind.ADJUSTMENT)
    assert (adjustment.reason, adjustment.on_hand_delta) == ("count", -3)


def test_count_ignores_sales_rung_up_after_the_count_time(store, sku):
    receive(store, sku, 10)
    counted_at = timezone.now()
    # A sale at 10:05 of a shelf counted at 10:00: the count saw 8, the sale then took 1.
    services.stock_sell_at_till(
        location_id=store.pk,
        lines=[(sku.pk, 1)],
        idempotency_key="sale-1",
        occurred_at=counted_at + timedelta(minutes=5),
    )

    count = services.stock_count_apply(
        location_id=store.pk, counts=[(sku.pk, 8)], counted_at=counted_at, idempotency_key="count-2"
    )

    assert count.lines.get().difference == -2
    assert position(store, sku).on_hand == 7


def test_transfer_ship_partial_receive_and_discrepancy(warehouse, store, sku):
    receive(warehouse, sku, 10)
    transfer = services.transfer_request(
        source_id=warehouse.pk, destination_id=store.pk, lines=[(sku.pk, 6)], idempotency_key="tr-1"
    )

    services.transfer_ship(transfer_id=transfer.pk, idempotency_key="tr-1-ship")
    assert position(warehouse, sku).on_hand == 4
    assert (position(store, sku).on_hand, position(store, sku).incoming) == (0, 6)

    services.transfer_receive(
        transfer_id=transfer.pk, received={sku.pk: 4}, idempotency_key="tr-1-rcv-1"
    )
    transfer.refresh_from_db()
    assert transfer.status == "partially_received"
    assert (position(store, sku).on_hand, position(store, sku).incoming) == (4, 2)

    services.transfer_receive(
        transfer_id=transfer.pk, received={sku.pk: 1}, close=True, idempotency_key="tr-1-rcv-2"
    )
    transfer.refresh_from_db()
    line = transfer.lines.get()
    assert transfer.status == "received"
    assert (line.quantity_shipped, line.quantity_received, line.discrepancy) == (6, 5, -1)
    assert (position(store, sku).on_hand, position(store, sku).incoming) == (5, 0)
    assert ledger_mismatches() == []


def test_transfer_cannot_ship_more_than_the_source_can_sell(warehouse, store, sku):
    receive(warehouse, sku, 2)
    transfer = services.transfer_request(
        source_id=warehouse.pk, destination_id=store.pk, lines=[(sku.pk, 3)], idempotency_key="tr-2"
    )
    with pytest.raises(InsufficientStock):
        services.transfer_ship(transfer_id=transfer.pk, idempotency_key="tr-2-ship")
    transfer.refresh_from_db()
    assert transfer.status == "requested"
    assert position(warehouse, sku).on_hand == 2


def test_every_available_change_records_an_outbox_event_and_low_stock_crossings(store, sku):
    receive(store, sku, 5)
    services.reservation_create(
        sku_id=sku.pk, location_id=store.pk, quantity=4, idempotency_key="r", channel="web"
    )

    topics = list(OutboxEvent.objects.values_list("topic", flat=True))
    assert topics == [
        "stock.available_changed",
        "stock.back_in_stock",
        "stock.available_changed",
        "stock.low",
    ]
    low = OutboxEvent.objects.get(topic="stock.low").payload
    assert (low["sku"], low["location"], low["available"], low["low_stock_threshold"]) == (
        sku.code,
        store.code,
        1,
        2,
    )

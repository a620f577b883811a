"""The fulfilment life cycle: picking, ready, hand-over, shipping, cancel, expiry, reminders."""

import io
from datetime import timedelta

import pytest
import segno
from django.core import mail
from django.utils import timezone

from common.exceptions import IllegalTransition
from inventory.models import Reservation, StockMovement
from inventory.selectors import ledger_mismatches
from notifications import sms
from notifications.models import Notification
from orders import pickup, services
from orders.exceptions import WaitingForTransfer, WrongPickupCode
from orders.models import Order, OrderEvent
from orders.tasks import orders_expire_overdue_task, orders_remind_pickup_task
from tests.factories import LocationFactory
from tests.orders.conftest import (
    act,
    active_reservations,
    committed,
    hand_over,
    key,
    line,
    place_delivery,
    place_pickup,
    position,
    receive,
)

pytestmark = pytest.mark.django_db
STAFF = {"actor": "staff:alice", "channel": "backoffice"}


def ready_order(customer, store, sku, quantity=2):
    receive(store, sku, 5)
    order = place_pickup(customer, store, [line(sku, quantity)])
    act(services.order_picking_start, order_id=order.pk, idempotency_key=key(), **STAFF)
    return act(services.order_mark_ready, order_id=order.pk, idempotency_key=key(), **STAFF)


def run_task(task):
    with committed():
        return task.delay().get()


def code_of(order) -> str:
    return pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce)


def test_click_and_collect_end_to_end_commits_the_reserved_units_on_hand_over(customer, store, sku):
    # given an order prepared and marked ready at the store
    order = ready_order(customer, store, sku)
    assert order.status == "ready_for_pickup"
    assert order.pickup_deadline == order.ready_at + timedelta(days=store.pickup_hold_days)

    # then the customer got the pickup code by email and SMS, in French
    ready_mail = next(m for m in mail.outbox if "prête" in m.subject)
    assert code_of(order) in ready_mail.body
    # ... with the QR code as a PNG image (what the store's scanner reads), not its text
    payload = pickup.qr_payload(reference=order.reference, nonce=order.pickup_nonce)
    assert payload not in ready_mail.body
    [(name, image, mimetype)] = ready_mail.attachments
    assert (name, mimetype) == (f"retrait-{order.reference}.png", "image/png")
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    expected = io.BytesIO()  # the image of exactly this payload
    segno.make(payload, error="m").save(expected, kind="png", scale=8, border=4)
    assert image == expected.getvalue()
    assert any(code_of(order) in message.body for message in sms.outbox)

    # when staff hand it over against the code, taking the payment at the till
    hand_over(order, code_of(order), **STAFF)

    # then the units left the ledger and the journal shows every step with who and where
    order.refresh_from_db()
    assert order.status == "collected" and order.closed_at is not None
    assert set(order.lines.values_list("status", flat=True)) == {"fulfilled"}
    pos = position(store, sku)
    assert (pos.on_hand, pos.reserved) == (3, 0)
    assert Reservation.objects.get(reference=order.reference).status == "committed"
    assert list(order.events.values_list("kind", "actor")) == [
        ("placed", "test"),
        ("allocated", "test"),
        ("picking", "staff:alice"),
        ("ready_for_pickup", "staff:alice"),
        ("collected", "staff:alice"),
    ]
    assert ledger_mismatches() == []


def test_a_wrong_pickup_code_is_refused_and_changes_nothing(customer, store, sku):
    order = ready_order(customer, store, sku)
    movements = StockMovement.objects.count()

    with pytest.raises(WrongPickupCode):
        act(
            services.order_collect, order_id=order.pk, code="AAAAAA", idempotency_key=key(), **STAFF
        )

    order.refresh_from_db()
    assert order.status == "ready_for_pickup"
    assert StockMovement.objects.count() == movements
    assert position(store, sku).reserved == 2


def test_the_qr_payload_is_accepted_as_the_code(customer, store, sku):
    order = ready_order(customer, store, sku)
    payload = pickup.qr_payload(reference=order.reference, nonce=order.pickup_nonce)
    hand_over(order, payload, **STAFF)
    assert Order.objects.get(pk=order.pk).status == "collected"


def test_illegal_transitions_are_refused_with_the_allowed_ones(customer, store, sku):
    receive(store, sku, 5)
    order = place_pickup(customer, store, [line(sku)])

    with pytest.raises(IllegalTransition) as refused:
        act(
            services.order_collect,
            order_id=order.pk,
            code=code_of(order),
            idempotency_key=key(),
            **STAFF,
        )
    assert refused.value.details["allowed"] == ["cancelled", "picking"]
    with pytest.raises(IllegalTransition):
        act(services.order_ship, order_id=order.pk, idempotency_key=key(), **STAFF)
    with pytest.raises(IllegalTransition):
        act(services.order_deliver, order_id=order.pk, idempotency_key=key(), **STAFF)
    assert Order.objects.get(pk=order.pk).status == "allocated"
    assert position(store, sku).reserved == 1


def test_cancel_releases_every_reservation_and_cannot_happen_twice(
    customer, store, warehouse, sku, sku2
):
    # given an order with a local line and a line coming by transfer
    receive(store, sku, 5)
    receive(warehouse, sku2, 5)
    order = place_pickup(customer, store, [line(sku), line(sku2)])

    # when the customer cancels
    act(
        services.order_cancel,
        order_id=order.pk,
        idempotency_key=key(),
        reason="changed my mind",
        **STAFF,
    )

    # then nothing is held any more, the transfer is cancelled, the customer is told
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert set(order.lines.values_list("status", flat=True)) == {"cancelled"}
    assert active_reservations(order) == []
    assert position(store, sku).reserved == 0 and position(warehouse, sku2).reserved == 0
    assert order.allocations.get(kind="transfer").transfer.status == "cancelled"
    assert any("annulée" in m.subject for m in mail.outbox)
    with pytest.raises(IllegalTransition):
        act(services.order_cancel, order_id=order.pk, idempotency_key=key(), **STAFF)


def test_a_replayed_transition_request_applies_once(customer, store, sku):
    receive(store, sku, 5)
    order = place_pickup(customer, store, [line(sku)])
    first = act(services.order_picking_start, order_id=order.pk, idempotency_key="same", **STAFF)
    again = act(services.order_picking_start, order_id=order.pk, idempotency_key="same", **STAFF)
    assert again.replayed and first.status == "picking"
    assert OrderEvent.objects.filter(order=order, kind="picking").count() == 1


def test_delivery_ships_then_is_delivered_and_the_units_leave_on_shipping(customer, warehouse, sku):
    receive(warehouse, sku, 4)
    order = place_delivery(customer, [line(sku, 3)])
    act(services.order_picking_start, order_id=order.pk, idempotency_key=key(), **STAFF)

    act(services.order_ship, order_id=order.pk, idempotency_key=key(), tracking="1Z999", **STAFF)
    assert (position(warehouse, sku).on_hand, position(warehouse, sku).reserved) == (1, 0)
    assert list(order.lines.values_list("status", flat=True)) == ["open"]  # on its way
    act(services.order_deliver, order_id=order.pk, idempotency_key=key(), **STAFF)

    order.refresh_from_db()
    assert order.status == "delivered"
    assert list(order.lines.values_list("status", flat=True)) == ["fulfilled"]
    assert ledger_mismatches() == []


def test_a_split_delivery_is_shipped_when_every_parcel_has_left(customer, sku, sku2):
    from tests.factories import WarehouseFactory

    a, b = WarehouseFactory(code="WA"), WarehouseFactory(code="WB")
    receive(a, sku, 1)
    receive(b, sku2, 1)
    order = place_delivery(customer, [line(sku), line(sku2)])
    act(services.order_picking_start, order_id=order.pk, idempotency_key=key(), **STAFF)

    act(services.order_ship, order_id=order.pk, location_id=a.pk, idempotency_key=key(), **STAFF)
    assert Order.objects.get(pk=order.pk).status == "picking"
    act(services.order_ship, order_id=order.pk, location_id=b.pk, idempotency_key=key(), **STAFF)
    assert Order.objects.get(pk=order.pk).status == "shipped"


def test_mark_ready_waits_for_the_transfer_then_the_received_units_are_held_for_the_order(
    customer, store, warehouse, sku
):
    # given an order whose only line comes from the warehouse
    receive(warehouse, sku, 3)
    order = place_pickup(customer, store, [line(sku, 2)])
    act(services.order_picking_start, order_id=order.pk, idempotency_key=key(), **STAFF)
    allocation = order.allocations.get(kind="transfer")

    # then it cannot be ready before the goods arrive
    with pytest.raises(WaitingForTransfer):
        act(services.order_mark_ready, order_id=order.pk, idempotency_key=key(), **STAFF)

    # when the warehouse ships the transfer and the store receives it
    act(
        services.order_transfer_ship,
        order_id=order.pk,
        allocation_id=allocation.pk,
        idempotency_key=key(),
        **STAFF,
    )
    wh = position(warehouse, sku)
    assert (wh.on_hand, wh.reserved) == (1, 0)
    assert position(store, sku).incoming == 2
    act(
        services.order_transfer_receive,
        order_id=order.pk,
        allocation_id=allocation.pk,
        idempotency_key=key(),
        **STAFF,
    )

    # then the units are in the store and held for this order (nobody else can sell them)
    shop = position(store, sku)
    assert (shop.on_hand, shop.reserved, shop.incoming, shop.available) == (2, 2, 0, 0)
    assert [(r.location_id, r.quantity) for r in active_reservations(order)] == [(store.pk, 2)]
    act(services.order_mark_ready, order_id=order.pk, idempotency_key=key(), **STAFF)
    order.refresh_from_db()
    hand_over(order, code_of(order), **STAFF)
    assert (position(store, sku).on_hand, position(store, sku).reserved) == (0, 0)
    assert ledger_mismatches() == []


def test_uncollected_orders_expire_after_the_deadline_and_the_stock_goes_back_on_sale(
    customer, store, sku
):
    # given a ready order whose deadline passed, and one still within it
    overdue = ready_order(customer, store, sku, quantity=2)
    Order.objects.filter(pk=overdue.pk).update(pickup_deadline=timezone.now() - timedelta(hours=1))
    receive(store, sku, 5)
    waiting = place_pickup(customer, store, [line(sku, 1)])

    # when the periodic task runs (twice: it is safe to)
    assert run_task(orders_expire_overdue_task) == 1
    assert run_task(orders_expire_overdue_task) == 0

    # then the overdue order expired, its units are on sale again, the customer was told
    assert Order.objects.get(pk=overdue.pk).status == "expired"
    assert Order.objects.get(pk=waiting.pk).status == "allocated"
    assert position(store, sku).reserved == 1
    assert any("non retirée" in m.subject for m in mail.outbox)


def test_the_pickup_reminder_is_sent_once_before_the_deadline(customer, store, sku):
    order = ready_order(customer, store, sku)
    Order.objects.filter(pk=order.pk).update(pickup_deadline=timezone.now() + timedelta(hours=5))

    assert run_task(orders_remind_pickup_task) == 1
    assert run_task(orders_remind_pickup_task) == 0
    assert Notification.objects.filter(kind="pickup_reminder", channel="email").count() == 1
    assert sum("Rappel" in m.subject for m in mail.outbox) == 1


def test_notifications_are_in_the_customer_s_language(customer, store, sku):
    customer.language = "en"
    customer.save()
    receive(store, sku, 5)
    place_pickup(customer, store, [line(sku)])
    assert [m.subject for m in mail.outbox][-1].endswith("confirmed")


def test_an_inactive_pickup_store_is_refused_even_with_stock(customer, sku):
    shop = LocationFactory(code="SHUT")
    receive(shop, sku, 2)
    shop.is_active = False
    shop.save()
    from orders.exceptions import StoreInactive

    with pytest.raises(StoreInactive):
        place_pickup(customer, shop, [line(sku)])

"""One path for an order's transfer (#20): shipped and received from the order (the board, the
orders API) or from the stock side (the Transfers page, the transfers API), the units land on the
order — and a store whose tills sold below zero still takes the customer's goods in.

The repro: the tills sell two TEE at the pickup store, which had none (till sales may go below
zero); a click & collect order for one TEE routes as a transfer from the warehouse; the transfer
ships; receiving it was refused `insufficient_stock` on the board, and succeeded on the
Transfers page with the unit going into general stock and the order left waiting for it."""

import pytest

from inventory import services as stock
from inventory.models import Reservation, ReservationStatus
from orders.models import AllocationKind, AllocationStatus, Order
from tests.orders.conftest import line, place_pickup, position, receive
from tests.orders.test_api import post

pytestmark = pytest.mark.django_db


@pytest.fixture
def stranded(customer, store, warehouse, sku):
    """The order, routed as a transfer to a store whose tills sold 2 units it did not have."""
    receive(warehouse, sku, 5)
    stock.stock_sell_at_till(
        location_id=store.pk, lines=[(sku.pk, 2)], idempotency_key="till-R1", reference="R1"
    )
    assert position(store, sku).on_hand == -2
    order = place_pickup(customer, store, [line(sku, 1)])
    allocation = order.allocations.get()
    assert allocation.kind == AllocationKind.TRANSFER
    return order, allocation


def _held_for_the_order(order, store) -> int:
    return sum(
        r.quantity
        for r in Reservation.objects.filter(
            reference=order.reference, location=store, status=ReservationStatus.ACTIVE
        )
    )


RECEIVE_FROM = {  # (url, body) of each entry point
    "the order (board, orders API)": lambda order, allocation, sku: (
        f"/api/v1/orders/{order.reference}/transfers/{allocation.pk}/receive/",
        {},
    ),
    "the stock side (Transfers page, transfers API)": lambda order, allocation, sku: (
        f"/api/v1/transfers/{allocation.transfer_id}/receive/",
        {"lines": [{"sku": sku.code, "quantity": 1}]},
    ),
}


@pytest.mark.parametrize("receive_at", RECEIVE_FROM.values(), ids=RECEIVE_FROM.keys())
@pytest.mark.parametrize("ship_from", ["order", "stock side"])
def test_the_order_s_transfer_lands_on_the_order_whichever_page_receives_it(
    till_client, stranded, store, warehouse, sku, receive_at, ship_from
):
    order, allocation = stranded
    ship_url = (
        f"/api/v1/orders/{order.reference}/transfers/{allocation.pk}/ship/"
        if ship_from == "order"
        else f"/api/v1/transfers/{allocation.transfer_id}/ship/"
    )
    shipped = post(till_client, ship_url, {}, key="ship")
    assert shipped.status_code == 200, shipped.json()
    allocation.refresh_from_db()
    assert allocation.status == AllocationStatus.IN_TRANSIT
    assert position(warehouse, sku).reserved == 0  # the source's hold went with the goods

    url, body = receive_at(order, allocation, sku)
    received = post(till_client, url, body, key="receive")

    assert received.status_code == 200, received.json()
    allocation.refresh_from_db()
    assert allocation.status == AllocationStatus.RECEIVED
    assert _held_for_the_order(order, store) == 1  # the unit is the order's, not the shelf's
    shelf = position(store, sku)
    assert (shelf.on_hand, shelf.reserved) == (-1, 1)  # the till's −2 stays to be counted
    picking = post(till_client, f"/api/v1/orders/{order.reference}/picking/", key="pick")
    assert picking.status_code == 200, picking.json()


def test_an_order_s_transfer_cannot_be_cancelled_from_the_stock_side(till_client, stranded):
    order, allocation = stranded

    refused = post(till_client, f"/api/v1/transfers/{allocation.transfer_id}/cancel/", key="c")

    assert refused.status_code == 409
    assert refused.json()["code"] == "transfer_owned_by_order"
    assert order.reference in refused.json()["message"]
    assert Order.objects.get(pk=order.pk).allocations.get().status == AllocationStatus.RESERVED

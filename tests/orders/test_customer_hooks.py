"""Orders take part in the customer reference: merges, erasure, export and history."""

import pytest

from customers import selectors as customer_selectors
from customers import services as customer_services
from customers.exceptions import ErasureBlocked
from orders import services
from tests.customers.factories import CustomerFactory
from tests.orders.conftest import act, key, line, place_delivery, place_pickup, receive

pytestmark = pytest.mark.django_db


def test_an_open_order_blocks_erasure_and_a_closed_one_is_anonymised(
    customer, store, warehouse, sku
):
    receive(store, sku, 5)
    receive(warehouse, sku, 5)
    open_order = place_pickup(customer, store, [line(sku)])

    with pytest.raises(ErasureBlocked) as blocked:
        customer_services.customer_erase(customer=customer, actor="dpo", reason="request")
    assert open_order.reference in str(blocked.value.details) + blocked.value.message

    act(
        services.order_cancel,
        order_id=open_order.pk,
        idempotency_key=key(),
        actor="x",
        channel="backoffice",
    )
    delivered = place_delivery(customer, [line(sku)])
    act(
        services.order_cancel,
        order_id=delivered.pk,
        idempotency_key=key(),
        actor="x",
        channel="backoffice",
    )
    customer_services.customer_erase(customer=customer, actor="dpo", reason="request")
    delivered.refresh_from_db()
    assert (delivered.ship_address, delivered.contact_email) == ("", "")


def test_orders_appear_in_the_history_and_the_export_and_follow_a_merge(customer, store, sku):
    receive(store, sku, 5)
    other = CustomerFactory()
    order = place_pickup(other, store, [line(sku)])

    customer_services.customer_merge(survivor=customer, absorbed=other, actor="cs", reason="same")

    order.refresh_from_db()
    assert order.customer_id == customer.pk
    page = customer_selectors.customer_history(customer=customer, limit=10)
    assert order.reference in [entry.data.get("order") for entry in page.entries]
    export = customer_selectors.customer_export(customer=customer)
    assert [o["reference"] for o in export["orders"]] == [order.reference]

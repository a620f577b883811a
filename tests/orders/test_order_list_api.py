"""The order list: filtered, paginated, and a storefront sees only its own channel's orders."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import Order
from tests.customers.factories import CustomerFactory
from tests.factories import LocationFactory
from tests.orders.conftest import line, place_delivery, place_pickup, receive

pytestmark = pytest.mark.django_db
URL = "/api/v1/orders/"


@pytest.fixture
def orders(customer, store, warehouse, sku, sku2):
    """Three web orders (two for pickup at PARIS01, one shipped from WH01), one app order and
    one till-side back-office order; the oldest placed 3 days ago."""
    receive(store, sku, 20)
    receive(store, sku2, 20)
    receive(warehouse, sku, 20)
    other = CustomerFactory()
    placed = [
        place_pickup(customer, store, [line(sku)]),
        place_pickup(other, store, [line(sku), line(sku2, 2)]),
        place_delivery(customer, [line(sku)]),
        place_pickup(customer, store, [line(sku)], channel="app"),
        place_pickup(other, store, [line(sku)], channel="backoffice"),
    ]
    Order.objects.filter(pk=placed[0].pk).update(placed_at=timezone.now() - timedelta(days=3))
    return placed


def _refs(response):
    assert response.status_code == 200, response.json()
    return [row["reference"] for row in response.json()["results"]]


def test_staff_filter_by_customer_channel_status_store_and_dates(
    api_client_factory, orders, customer, warehouse
):
    staff = api_client_factory(scopes=["orders:read"], channel="backoffice")
    first, second, shipped, app, backoffice = (o.reference for o in orders)

    assert _refs(staff.get(URL)) == [backoffice, app, shipped, second, first]  # newest first
    assert _refs(staff.get(URL, {"customer": str(customer.reference)})) == [app, shipped, first]
    assert _refs(staff.get(URL, {"customer": customer.number, "channel": "web"})) == [
        shipped,
        first,
    ]
    assert _refs(staff.get(URL, {"store": warehouse.code})) == [shipped]  # it serves it
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert first not in _refs(staff.get(URL, {"placed_from": since}))
    assert _refs(staff.get(URL, {"placed_to": since})) == [first]
    assert _refs(staff.get(URL, {"status": "collected"})) == []
    row = staff.get(URL, {"customer": str(customer.reference), "channel": "app"}).json()
    assert row["results"][0]["line_count"] == 1 and row["count"] == 1


def test_a_storefront_key_lists_only_its_own_channel(api_client_factory, orders):
    web = api_client_factory(scopes=["orders:read"], channel="web")
    first, second, shipped, app, backoffice = (o.reference for o in orders)

    assert _refs(web.get(URL)) == [shipped, second, first]
    assert _refs(web.get(URL, {"channel": "app"})) == []  # not another channel's, even asked


@pytest.mark.parametrize(
    "params,field",
    [
        ({"status": "lost"}, "status"),
        ({"channel": "moon"}, "channel"),
        ({"placed_from": "yesterday"}, "placed_from"),
        ({"placed_from": "2026-12-02T10:00:00Z", "placed_to": "2026-12-01T10:00:00Z"}, "placed_to"),
        ({"page_size": "0"}, "page_size"),
    ],
)
def test_an_invalid_filter_is_a_400_not_everything(api_client_factory, orders, params, field):
    staff = api_client_factory(scopes=["orders:read"], channel="backoffice")

    response = staff.get(URL, params)

    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert field in response.json()["details"]


def test_unknown_customer_or_store_is_a_404(api_client_factory, orders):
    staff = api_client_factory(scopes=["orders:read"], channel="backoffice")
    assert staff.get(URL, {"customer": "00000000-0000-0000-0000-000000000000"}).status_code == 404
    assert staff.get(URL, {"store": "NOWHERE"}).json()["code"] == "unknown_location"


def test_a_page_costs_the_same_queries_whatever_its_size(
    api_client_factory, customer, store, sku, django_assert_max_num_queries
):
    receive(store, sku, 100)
    LocationFactory(code="OTHER")
    for _ in range(25):
        place_pickup(customer, store, [line(sku)])
    staff = api_client_factory(scopes=["orders:read"], channel="backoffice")

    with django_assert_max_num_queries(6):
        small = staff.get(URL, {"page_size": 2})
    with django_assert_max_num_queries(6):
        large = staff.get(URL, {"page_size": 25})

    assert len(small.json()["results"]) == 2 and len(large.json()["results"]) == 25

"""Bad input to the storefront API gets a JSON 4xx with a stable code and changes nothing: JSON
nested 100,000 deep, lone surrogates, numbers that overflow, absurd amounts and dates."""

import json

import pytest

from inventory.models import Reservation
from orders.models import Order
from tests.orders.conftest import receive
from tests.orders.test_api import body

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000


def _raw_order(**replace: str) -> str:
    raw = json.dumps(body())
    for old, new in replace.items():
        assert old in raw, old
        raw = raw.replace(old, new, 1)
    return raw


ORDER_CASES = {
    "nested 100k deep": DEEP,
    "a lone surrogate in a name": _raw_order(**{'"Camille"': '"Cam\\ud800ille"'}),
    "1e400 as a quantity": _raw_order(**{'"quantity": 2': '"quantity": 1e400'}),
    "NaN as a quantity": _raw_order(**{'"quantity": 2': '"quantity": NaN'}),
    "unit price 1e30": _raw_order(**{'"19.90"': '"1e30"'}),
    "unit price 1e999999": _raw_order(**{'"19.90"': '"1e999999"'}),
    "unit price 100 million": _raw_order(**{'"19.90"': '"100000000.00"'}),
}


@pytest.fixture
def stocked(store, warehouse, sku):
    receive(store, sku, 5)


@pytest.mark.parametrize("raw", ORDER_CASES.values(), ids=ORDER_CASES.keys())
def test_a_malformed_order_is_a_400_and_places_nothing(web_client, stocked, raw):
    answer = web_client.generic(
        "POST", "/api/v1/orders/", raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY="b"
    )

    assert answer.status_code == 400, answer.content[:300]
    assert answer.json()["code"] in {"malformed_request", "invalid"}
    assert Order.objects.count() == 0 and Reservation.objects.count() == 0


def test_a_cart_check_nested_100k_deep_is_a_400(web_client, stocked):
    answer = web_client.generic(
        "POST", "/api/v1/orders/cart-check/", DEEP, content_type="application/json"
    )
    assert (answer.status_code, answer.json()["code"]) == (400, "malformed_request")


@pytest.mark.parametrize(
    "query",
    [
        "occurred_before=0996-10-26T22:07:13%2B20:04",
        "occurred_after=9999-12-31T23:59:59-23:59",
        "occurred_after=1969-12-31T23:00:00Z",
    ],
)
def test_a_movements_filter_outside_1970_2100_is_a_400(api_client_factory, query):
    client = api_client_factory(scopes=["stock:read"])
    answer = client.get(f"/api/v1/stock/movements/?{query}")
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid")


@pytest.mark.parametrize(
    "expires_at", ["9999-12-31T23:59:59Z", "2150-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00"]
)
def test_a_hold_cannot_be_set_for_ever(till_client, stocked, store, sku, expires_at):
    answer = till_client.post(
        "/api/v1/reservations/",
        {"lines": [{"sku": sku.code, "location": store.code, "quantity": 1}],
         "expires_at": expires_at},
        format="json",
        HTTP_IDEMPOTENCY_KEY="hold",
    )  # fmt: skip
    assert answer.status_code == 400, answer.json()
    assert not Reservation.objects.exists()

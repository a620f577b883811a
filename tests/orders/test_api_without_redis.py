"""Without Redis the API keeps serving what the database can answer, and what must not fail
open answers 503 with Retry-After: against a Redis port nobody listens on (connection refused);
tests/common/test_outages_live.py stops a real one."""

import pytest

from orders import pickup
from orders.models import Order, OrderStatus
from tests.orders.conftest import receive
from tests.orders.test_api import body, post

pytestmark = pytest.mark.django_db

NOBODY = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_down(settings):
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "common.cache.BestEffortRedisCache", "LOCATION": NOBODY},
        "counters": {"BACKEND": "common.cache.RedisCache", "LOCATION": NOBODY},
    }


def test_without_redis_the_api_serves_from_the_database_and_the_code_check_answers_503(
    web_client, till_client, store, warehouse, sku, redis_down
):
    receive(store, sku, 5)
    availability = web_client.get("/api/v1/availability/?skus=TSHIRT-M")
    assert availability.status_code == 200  # cache misses: read from the ledger
    assert availability.json()["results"][0]["available"] == 5

    placed = post(web_client, "/api/v1/orders/", body(), key="o1")
    assert placed.status_code == 201, placed.json()  # committed and answered as committed
    reference = placed.json()["reference"]
    post(till_client, f"/api/v1/orders/{reference}/picking/", key="p1")
    assert post(till_client, f"/api/v1/orders/{reference}/ready/", key="r1").status_code == 200

    order = Order.objects.get(reference=reference)
    code = pickup.pickup_code(reference=reference, nonce=order.pickup_nonce)
    paid = {"amount": "39.80", "currency": "EUR", "till_reference": "T1-9"}
    refused = post(
        till_client, f"/api/v1/orders/{reference}/collect/", {"code": code, "paid_at_till": paid}
    )
    # The lockout counts wrong codes in Redis: without it, no unlimited guessing — a 503.
    assert refused.status_code == 503 and refused["Retry-After"]
    assert refused.json()["code"] == "service_unavailable"
    order.refresh_from_db()
    assert order.status == OrderStatus.READY_FOR_PICKUP

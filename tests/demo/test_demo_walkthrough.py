"""The README's demo keys do what the README says, on the data `make run` loads: a web order
for pickup, prepared and handed over (paid at the till) with the till key, refunded per line by
the till, never by the storefront."""

import pytest
from django.core.management import call_command
from django.test import TestCase
from rest_framework.test import APIClient

from demo import data as demo
from inventory.models import StockPosition
from orders import pickup
from orders.models import Order

pytestmark = pytest.mark.django_db


def _client(name):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {demo.DEMO_KEYS[name][0]}")
    return client


def _post(client, url, body=None, key="k"):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(url, body or {}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_click_and_collect_order_walks_through_with_the_demo_keys():
    call_command("load_demo", verbosity=0)
    web, till = _client("demo-web-storefront"), _client("demo-pos")
    shelf = (
        StockPosition.objects.filter(location__code="PARIS-RIVOLI", on_hand__gte=4)
        .select_related("sku")
        .first()
    )
    placed = _post(
        web,
        "/api/v1/orders/",
        {
            "customer": {"email": "lea.martin@gmail.com", "first_name": "Léa"},
            "lines": [
                {"sku": shelf.sku.code, "quantity": 2, "unit_price": "25.00", "currency": "EUR"}
            ],
            "fulfilment": {"type": "pickup", "store": "PARIS-RIVOLI"},
        },
    )
    assert placed.status_code == 201, placed.json()
    base = f"/api/v1/orders/{placed.json()['reference']}"

    assert _post(till, f"{base}/picking/", key="p").status_code == 200
    assert _post(till, f"{base}/ready/", key="r").status_code == 200
    order = Order.objects.get(reference=placed.json()["reference"])
    code = pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce)
    paid = {"amount": "50.00", "currency": "EUR", "till_reference": "T1-1"}
    collected = _post(till, f"{base}/collect/", {"code": code, "paid_at_till": paid}, key="c")
    assert collected.status_code == 200 and collected.json()["status"] == "collected"

    refund = {"lines": [{"line": 1, "quantity": 1}], "currency": "EUR", "reason": "damaged"}
    refunds = f"/api/v1/payments/orders/{order.reference}/refunds/"
    assert _post(web, refunds, refund, key="w").status_code == 403  # a storefront cannot
    refunded = _post(till, refunds, refund, key="t")
    assert refunded.status_code == 201
    assert refunded.json()["payment"]["refunded"] == "25.00"

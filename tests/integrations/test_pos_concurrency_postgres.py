"""A till re-sending one receipt under fresh event ids, all at once, on a real PostgreSQL."""

import json

import pytest
from django.db import connection
from django.test import Client

from common.signing import signature_header
from integrations.models import PosEvent, StoreReceipt
from tests.integrations.test_pos import URL, sale
from tests.inventory.conftest import position, receive
from tests.inventory.test_concurrency_postgres import _race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_one_receipt_sent_eight_times_at_once_under_new_ids_is_sold_once(integration, store, sku):
    assert connection.vendor == "postgresql"
    receive(store, sku, 20)

    def send(i):
        body = sale(f"retry-{i}", quantity=2)
        body["data"]["receipt"] = "R-777"
        raw = json.dumps(body).encode()
        return Client().generic(
            "POST",
            URL,
            raw,
            content_type="application/json",
            HTTP_X_OMNISTOCK_SIGNATURE=signature_header("s3cret", raw),
        )

    responses = _race(8, send)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 7 + [202], responses
    first = PosEvent.objects.get(receipt_number="R-777")
    assert {r.json()["event"] for r in responses if r.status_code == 200} == {first.pk}
    assert StoreReceipt.objects.filter(number="R-777").count() == 1
    assert position(store, sku).on_hand == 18

"""One sale per receipt: a till that re-sends a receipt under a fresh event id (common after a
timeout) is answered "duplicate" and nothing is applied twice — stock, receipt, points."""

import pytest

from integrations.models import PosEvent, PosTill, StoreReceipt
from loyalty.models import PointsLot
from loyalty.services import account_open
from tests.customers.factories import CustomerFactory
from tests.integrations.test_pos import post, sale
from tests.integrations.test_pos_batch import post_batch
from tests.inventory.conftest import position, receive

pytestmark = pytest.mark.django_db


def _sale(event_id, receipt="R-100", till="T1", **extra):
    body = sale(event_id, quantity=2, **extra)
    body["data"]["receipt"] = receipt
    body["till"] = till
    return body


def test_the_same_receipt_under_a_new_event_id_sells_and_earns_once(
    client, integration, store, sku
):
    receive(store, sku, 10)
    account = account_open(customer=CustomerFactory(), channel="store", actor="test")
    member = {"loyalty_card": account.card_number}

    first = post(client, _sale("E1", customer=member))
    again = post(client, _sale("E2-retry", customer=member))

    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {
        "status": "duplicate",
        "event": first.json()["event"],
        "event_id": "E1",
        "processing": "processed",
    }
    assert position(store, sku).on_hand == 8
    assert StoreReceipt.objects.count() == 1
    assert PointsLot.objects.filter(account=account).count() == 1
    assert not PosEvent.objects.filter(event_id="E2-retry").exists()


def test_another_till_or_store_may_print_the_same_receipt_number(client, integration, store, sku):
    receive(store, sku, 10)
    PosTill.objects.create(integration=integration, location=store, code="T2")

    assert post(client, _sale("E1", till="T1")).status_code == 202
    assert post(client, _sale("E2", till="T2")).status_code == 202
    assert position(store, sku).on_hand == 6


def test_a_batch_dedupes_receipts_within_itself_and_against_the_inbox(
    client, integration, store, sku
):
    receive(store, sku, 10)
    assert post(client, _sale("E1", receipt="R-1")).status_code == 202

    body = post_batch(
        client,
        [
            _sale("B1", receipt="R-1"),  # sold before under E1
            _sale("B2", receipt="R-2"),
            _sale("B3", receipt="R-2"),  # the same as B2, in this batch
        ],
    ).json()

    first = PosEvent.objects.get(event_id="E1")
    b2 = PosEvent.objects.get(event_id="B2")
    assert [(r["event_id"], r["status"], r["event"]) for r in body["results"]] == [
        ("B1", "duplicate", first.pk),
        ("B2", "accepted", b2.pk),
        ("B3", "duplicate", b2.pk),
    ]
    assert (body["accepted"], body["duplicates"]) == (1, 2)
    assert position(store, sku).on_hand == 6
    assert sorted(StoreReceipt.objects.values_list("number", flat=True)) == ["R-1", "R-2"]

"""POS batch intake and batched processing: a till's backlog in one signed request, applied
with a few statements for all its sales, with exactly the effects of one event at a time."""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.test import TestCase

from common.signing import signature_header
from integrations.models import OutboxEvent, PosEvent, PosEventStatus, StoreReceipt
from integrations.pos import (
    pos_events_process_batch,
    pos_events_process_pending,
    pos_events_receive_batch,
)
from inventory.models import StockMovement, StockOperation, TillDiscrepancy
from inventory.selectors import ledger_mismatches
from tests.factories import LocationFactory, SkuFactory
from tests.integrations.test_pos import event, ledger_state, opening_stock, post, sale
from tests.inventory.conftest import position, receive

pytestmark = pytest.mark.django_db
BATCH_URL = "/api/v1/pos/paris-tills/events/batch/"


def post_batch(client, events, **kwargs):
    return post(client, {"events": events}, url=BATCH_URL, **kwargs)


def test_a_batch_is_judged_event_by_event_and_applied_once(client, integration, store, sku):
    receive(store, sku, 10)
    other = SkuFactory(code="JEANS-32")
    receive(store, other, 4)
    events = [
        sale("B1", quantity=2),
        sale("B2", sku="JEANS-32", quantity=1),
        sale("B1", quantity=2),  # the till sent it twice
        sale("B3", sku="NOPE"),
        sale("B4", quantity=1, till="T9"),
        sale("B5", quantity=3),
    ]

    response = post_batch(client, events)

    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (3, 1, 2)
    assert [(r["index"], r["event_id"], r["status"]) for r in body["results"]] == [
        (0, "B1", "accepted"),
        (1, "B2", "accepted"),
        (2, "B1", "duplicate"),
        (3, "B3", "rejected"),
        (4, "B4", "rejected"),
        (5, "B5", "accepted"),
    ]
    assert body["results"][2]["event"] == body["results"][0]["event"]
    assert body["results"][3]["error"]["code"] == "unknown_sku"
    assert body["results"][4]["error"]["code"] == "unknown_till"
    assert (position(store, sku).on_hand, position(store, other).on_hand) == (5, 3)
    assert sorted(StoreReceipt.objects.values_list("number", flat=True)) == [
        "R-B1",
        "R-B2",
        "R-B5",
    ]
    processed = PosEvent.objects.filter(status=PosEventStatus.PROCESSED)
    assert sorted(processed.values_list("event_id", flat=True)) == ["B1", "B2", "B5"]
    rejected = PosEvent.objects.filter(status=PosEventStatus.REJECTED)
    assert sorted(e.error.split(":")[0] for e in rejected) == ["unknown_sku", "unknown_till"]
    assert ledger_mismatches() == []


def test_resending_a_whole_batch_is_safe(client, integration, store, sku):
    receive(store, sku, 10)
    events = [sale("A1", quantity=1), sale("A2", quantity=2)]
    first = post_batch(client, events).json()

    again = post_batch(client, events).json()

    assert (again["accepted"], again["duplicates"]) == (0, 2)
    assert [r["processing"] for r in again["results"]] == ["processed", "processed"]
    assert [r["event"] for r in again["results"]] == [r["event"] for r in first["results"]]
    assert position(store, sku).on_hand == 7
    assert StoreReceipt.objects.count() == 2


def test_events_sent_alone_then_in_a_batch_apply_once(client, integration, store, sku):
    receive(store, sku, 10)
    assert post(client, sale("S1", quantity=4)).status_code == 202

    body = post_batch(client, [sale("S1", quantity=4), sale("S2", quantity=1)]).json()

    assert [r["status"] for r in body["results"]] == ["duplicate", "accepted"]
    assert position(store, sku).on_hand == 5


def test_a_batch_mixes_every_event_type(client, integration, store, sku):
    opening_stock(store, sku, 20)
    t0 = datetime.now(UTC) - timedelta(minutes=50)
    events = [
        sale("M1", quantity=2, occurred_at=t0),
        event(
            "M2",
            "stock_count",
            occurred_at=t0 + timedelta(minutes=10),
            lines=[{"sku": "TEE-M", "counted": 15}],
        ),
        event(
            "M3",
            "return",
            occurred_at=t0 + timedelta(minutes=20),
            receipt="R-M3",
            currency="EUR",
            lines=[{"sku": "TEE-M", "quantity": 1, "unit_price": "29.90", "unsellable": True}],
        ),
        sale("M4", quantity=3, occurred_at=t0 + timedelta(minutes=30)),
    ]

    body = post_batch(client, list(reversed(events))).json()

    assert body["accepted"] == 4
    stock = position(store, sku)
    # Counted 15, one damaged unit returned (on hand and unsellable), three sold after.
    assert (stock.on_hand, stock.unsellable) == (13, 1)
    assert PosEvent.objects.filter(status=PosEventStatus.PROCESSED).count() == 4
    assert ledger_mismatches() == []


def test_a_backlog_in_batches_gives_the_same_stock_as_live_events(client, integration, sku):
    """Live: one event per request, in till order. Outage: the same backlog, shuffled, in
    batches of three. Same final stock; every sale recorded as it happened (the late ones get
    an opposite adjustment at the count, which already saw them)."""

    t0 = datetime.now(UTC) - timedelta(hours=1)

    def backlog(store_code):
        events = []
        for n in range(12):
            at = t0 + timedelta(minutes=3 * n)
            if n == 6:
                events.append(
                    event(
                        f"{store_code}-{n}",
                        "stock_count",
                        store=store_code,
                        occurred_at=at,
                        lines=[{"sku": "TEE-M", "counted": 30}],
                    )
                )
            else:
                events.append(
                    sale(f"{store_code}-{n}", quantity=n % 3 + 1, store=store_code, occurred_at=at)
                )
        return events

    def make_store(code):
        from integrations.models import PosTill

        location = LocationFactory(code=code)
        integration.stores.add(location)
        PosTill.objects.create(integration=integration, location=location, code="T1")
        opening_stock(location, sku, 40)
        return location

    live_store, outage_store = make_store("LIVE"), make_store("OUTAGE")
    for body in backlog("LIVE"):
        assert post(client, body).status_code == 202
    shuffled = random.Random(7).sample(backlog("OUTAGE"), 12)
    for start in range(0, 12, 3):
        assert post_batch(client, shuffled[start : start + 3]).json()["accepted"] == 3

    def sales(location):
        return sorted(
            StockMovement.objects.filter(location=location, kind="sale").values_list(
                "on_hand_delta", "occurred_at__minute"
            )
        )

    assert position(outage_store, sku).on_hand == position(live_store, sku).on_hand
    assert sales(outage_store) == sales(live_store)
    assert len(sales(live_store)) == 11
    assert ledger_mismatches() == []


def test_what_the_ledger_lacks_is_flagged_sale_by_sale(client, integration, store, sku):
    receive(store, sku, 3)
    t0 = datetime.now(UTC) - timedelta(minutes=5)

    post_batch(
        client,
        [
            sale("F1", quantity=2, occurred_at=t0),
            sale("F2", quantity=2, occurred_at=t0 + timedelta(seconds=1)),
            sale("F3", quantity=1, occurred_at=t0 + timedelta(seconds=2)),
        ],
    )

    # 3 on the shelf: the first sale fits, the second and third sell what is not there.
    flagged = dict(StoreReceipt.objects.values_list("number", "stock_flagged"))
    assert flagged == {"R-F1": False, "R-F2": True, "R-F3": True}
    assert sorted(TillDiscrepancy.objects.values_list("on_hand_after", flat=True)) == [-2, -1]
    assert position(store, sku).on_hand == -2
    assert OutboxEvent.objects.filter(topic="stock.till_discrepancy").count() == 2


def test_members_receipts_in_a_batch_join_their_history_and_earn_points(
    client, integration, store, sku
):
    from loyalty.models import PointsLot
    from loyalty.services import account_open
    from tests.customers.factories import CustomerFactory

    receive(store, sku, 10)
    customer = CustomerFactory()
    account = account_open(customer=customer, channel="store", actor="test")

    post_batch(
        client,
        [
            sale("P1", quantity=2, customer={"loyalty_card": account.card_number}),
            sale("P2", quantity=1),
        ],
    )

    receipts = dict(StoreReceipt.objects.values_list("number", "customer_id"))
    assert receipts == {"R-P1": customer.pk, "R-P2": None}
    lot = PointsLot.objects.get(account=account)
    assert lot.source_ref == f"pos:{integration.pk}:P1"


def test_one_bad_sale_does_not_hold_up_the_others(client, integration, store, sku):
    """A key already used for another stock change refuses the bulk step: every sale is then
    applied one by one, and only the bad one fails (staff can replay it once fixed)."""
    receive(store, sku, 10)
    StockOperation.objects.create(
        idempotency_key=f"pos:{integration.pk}:X2", kind="receipt", request_hash="other"
    )

    post_batch(client, [sale("X1", quantity=1), sale("X2", quantity=1), sale("X3", quantity=1)])

    statuses = dict(PosEvent.objects.values_list("event_id", "status"))
    assert statuses == {"X1": "processed", "X2": "failed", "X3": "processed"}
    assert "idempotency_key_reused" in PosEvent.objects.get(event_id="X2").error
    assert position(store, sku).on_hand == 8


def test_the_sweeper_applies_waiting_events_in_batches(integration, store, sku):
    receive(store, sku, 10)
    raw = json.dumps({"events": [sale(f"W{n}") for n in range(5)]}).encode()
    with TestCase.captureOnCommitCallbacks(execute=False):  # the task is lost
        pos_events_receive_batch(
            integration=integration, raw_body=raw, signature=signature_header("s3cret", raw)
        )
    assert PosEvent.objects.filter(status=PosEventStatus.RECEIVED).count() == 5

    assert pos_events_process_pending(batch_size=2) == 5

    assert PosEvent.objects.filter(status=PosEventStatus.PROCESSED).count() == 5
    assert position(store, sku).on_hand == 5
    every_pk = list(PosEvent.objects.values_list("pk", flat=True))
    assert pos_events_process_batch(inbox_pks=every_pk) == 0  # nothing left to apply


# ---- refused whole: 4xx, nothing applied -------------------------------------------------------


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"events": []}, 400, "invalid"),
        ({"events": "sale"}, 400, "invalid"),
        ([sale("L1")], 400, "invalid"),
        ({"event": sale("L1")}, 400, "invalid"),
    ],
)
def test_a_body_that_is_not_a_list_of_events_is_refused(
    client, integration, store, sku, body, status, code
):
    receive(store, sku, 5)
    before = ledger_state()

    response = post_batch(client, None, raw=json.dumps(body).encode())

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert ledger_state() == before
    assert PosEvent.objects.get().status == PosEventStatus.REJECTED


def test_too_many_events_too_large_unsigned_or_not_json(client, integration, store, sku, settings):
    receive(store, sku, 5)
    before = ledger_state()
    settings.POS_MAX_BATCH_EVENTS = 3

    too_many = post_batch(client, [sale(f"T{n}") for n in range(4)])
    unsigned = post_batch(client, [sale("U1")], secret=None)
    wrong = post_batch(client, [sale("U2")], secret="wrong")
    not_json = post_batch(client, None, raw=b"{nope")
    settings.POS_MAX_BATCH_BODY_BYTES = 500
    too_large = post_batch(client, [sale("T1"), sale("T2")])

    assert (too_many.status_code, too_many.json()["code"]) == (400, "invalid")
    assert (unsigned.status_code, wrong.status_code) == (401, 401)
    assert (not_json.status_code, not_json.json()["code"]) == (400, "malformed_request")
    assert (too_large.status_code, too_large.json()["code"]) == (413, "request_too_large")
    assert ledger_state() == before
    assert not PosEvent.objects.exclude(status=PosEventStatus.REJECTED).exists()


# ---- what the review found -------------------------------------------------------------------


def test_a_batch_judges_and_stores_exactly_as_the_single_endpoint(client, integration, store, sku):
    """Values validation normalises (a numeric receipt, padded codes, prices without cents)
    are accepted by both endpoints and stored the same way."""
    receive(store, sku, 10)

    def loose(event_id, receipt):
        body = sale(event_id, quantity=1)
        body["data"]["receipt"] = receipt
        body["data"]["currency"] = " EUR "
        body["data"]["lines"][0].update(sku=" TEE-M ", unit_price=10)
        body["data"]["tenders"] = [{"kind": "cash", "amount": 10}]
        return body

    assert post(client, loose("ONE", 1001)).status_code == 202
    body = post_batch(client, [loose("TWO", 1002), {**sale("BAD"), "data": {"lines": 5}}]).json()

    assert [r["status"] for r in body["results"]] == ["accepted", "rejected"]
    assert body["results"][1]["error"]["code"] == "invalid"
    receipts = {
        r.event.event_id: (r.number, r.currency, r.lines) for r in StoreReceipt.objects.all()
    }
    stored = ("EUR", [{"sku": "TEE-M", "quantity": 1, "unit_price": "10.00"}])
    assert receipts["ONE"] == ("1001", *stored) and receipts["TWO"] == ("1002", *stored)
    assert PosEvent.objects.filter(status=PosEventStatus.PROCESSED).count() == 2
    assert position(store, sku).on_hand == 8


def test_a_batch_applies_in_till_order_so_a_return_before_a_sale_refills_the_shelf(
    client, integration, store, sku
):
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    returned = event(
        "RET",
        "return",
        occurred_at=t0,
        receipt="R-RET",
        currency="EUR",
        lines=[{"sku": "TEE-M", "quantity": 1, "unit_price": "29.90"}],
    )

    post_batch(client, [sale("SOLD", quantity=1, occurred_at=t0 + timedelta(minutes=1)), returned])

    # The returned unit was on the shelf when the sale was rung up: nothing to flag.
    assert not TillDiscrepancy.objects.exists()
    assert not StoreReceipt.objects.get(number="R-SOLD").stock_flagged
    assert position(store, sku).on_hand == 0


def test_an_unexpected_error_in_one_sale_fails_that_sale_only(
    client, integration, store, sku, monkeypatch
):
    from integrations import pos

    receive(store, sku, 10)
    real_receipt_row = pos._receipt_row

    def breaks_on_r_x2(event, data, **kwargs):
        if data["receipt"] == "R-X2":
            raise ValueError("a value the database would refuse")
        return real_receipt_row(event, data, **kwargs)

    monkeypatch.setattr(pos, "_receipt_row", breaks_on_r_x2)

    post_batch(client, [sale("X1"), sale("X2"), sale("X3")])

    statuses = dict(PosEvent.objects.values_list("event_id", "status"))
    assert statuses == {"X1": "processed", "X2": "failed", "X3": "processed"}
    assert PosEvent.objects.get(event_id="X2").error.startswith("internal_error: ValueError")
    assert position(store, sku).on_hand == 8  # the failed sale moved nothing
    # and the queue is not blocked: the next event still goes through
    post_batch(client, [sale("X4")])
    assert PosEvent.objects.get(event_id="X4").status == "processed"

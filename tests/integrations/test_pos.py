"""POS webhooks: signed, idempotent, validated at the door, applied once, in any order."""

import json
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import TestCase

from common.signing import signature_header
from customers.selectors import customer_history
from integrations.models import PosEvent, PosEventStatus, PosTill, StoreReceipt
from inventory.models import StockMovement, TillDiscrepancy
from inventory.selectors import ledger_mismatches
from orders import pickup
from orders import services as order_services
from tests.customers.factories import CustomerFactory
from tests.factories import LocationFactory
from tests.inventory.conftest import position, receive

pytestmark = pytest.mark.django_db
URL = "/api/v1/pos/paris-tills/events/"


def event(event_id="E1", type="sale", store="PARIS01", till="T1", occurred_at=None, **data):
    occurred_at = occurred_at or datetime.now(UTC) - timedelta(minutes=1)
    return {
        "event_id": event_id,
        "type": type,
        "occurred_at": occurred_at.isoformat(),
        "store": store,
        "till": till,
        "data": data,
    }


def _paid(quantity) -> str:
    """What the tenders of `quantity` × 29.90 sum to (any value, for the malformed cases)."""
    if isinstance(quantity, int) and not isinstance(quantity, bool):
        return str(Decimal("29.90") * quantity)
    return "29.90"


def sale(event_id="E1", sku="TEE-M", quantity=1, **extra):
    return event(
        event_id,
        "sale",
        receipt=f"R-{event_id}",
        currency="EUR",
        lines=[{"sku": sku, "quantity": quantity, "unit_price": "29.90"}],
        tenders=[{"kind": "card", "amount": _paid(quantity)}],
        **extra,
    )


def post(client, body, *, secret="s3cret", timestamp=None, url=URL, raw=None):
    raw = raw if raw is not None else json.dumps(body).encode()
    headers = {}
    if secret is not None:
        headers["HTTP_X_OMNISTOCK_SIGNATURE"] = signature_header(secret, raw, timestamp=timestamp)
    with TestCase.captureOnCommitCallbacks(execute=True):  # the task runs after commit (eager)
        return client.generic("POST", url, raw, content_type="application/json", **headers)


def opening_stock(store, sku, quantity):
    """Stock already on the shelf before the till events of these tests (dated 2 hours ago)."""
    from inventory.services import stock_return

    stock_return(
        location_id=store.pk,
        lines=[(sku.pk, quantity)],
        idempotency_key=f"open-{store.pk}-{sku.pk}",
        occurred_at=datetime.now(UTC) - timedelta(hours=2),
    )


def ledger_state():
    return sorted(StockMovement.objects.values_list("position_id", "kind", "on_hand_delta"))


# ---- the happy paths -------------------------------------------------------------------------


def test_sale_is_accepted_then_applied_once_and_joins_the_customer_history(
    client, integration, store, sku
):
    receive(store, sku, 5)
    customer = CustomerFactory()
    from customers.services import identifier_add

    identifier_add(
        customer=customer,
        kind="loyalty_card",
        value="LC12345678",
        source="",
        sales_channel="store",
        actor="test",
    )

    response = post(client, sale(customer={"loyalty_card": "LC12345678"}))

    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    assert position(store, sku).on_hand == 4
    inbox = PosEvent.objects.get(event_id="E1")
    assert inbox.status == PosEventStatus.PROCESSED
    receipt = StoreReceipt.objects.get()
    assert (receipt.customer, receipt.number, str(receipt.total)) == (customer, "R-E1", "29.90")
    entries = customer_history(customer=customer, limit=10).entries
    assert any(entry.kind == "store_sale" for entry in entries)


def test_the_same_event_id_twice_has_one_effect_and_is_acknowledged_as_duplicate(
    client, integration, store, sku
):
    receive(store, sku, 5)
    first = post(client, sale())

    again = post(client, sale())

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["status"] == "duplicate"
    assert again.json()["event"] == first.json()["event"]
    assert position(store, sku).on_hand == 4
    assert StoreReceipt.objects.count() == 1


def test_till_may_sell_below_safety_stock_and_what_the_ledger_lacks_is_flagged(
    client, integration, store, sku
):
    receive(store, sku, 1)
    from inventory.services import safety_stock_set

    safety_stock_set(location_id=store.pk, quantity=1)

    response = post(client, sale(quantity=2))

    assert response.status_code == 202
    assert position(store, sku).on_hand == -1
    assert TillDiscrepancy.objects.count() == 1
    assert StoreReceipt.objects.get().stock_flagged


def test_return_puts_units_back_sellable_or_unsellable(client, integration, store, sku):
    body = event(
        "R1",
        "return",
        receipt="R-R1",
        currency="EUR",
        reason="damage",
        lines=[
            {"sku": "TEE-M", "quantity": 2, "unit_price": "29.90", "unsellable": False},
            {"sku": "TEE-M", "quantity": 1, "unit_price": "29.90", "unsellable": True},
        ],
    )

    assert post(client, body).status_code == 202

    pos = position(store, sku)
    assert (pos.on_hand, pos.unsellable) == (3, 1)
    assert StoreReceipt.objects.get().kind == "return"


def test_count_becomes_adjustments_taking_later_sales_into_account(client, integration, store, sku):
    opening_stock(store, sku, 10)
    counted_at = datetime.now(UTC) - timedelta(minutes=30)
    post(client, sale("S1", quantity=1, occurred_at=counted_at + timedelta(minutes=5)))

    response = post(
        client,
        event("C1", "stock_count", occurred_at=counted_at, lines=[{"sku": "TEE-M", "counted": 8}]),
    )

    assert response.status_code == 202
    # The shelf had 8 at the count; the sale five minutes later took one more.
    assert position(store, sku).on_hand == 7


def test_pickup_handover_collects_the_order(client, integration, store, sku):
    receive(store, sku, 3)
    customer = CustomerFactory()
    with TestCase.captureOnCommitCallbacks(execute=True):
        order = order_services.order_place(
            channel="web",
            customer=customer,
            fulfilment="pickup",
            pickup_location_id=store.pk,
            lines=[
                order_services.OrderLineRequest(
                    sku_id=sku.pk, quantity=1, unit_price="19.90", currency="EUR", sku_code=sku.code
                )
            ],
            idempotency_key="o-1",
            actor="test",
        )
    code = pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce)
    paid = {"kind": "card", "amount": "19.90", "currency": "EUR"}
    handover = event(
        "H1",
        "pickup_handover",
        order_reference=order.reference,
        pickup_code=code,
        paid_at_till=paid,
    )

    # Handed over before the store marked it ready: the event fails, and can be replayed.
    post(client, handover)
    failed = PosEvent.objects.get(event_id="H1")
    assert failed.status == PosEventStatus.FAILED
    with TestCase.captureOnCommitCallbacks(execute=True):
        order_services.order_picking_start(
            order_id=order.pk, actor="t", channel="backoffice", idempotency_key="p-1"
        )
        order_services.order_mark_ready(
            order_id=order.pk, actor="t", channel="backoffice", idempotency_key="r-1"
        )
    from integrations.pos import pos_event_replay

    replayed = pos_event_replay(inbox_pk=failed.pk)

    assert replayed.status == PosEventStatus.PROCESSED
    order.refresh_from_db()
    assert order.status == "collected"
    assert (position(store, sku).on_hand, position(store, sku).reserved) == (2, 0)


def test_handover_paid_at_the_till_records_the_payment_and_collects(
    client, integration, store, sku
):
    receive(store, sku, 3)
    with TestCase.captureOnCommitCallbacks(execute=True):
        order = order_services.order_place(
            channel="web",
            customer=CustomerFactory(),
            fulfilment="pickup",
            pickup_location_id=store.pk,
            idempotency_key="o-2",
            actor="test",
            lines=[
                order_services.OrderLineRequest(
                    sku_id=sku.pk, quantity=2, unit_price="19.90", currency="EUR", sku_code=sku.code
                )
            ],
        )
        order_services.order_picking_start(
            order_id=order.pk, actor="t", channel="backoffice", idempotency_key="p-2"
        )
        order_services.order_mark_ready(
            order_id=order.pk, actor="t", channel="backoffice", idempotency_key="r-2"
        )
    code = pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce)

    post(
        client,
        event(
            "H2",
            "pickup_handover",
            order_reference=order.reference,
            pickup_code=code,
            paid_at_till={"kind": "card", "amount": "39.80", "currency": "EUR"},
        ),
    )

    order.refresh_from_db()
    assert order.status == "collected"
    from payments.selectors import order_payment_summary

    summary = order_payment_summary(order_reference=order.reference)
    assert (str(summary.paid), str(summary.due)) == ("39.80", "0.00")


def test_previous_secret_is_accepted_during_a_rotation(client, integration, store, sku):
    receive(store, sku, 2)
    integration.previous_secret, integration.secret = integration.secret, "new-secret"
    integration.save()

    assert post(client, sale("A"), secret="s3cret").status_code == 202
    assert post(client, sale("B"), secret="new-secret").status_code == 202
    assert post(client, sale("C"), secret="other").status_code == 401


# ---- refused at the door: 4xx, nothing applied ----------------------------------------------


@pytest.mark.parametrize(
    "secret,timestamp", [(None, None), ("wrong", None), ("s3cret", int(time.time()) - 3600)]
)
def test_unsigned_badly_signed_or_stale_requests_get_401_and_change_nothing(
    client, integration, store, sku, secret, timestamp
):
    receive(store, sku, 5)
    before = ledger_state()

    response = post(client, sale(), secret=secret, timestamp=timestamp)

    assert response.status_code == 401
    assert response.json()["code"] == "signature_invalid"
    assert ledger_state() == before
    assert PosEvent.objects.count() == 0


@pytest.mark.parametrize(
    "body,status,code",
    [
        (sale(store="LYON01"), 404, "unknown_location"),
        (sale(till="T9"), 404, "unknown_till"),
        (sale(sku="NOPE"), 404, "unknown_sku"),
        (sale(quantity=-1), 400, "invalid"),
        (sale(quantity=0), 400, "invalid"),
        (sale(quantity=1.5), 400, "invalid"),
        ({**sale(), "type": "teleport"}, 400, "invalid"),
        ({**sale(), "occurred_at": "yesterday"}, 400, "invalid"),
        ({k: v for k, v in sale().items() if k != "event_id"}, 400, "invalid"),
        (event("X", "sale", receipt="R", currency="EUR", lines=[]), 400, "invalid"),
    ],
)
def test_bad_events_are_refused_recorded_as_rejected_and_apply_nothing(
    client, integration, store, sku, body, status, code
):
    receive(store, sku, 5)
    before = ledger_state()

    response = post(client, body)

    assert response.status_code == status
    assert response.json()["code"] == code
    assert ledger_state() == before
    rejected = PosEvent.objects.get()
    assert rejected.status == PosEventStatus.REJECTED
    assert code in rejected.error


def test_store_outside_the_integration_is_403(client, integration, store, sku):
    other = LocationFactory(code="LYON01")
    PosTill.objects.create(integration=integration, location=other, code="T1")

    response = post(client, sale(store="LYON01"))

    assert response.status_code == 403
    assert response.json()["code"] == "store_not_in_integration"
    assert StockMovement.objects.count() == 0


def test_malformed_json_and_oversized_bodies(client, integration, settings):
    response = post(client, None, raw=b"{not json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"

    settings.POS_MAX_BODY_BYTES = 1000
    response = post(client, sale(receipt_note="x" * 2000))
    assert response.status_code == 413
    assert PosEvent.objects.filter(status=PosEventStatus.REJECTED).count() == 2
    assert StockMovement.objects.count() == 0


@pytest.mark.parametrize(
    "raw", [b'{"event_id": NaN}', b'{"quantity": Infinity}', b'{"event_id": "a\\u0000b"}']
)
def test_non_standard_json_constants_are_malformed(client, integration, raw):
    # Python's parser accepts them; no JSON column does (found by the property test).
    response = post(client, None, raw=raw)
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_a_raw_nul_byte_is_refused_and_the_rejection_is_still_recorded(client, integration):
    response = post(client, None, raw=b'{"event_id": "a\x00b"}')
    assert response.status_code == 400
    assert "\ufffd" in PosEvent.objects.get().raw_body


def test_unknown_integration_is_404(client, integration):
    response = post(client, sale(), url="/api/v1/pos/nobody/events/")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_integration"


# ---- offline replay ----------------------------------------------------------------------------


def test_a_backlog_replayed_in_any_order_gives_the_same_stock_as_live(client, integration, sku):
    def run(store_code, order):
        store = LocationFactory(code=store_code)
        integration.stores.add(store)
        PosTill.objects.create(integration=integration, location=store, code="T1")
        opening_stock(store, sku, 20)
        t0 = datetime.now(UTC) - timedelta(hours=1)
        backlog = [
            sale(f"{store_code}-1", quantity=2, store=store_code, occurred_at=t0),
            sale(
                f"{store_code}-2",
                quantity=1,
                store=store_code,
                occurred_at=t0 + timedelta(minutes=5),
            ),
            event(
                f"{store_code}-3",
                "stock_count",
                store=store_code,
                occurred_at=t0 + timedelta(minutes=10),
                lines=[{"sku": "TEE-M", "counted": 15}],
            ),
            event(
                f"{store_code}-4",
                "return",
                store=store_code,
                occurred_at=t0 + timedelta(minutes=15),
                receipt="R4",
                currency="EUR",
                lines=[{"sku": "TEE-M", "quantity": 1, "unit_price": "9.90"}],
            ),
            sale(
                f"{store_code}-5",
                quantity=3,
                store=store_code,
                occurred_at=t0 + timedelta(minutes=20),
            ),
        ]
        for body in order(backlog):
            assert post(client, body).status_code == 202
        assert ledger_mismatches() == []
        return position(store, sku).on_hand

    live = run("LIVE", lambda events: events)
    shuffled = run("OUTAGE", lambda events: random.Random(4).sample(events, len(events)))
    reversed_ = run("REVERSED", lambda events: list(reversed(events)))

    assert live == shuffled == reversed_ == 13  # counted 15, +1 returned, −3 sold after


# ---- customer lookup ---------------------------------------------------------------------------


def test_customer_lookup_by_card(client, integration):
    customer = CustomerFactory(first_name="Camille", last_name="Martin")
    from customers.services import identifier_add

    identifier_add(
        customer=customer,
        kind="loyalty_card",
        value="LC99999999",
        source="",
        sales_channel="store",
        actor="test",
    )
    url = "/api/v1/pos/paris-tills/customer-lookup/"

    found = post(client, {"loyalty_card": "LC99999999"}, url=url)
    unknown = post(client, {"loyalty_card": "LC11111118"}, url=url)
    unsigned = post(client, {"loyalty_card": "LC99999999"}, url=url, secret=None)

    assert found.status_code == 200
    assert found.json()["customer"]["first_name"] == "Camille"
    assert found.json()["customer"]["number"] == customer.number
    assert unknown.status_code == 404
    assert unsigned.status_code == 401


def test_a_store_receipt_of_a_member_earns_points_once(client, integration, store, sku):
    from loyalty.models import PointsLot
    from loyalty.services import account_open

    receive(store, sku, 5)
    customer = CustomerFactory()
    account = account_open(customer=customer, channel="store", actor="test")

    post(client, sale("L1", quantity=2, customer={"loyalty_card": account.card_number}))
    post(client, sale("L1", quantity=2, customer={"loyalty_card": account.card_number}))

    lot = PointsLot.objects.get(account=account)
    assert (lot.source_type, lot.source_ref) == ("store_receipt", f"pos:{integration.pk}:L1")
    assert lot.amount > 0


def test_customer_lookup_shows_points_and_the_offers_usable_in_store(client, integration):
    from datetime import UTC, datetime, timedelta

    from loyalty.models import Campaign, Coupon
    from loyalty.services import account_open

    customer = CustomerFactory(first_name="Inès")
    account = account_open(customer=customer, channel="store", actor="test")
    now = datetime.now(UTC)
    campaign = Campaign.objects.create(
        name="Come back",
        discount_type="amount",
        discount_value="10.00",
        currency="EUR",
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=10),
        channels=["store", "web"],
        issue_channel="email",
        target_kind="list",
    )
    Coupon.objects.create(
        campaign=campaign,
        customer=customer,
        code="CB7K2M9Q4X",
        issue_channel="email",
        issued_at=now,
    )

    found = post(
        client,
        {"loyalty_card": account.card_number},
        url="/api/v1/pos/paris-tills/customer-lookup/",
    ).json()

    assert found["customer"]["first_name"] == "Inès"
    assert found["loyalty"]["card_number"] == account.card_number
    assert found["loyalty"]["points_available"] == 0
    assert [offer["code"] for offer in found["offers"]] == ["CB7K2M9Q4X"]


def test_an_in_store_return_naming_its_sale_takes_back_the_points(client, integration, store, sku):
    from loyalty.models import PointsLot
    from loyalty.services import account_open

    receive(store, sku, 5)
    account = account_open(customer=CustomerFactory(), channel="store", actor="test")
    post(client, sale("S9", quantity=2, customer={"loyalty_card": account.card_number}))
    earned = PointsLot.objects.get(account=account).amount

    post(
        client,
        event(
            "R9",
            "return",
            receipt="R-R9",
            currency="EUR",
            original_event_id="S9",
            lines=[{"sku": "TEE-M", "quantity": 1, "unit_price": "29.90"}],
        ),
    )
    post(
        client,
        event(
            "R9",
            "return",
            receipt="R-R9",
            currency="EUR",
            original_event_id="S9",
            lines=[{"sku": "TEE-M", "quantity": 1, "unit_price": "29.90"}],
        ),
    )

    assert PointsLot.objects.get(account=account).remaining == earned - earned // 2
    assert position(store, sku).on_hand == 4


def test_partial_handover_at_the_till_puts_the_refused_units_back(client, integration, store, sku):
    receive(store, sku, 3)
    with TestCase.captureOnCommitCallbacks(execute=True):
        order = order_services.order_place(
            channel="web",
            customer=CustomerFactory(),
            fulfilment="pickup",
            pickup_location_id=store.pk,
            idempotency_key="o-3",
            actor="test",
            lines=[
                order_services.OrderLineRequest(
                    sku_id=sku.pk, quantity=2, unit_price="19.90", currency="EUR", sku_code=sku.code
                )
            ],
        )
        order_services.order_picking_start(
            order_id=order.pk, actor="t", channel="backoffice", idempotency_key="p-3"
        )
        order_services.order_mark_ready(
            order_id=order.pk, actor="t", channel="backoffice", idempotency_key="r-3"
        )
    code = pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce)

    post(
        client,
        event(
            "H3",
            "pickup_handover",
            order_reference=order.reference,
            pickup_code=code,
            taken=[{"sku": "TEE-M", "quantity": 1}],
            paid_at_till={"kind": "cash", "amount": "19.90", "currency": "EUR"},
        ),
    )

    order.refresh_from_db()
    assert order.status == "collected"
    assert (position(store, sku).on_hand, position(store, sku).reserved) == (2, 0)
    from payments.selectors import order_payment_summary

    summary = order_payment_summary(order_reference=order.reference)
    assert (str(summary.total), str(summary.paid), str(summary.due)) == ("19.90", "19.90", "0.00")

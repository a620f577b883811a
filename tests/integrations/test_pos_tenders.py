"""A till's tenders: they must pay the receipt, and a gift card or store credit tender spends
the hold the till took for the ticket — once, whatever the retries."""

from decimal import Decimal

import pytest

from integrations.models import PosEvent, PosEventStatus, StoreReceipt
from payments.models import GiftCard, HoldStatus
from payments.services import stored_value as sv
from tests.customers.factories import CustomerFactory
from tests.integrations.test_pos import event, post
from tests.inventory.conftest import position, receive
from tests.payments.conftest import issue

pytestmark = pytest.mark.django_db


def _sale(event_id, receipt, tenders, quantity=2):
    return event(
        event_id,
        "sale",
        receipt=receipt,
        currency="EUR",
        lines=[{"sku": "TEE-M", "quantity": quantity, "unit_price": "20.00"}],
        tenders=tenders,
    )


def _till_hold(account, amount, ticket):
    """What the till does first: POST payments/holds/ for this ticket."""
    return sv.balance_hold(
        account=account,
        amount=amount,
        idempotency_key=f"hold-{ticket}",
        channel="store",
        actor="till",
        reference=ticket,
    )


def _balance(card):
    return GiftCard.objects.get(pk=card.pk).balance


def test_a_gift_card_tender_spends_its_hold_once_and_the_rest_goes_back(
    client, integration, store, sku
):
    receive(store, sku, 5)
    card, _code = issue("50.00")
    held = _till_hold(card, "30.00", "R-GC1")
    tenders = [
        {"kind": "gift_card", "amount": "25.00", "hold": str(held.public_id)},
        {"kind": "cash", "amount": "15.00"},
    ]

    assert post(client, _sale("G1", "R-GC1", tenders)).status_code == 202
    assert post(client, _sale("G1", "R-GC1", tenders)).status_code == 200  # the till retries
    assert post(client, _sale("G1-new-id", "R-GC1", tenders)).status_code == 200  # new id

    held.refresh_from_db()
    assert (held.status, held.captured_amount) == (HoldStatus.CAPTURED, Decimal("25.00"))
    card.refresh_from_db()
    assert (card.balance, card.held) == (Decimal("25.00"), Decimal("0.00"))
    receipt = StoreReceipt.objects.get()
    assert receipt.payment_issues == []
    assert receipt.tenders[0] == {
        "kind": "gift_card",
        "amount": "25.00",
        "reference": "",
        "hold": str(held.public_id),
    }
    assert position(store, sku).on_hand == 3


def test_a_hold_that_cannot_pay_is_flagged_on_the_receipt_and_the_sale_stands(
    client, integration, store, sku
):
    receive(store, sku, 5)
    card, _code = issue("50.00")
    released = _till_hold(card, "40.00", "R-GC2")
    sv.hold_release(hold=released)
    other_ticket = _till_hold(card, "40.00", "R-OTHER")
    tender = {"kind": "gift_card", "amount": "40.00"}

    post(client, _sale("G2", "R-GC2", [{**tender, "hold": str(released.public_id)}]))
    post(client, _sale("G3", "R-GC3", [{**tender, "hold": str(other_ticket.public_id)}]))

    issues = {r.number: [i["code"] for i in r.payment_issues] for r in StoreReceipt.objects.all()}
    assert issues == {"R-GC2": ["hold_not_open"], "R-GC3": ["invalid"]}
    assert _balance(card) == Decimal("50.00")  # nothing spent
    assert position(store, sku).on_hand == 1  # both sales stand: the goods left the shop
    assert set(PosEvent.objects.values_list("status", flat=True)) == {PosEventStatus.PROCESSED}


def test_a_store_credit_tender_spends_the_customer_s_hold(client, integration, store, sku):
    receive(store, sku, 5)
    customer = CustomerFactory()
    sv.wallet_credit(
        customer=customer,
        amount="60.00",
        currency="EUR",
        idempotency_key="c",
        channel="web",
        actor="t",
    )
    wallet = sv.wallet_for(customer=customer, currency="EUR")
    held = _till_hold(wallet, "40.00", "R-SC1")

    post(
        client,
        _sale(
            "S1",
            "R-SC1",
            [{"kind": "store_credit", "amount": "40.00", "hold": str(held.public_id)}],
        ),
    )

    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal("20.00"), Decimal("0.00"))


@pytest.mark.parametrize(
    "tenders,field",
    [
        ([{"kind": "cash", "amount": "5.00"}], "tenders"),  # 5.00 of tenders on a 40.00 sale
        ([{"kind": "card", "amount": "40.00"}, {"kind": "cash", "amount": "1.00"}], "tenders"),
        ([{"kind": "gift_card", "amount": "40.00", "reference": "GC-CODE"}], "hold"),
    ],
)
def test_tenders_that_do_not_pay_the_receipt_are_refused_at_the_door(
    client, integration, store, sku, tenders, field
):
    receive(store, sku, 5)

    response = post(client, _sale("BAD", "R-BAD", tenders))

    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert field in str(response.json()["details"])
    assert list(PosEvent.objects.values_list("status", flat=True)) == [PosEventStatus.REJECTED]
    assert position(store, sku).on_hand == 5 and not StoreReceipt.objects.exists()


def test_staff_find_the_receipts_whose_tender_was_not_taken(
    admin_client, client, integration, store, sku
):
    receive(store, sku, 5)
    card, _code = issue("50.00")
    lapsed = _till_hold(card, "40.00", "R-LAPSED")
    sv.hold_release(hold=lapsed)
    post(
        client,
        _sale(
            "L1",
            "R-LAPSED",
            [{"kind": "gift_card", "amount": "40.00", "hold": str(lapsed.public_id)}],
        ),
    )
    post(client, _sale("OK1", "R-FINE", [{"kind": "cash", "amount": "40.00"}]))

    page = admin_client.get("/admin/integrations/storereceipt/?payment_issues=yes").content.decode()

    assert "R-LAPSED" in page and "R-FINE" not in page

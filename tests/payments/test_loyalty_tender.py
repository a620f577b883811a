"""Loyalty points as a tender: held with the order, captured whole at hand-over, released on
cancel, refunded as a new lot."""

import pytest

from customers.models import Customer
from loyalty import services as loyalty
from loyalty.models import LoyaltyAccount, PointsSpend
from payments import selectors
from payments.exceptions import InvalidAmount, RefundExceedsCaptured
from payments.models import TenderStatus
from payments.orders_port import PayableOrder
from payments.services import tenders
from tests.customers.factories import CustomerFactory
from tests.payments.conftest import D, balances, issue, key, make_order, snapshot_payments

pytestmark = pytest.mark.django_db


@pytest.fixture
def order():
    customer = CustomerFactory()
    loyalty.account_open(customer=customer, channel="web", actor="t")
    loyalty.points_adjust(
        customer=customer, points=2000, reason="welcome", idempotency_key=key(), actor="t"
    )
    return PayableOrder(
        reference="W-PTS1",
        currency="EUR",
        total=D("50.00"),
        customer_id=customer.pk,
        channel="web",
    )


def points(order):
    account = LoyaltyAccount.objects.get(customer_id=order.customer_id)
    return account.points_remaining


def add_points(order, amount, k=None):
    return tenders.tender_add_loyalty_points(
        order=order, amount=amount, idempotency_key=k or key("pts"), channel="web", actor="t"
    )


def test_points_pay_part_of_an_order_and_only_whole_points_are_captured(order):
    # given 15.00 paid in points (1500 points at 0.01) and 35 on a gift card
    card, code = issue("35.00")
    tender = add_points(order, "15.00")
    tenders.tender_add_gift_card(
        order=order, code=code, amount="35.00", idempotency_key="g", channel="web", actor="t"
    )
    assert tender.status == TenderStatus.AUTHORISED
    assert PointsSpend.objects.get().points == 1500
    # when the shopper takes 40.00 worth at pickup
    tenders.order_payment_capture(
        order_reference=order.reference, amount="40.00", actor="t", channel="store"
    )
    # then the gift card pays 35 first, points 5.00 (500 points); 1000 points come back
    tender.refresh_from_db()
    assert (tender.status, tender.amount_captured) == (TenderStatus.CAPTURED, D("5.00"))
    assert balances(card) == (D("0.00"), D("0.00"))
    spend = PointsSpend.objects.get()
    assert (spend.status, spend.captured_points) == ("captured", 500)
    assert points(order) == 1500


def test_points_that_are_not_whole_or_not_enough_are_refused_and_nothing_is_held(order, settings):
    from common.exceptions import InvalidInput
    from loyalty.exceptions import InsufficientPoints

    before = (snapshot_payments(), points(order))
    with pytest.raises(InvalidInput):
        add_points(order, "0.015")  # too many decimals for EUR
    settings.PAYMENTS_LOYALTY_POINT_VALUE = "0.05"
    with pytest.raises(InvalidAmount):
        add_points(order, "0.07")  # 1.4 points
    settings.PAYMENTS_LOYALTY_POINT_VALUE = "0.01"
    with pytest.raises(InsufficientPoints):
        add_points(order, "20.01")  # 2001 points: one more than the balance
    assert (snapshot_payments(), points(order)) == before
    assert PointsSpend.objects.count() == 0


def test_cancel_gives_the_points_back_and_a_refund_returns_them_as_a_new_lot(order):
    tender = add_points(order, "10.00")
    tenders.order_payment_release(order_reference=order.reference, actor="t")
    tender.refresh_from_db()
    assert tender.status == TenderStatus.VOIDED and points(order) == 2000

    paid = PayableOrder(**{**order.__dict__, "reference": "W-PTS2"})
    tender = add_points(paid, "20.00")
    tenders.order_payment_capture(order_reference=paid.reference, actor="t", channel="store")
    assert points(order) == 0
    lines = tenders.order_payment_refund(
        order_reference=paid.reference,
        amount="7.50",
        idempotency_key="r1",
        channel="store",
        actor="t",
    )
    assert lines == [
        {"tender": tender.pk, "kind": "loyalty_points", "amount": "7.50", "to_store_credit": False}
    ]
    assert points(order) == 750
    before = (snapshot_payments(), points(order))
    with pytest.raises(RefundExceedsCaptured):
        tenders.order_payment_refund(
            order_reference=paid.reference,
            amount="12.51",
            idempotency_key="r2",
            channel="store",
            actor="t",
        )
    assert (snapshot_payments(), points(order)) == before
    assert selectors.order_payment_summary(order_reference=paid.reference).refunded == D("7.50")


def test_points_over_the_api(web_client):
    customer = CustomerFactory()
    loyalty.account_open(customer=customer, channel="web", actor="t")
    loyalty.points_adjust(customer=customer, points=500, reason="x", idempotency_key="a", actor="t")
    order = make_order(total="30.00", customer=Customer.objects.get(pk=customer.pk))
    response = web_client.post(
        f"/api/v1/payments/orders/{order.reference}/tenders/",
        {"kind": "loyalty_points", "amount": "5.00", "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="p1",
    )
    assert response.status_code == 201
    assert (response.json()["tender"]["kind"], response.json()["payment"]["due"]) == (
        "loyalty_points",
        "25.00",
    )
    refused = web_client.post(
        f"/api/v1/payments/orders/{order.reference}/tenders/",
        {"kind": "loyalty_points", "amount": "5.01", "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="p2",
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "insufficient_points")

"""Property-based: random sequences of tenders added, captured, released and refunded on one
order keep its accounts straight — coverage never above the total, refunds never above captures,
every stored-value ledger equal to its balance."""

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.exceptions import DomainError
from payments import selectors
from payments.models import OrderPayment, Tender, TenderStatus
from payments.orders_port import PayableOrder
from payments.services import stored_value as sv
from payments.services import tenders
from tests.customers.factories import CustomerFactory
from tests.payments.conftest import issue, key

pytestmark = pytest.mark.django_db

cents = st.integers(1, 8000).map(lambda n: Decimal(n).scaleb(-2))
step = st.one_of(
    st.tuples(st.sampled_from(["gift_card", "store_credit", "till"]), cents),
    st.tuples(st.just("capture"), st.one_of(st.none(), cents)),
    st.tuples(st.just("release"), st.just(None)),
    st.tuples(st.just("refund"), cents),
    st.tuples(st.just("refund_as_credit"), cents),
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, min_size=1, max_size=15))
def test_random_tender_sequences_keep_the_order_accounts_straight(steps):
    customer = CustomerFactory()
    order = PayableOrder(
        reference=f"P{key()}"[:20],
        currency="EUR",
        total=Decimal("100.00"),
        customer_id=customer.pk,
        channel="web",
    )
    _, code = issue("60.00")
    sv.wallet_credit(
        customer=customer,
        amount="40.00",
        currency="EUR",
        idempotency_key=key(),
        channel="web",
        actor="p",
    )
    common = {"order": order, "channel": "web", "actor": "p"}
    for name, amount in steps:
        try:
            if name == "gift_card":
                tenders.tender_add_gift_card(
                    code=code, amount=amount, idempotency_key=key(), **common
                )
            elif name == "store_credit":
                tenders.tender_add_store_credit(amount=amount, idempotency_key=key(), **common)
            elif name == "till":
                tenders.tender_add_till(amount=amount, idempotency_key=key(), **common)
            elif name == "capture":
                tenders.order_payment_capture(
                    order_reference=order.reference, amount=amount, actor="p", channel="store"
                )
            elif name == "release":
                tenders.order_payment_release(order_reference=order.reference, actor="p")
            else:
                tenders.order_payment_refund(
                    order_reference=order.reference,
                    amount=amount,
                    idempotency_key=key(),
                    channel="store",
                    actor="p",
                    customer=customer,
                    to_store_credit=name == "refund_as_credit",
                    currency="EUR",
                )
        except DomainError:
            pass

        all_tenders = list(Tender.objects.filter(order_reference=order.reference))
        live = sum(
            (
                t.amount
                for t in all_tenders
                if t.status in (TenderStatus.PENDING, TenderStatus.AUTHORISED)
            ),
            Decimal(0),
        )
        captured = sum((t.amount_captured for t in all_tenders), Decimal(0))
        payment = OrderPayment.objects.filter(order_reference=order.reference).first()
        if payment is not None:
            assert payment.covered == live + captured
            assert Decimal(0) <= payment.covered <= payment.total
        for t in all_tenders:
            assert Decimal(0) <= t.amount_refunded <= t.amount_captured <= t.amount
        assert selectors.ledger_mismatches() == []

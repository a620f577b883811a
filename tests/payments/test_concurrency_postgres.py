"""No double spend: concurrent channels spending one gift card or wallet on a real PostgreSQL."""

from decimal import Decimal

import pytest
from django.db import connection

from payments import selectors
from payments.exceptions import HoldNotOpen, InsufficientBalance
from payments.models import GiftCardHold, HoldStatus
from payments.services import stored_value as sv
from tests.customers.factories import CustomerFactory
from tests.inventory.test_concurrency_postgres import _race
from tests.payments.conftest import issue

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_20_workers_spending_one_gift_card_never_take_more_than_its_balance():
    assert connection.vendor == "postgresql"
    # given a card of 100 and 20 tills/carts each wanting 15 at the same instant
    card, _ = issue("100.00")

    def spend(i):
        h = sv.balance_hold(
            account=card,
            amount="15.00",
            idempotency_key=f"race-{i}",
            channel="store" if i % 2 else "web",
            actor=f"w{i}",
        )
        return sv.hold_capture(hold=h)

    outcomes = _race(20, spend)

    # then exactly 6 succeed (90), 14 are refused, and the ledger agrees
    won = [o for o in outcomes if isinstance(o, GiftCardHold)]
    refused = [o for o in outcomes if isinstance(o, InsufficientBalance)]
    assert [o for o in outcomes if not isinstance(o, (GiftCardHold, InsufficientBalance))] == []
    assert (len(won), len(refused)) == (6, 14)
    card.refresh_from_db()
    assert (card.balance, card.held) == (Decimal("10.00"), Decimal("0.00"))
    assert selectors.ledger_mismatches() == []


def test_workers_spending_random_amounts_from_one_wallet_never_overdraw_it():
    customer = CustomerFactory()
    sv.wallet_credit(
        customer=customer,
        amount="50.00",
        currency="EUR",
        idempotency_key="w-credit",
        channel="web",
        actor="t",
    )
    wallet = sv.wallet_for(customer=customer, currency="EUR")

    outcomes = _race(
        20,
        lambda i: sv.balance_hold(
            account=wallet,
            amount=Decimal(300 + 97 * i).scaleb(-2),
            idempotency_key=f"wr-{i}",
            channel="store",
            actor="t",
        ),
    )

    held = sum((o.amount for o in outcomes if not isinstance(o, Exception)), Decimal(0))
    assert all(not isinstance(o, Exception) or isinstance(o, InsufficientBalance) for o in outcomes)
    wallet.refresh_from_db()
    assert held <= Decimal("50.00") and wallet.held == held
    assert any(isinstance(o, InsufficientBalance) for o in outcomes)
    assert selectors.ledger_mismatches() == []


def test_a_capture_racing_the_expiry_task_and_a_release_wins_or_loses_as_a_whole():
    card, _ = issue("100.00")
    holds = [
        sv.balance_hold(
            account=card, amount="10.00", idempotency_key=f"h-{i}", channel="web", actor="t"
        )
        for i in range(8)
    ]
    GiftCardHold.objects.update(expires_at=holds[0].created_at)

    def act(i):
        h = holds[i // 3]
        if i % 3 == 0:
            return sv.hold_capture(hold=h)
        if i % 3 == 1:
            return sv.hold_release(hold=h)
        return sv.holds_expire()

    outcomes = _race(24, act)

    assert all(not isinstance(o, Exception) or isinstance(o, HoldNotOpen) for o in outcomes)
    captured = GiftCardHold.objects.filter(status=HoldStatus.CAPTURED).count()
    assert GiftCardHold.objects.filter(status=HoldStatus.OPEN).count() == 0
    card.refresh_from_db()
    assert card.held == 0 and card.balance == Decimal("100.00") - 10 * captured
    assert selectors.ledger_mismatches() == []


def test_the_same_hold_key_sent_by_two_workers_holds_once():
    card, _ = issue("100.00")
    outcomes = _race(
        10,
        lambda i: sv.balance_hold(
            account=card, amount="30.00", idempotency_key="same-cart", channel="web", actor="t"
        ),
    )
    assert {o.pk for o in outcomes} == {GiftCardHold.objects.get().pk}
    card.refresh_from_db()
    assert card.held == Decimal("30.00")


def _order(total="100.00"):
    from payments.orders_port import PayableOrder

    return PayableOrder(
        reference="W-RACE",
        currency="EUR",
        total=Decimal(total),
        customer_id=CustomerFactory().pk,
        channel="web",
    )


def test_tenders_added_at_once_from_several_channels_never_cover_more_than_the_total():
    from payments.exceptions import TenderExceedsDue
    from payments.services import tenders

    order = _order("100.00")
    cards = [issue("50.00")[1] for _ in range(12)]

    outcomes = _race(
        12,
        lambda i: tenders.tender_add_gift_card(
            order=order,
            code=cards[i],
            amount="30.00",
            idempotency_key=f"t-{i}",
            channel="store" if i % 2 else "web",
            actor="t",
        ),
    )

    won = [o for o in outcomes if not isinstance(o, Exception)]
    assert all(isinstance(o, TenderExceedsDue) for o in outcomes if isinstance(o, Exception))
    assert len(won) == 3  # 90 of 100: a fourth 30 would exceed the total
    summary = selectors.order_payment_summary(order_reference=order.reference)
    assert summary.due == Decimal("10.00")
    assert selectors.ledger_mismatches() == []


def test_an_order_settled_at_two_tills_at_once_charges_the_gift_card_once():
    from payments.services import tenders

    order = _order("40.00")
    card, code = issue("100.00")
    tenders.tender_add_gift_card(
        order=order, code=code, amount="40.00", idempotency_key="g", channel="web", actor="t"
    )

    outcomes = _race(
        8,
        lambda i: tenders.order_payment_capture(
            order_reference=order.reference, actor=f"till{i}", channel="store"
        ),
    )

    assert [
        o for o in outcomes if isinstance(o, Exception) and not isinstance(o, HoldNotOpen)
    ] == []
    card.refresh_from_db()
    assert (card.balance, card.held) == (Decimal("60.00"), Decimal("0.00"))
    summary = selectors.order_payment_summary(order_reference=order.reference)
    assert (summary.paid, summary.due) == (Decimal("40.00"), Decimal("0.00"))
    assert selectors.ledger_mismatches() == []

"""Property-based: whatever sequence of hold, capture, release, refund, credit, adjustment and
expiry runs on a gift card and a wallet, no balance goes negative, no more is held than there
is, and every ledger sums to its cached balance."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.exceptions import DomainError
from payments import selectors
from payments.models import HoldStatus
from payments.services import stored_value as sv
from tests.customers.factories import CustomerFactory
from tests.payments.conftest import issue, key

pytestmark = pytest.mark.django_db

cents = st.integers(1, 6000).map(lambda n: Decimal(n).scaleb(-2))
step = st.one_of(
    st.tuples(st.just("hold"), st.sampled_from(["card", "wallet"]), cents),
    st.tuples(st.just("capture"), st.integers(0, 20), st.integers(0, 100)),  # % of the hold
    st.tuples(st.just("release"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("expire"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("refund"), st.integers(0, 20), cents),
    st.tuples(st.just("credit"), st.sampled_from(["card", "wallet"]), cents),
    st.tuples(st.just("debit"), st.sampled_from(["card", "wallet"]), cents),
    st.tuples(st.just("retry_last_hold"), st.just(0), st.just(0)),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, min_size=1, max_size=30))
def test_random_sequences_keep_every_ledger_consistent(steps):
    card, _ = issue("100.00")
    customer = CustomerFactory()
    sv.wallet_credit(
        customer=customer,
        amount="50.00",
        currency="EUR",
        idempotency_key=key(),
        channel="web",
        actor="p",
    )
    accounts = {"card": card, "wallet": sv.wallet_for(customer=customer, currency="EUR")}
    holds = []
    last_hold_args = None
    spent_by_hold = {}
    for name, a, b in steps:
        try:
            if name == "hold":
                last_hold_args = (accounts[a], b, key())
                holds.append(
                    sv.balance_hold(
                        account=accounts[a],
                        amount=b,
                        idempotency_key=last_hold_args[2],
                        channel="web",
                        actor="p",
                    )
                )
            elif name == "retry_last_hold" and last_hold_args:
                account, amount, hold_key = last_hold_args
                sv.balance_hold(
                    account=account,
                    amount=amount,
                    idempotency_key=hold_key,
                    channel="web",
                    actor="p",
                )
            elif name in ("capture", "release", "expire", "refund") and holds:
                h = holds[a % len(holds)]
                h.refresh_from_db()
                if name == "capture":
                    amount = max((h.amount * b / 100).quantize(Decimal("0.01")), Decimal("0.01"))
                    h = sv.hold_capture(hold=h, amount=amount)
                    spent_by_hold[h.pk] = h.captured_amount
                elif name == "release":
                    sv.hold_release(hold=h)
                elif name == "expire":
                    type(h).objects.filter(pk=h.pk).update(
                        expires_at=timezone.now() - timedelta(seconds=1)
                    )
                    sv.holds_expire()
                else:
                    sv.hold_refund(
                        hold=h, amount=b, idempotency_key=key(), channel="store", actor="p"
                    )
            elif name == "credit":
                sv.balance_credit(
                    account=accounts[a],
                    amount=b,
                    kind="goodwill",
                    idempotency_key=key(),
                    channel="web",
                    actor="p",
                )
            elif name == "debit":
                sv.balance_adjust(
                    account=accounts[a], amount=-b, reason="p", actor="p", idempotency_key=key()
                )
        except DomainError:
            pass  # a refusal is fine; what matters is that it left everything consistent

        for account in accounts.values():
            account.refresh_from_db()
            assert account.balance >= 0
            assert 0 <= account.held <= account.balance
        assert selectors.ledger_mismatches() == []

    for h in holds:
        h.refresh_from_db()
        assert h.refunded_amount <= h.captured_amount <= h.amount
        if h.status != HoldStatus.CAPTURED:
            assert h.captured_amount == 0

"""Property-based: whatever sequence of earn, spend (hold, capture, release), return, refund of
spent points, expiry and merge runs, the ledger keeps its invariants:

- every lot's remaining equals the sum of its movements; every account's cache the sum of its lots;
- points are conserved: credited = remaining + held + captured − refunded-as-new-lot accounting
  (computed from spends, reversals and lots, not from the movements);
- a spend is refused exactly when it asks more than the spendable balance, and never touches
  pending or expired points.
"""

import itertools
from datetime import timedelta

import pytest
from django.db.models import F, Q, Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers import services as customer_services
from loyalty import selectors, services
from loyalty.exceptions import InsufficientPoints, RefundExceedsSpent, SpendNotHeld
from loyalty.models import (
    LoyaltyAccount,
    MovementKind,
    PointsLot,
    PointsMovement,
    PointsReversal,
    PointsSpend,
    SpendStatus,
)
from loyalty.services import ReturnedLine
from tests.loyalty.factories import AccountFactory, earn, line

pytestmark = pytest.mark.django_db

_keys = itertools.count(1)

step = st.one_of(
    st.tuples(st.just("earn"), st.integers(0, 1), st.integers(1, 300), st.booleans()),
    st.tuples(st.just("hold"), st.integers(0, 1), st.integers(1, 400), st.just(False)),
    st.tuples(st.just("capture"), st.integers(0, 30), st.integers(0, 100), st.just(False)),
    st.tuples(st.just("release"), st.integers(0, 30), st.just(0), st.just(False)),
    st.tuples(st.just("return"), st.integers(0, 30), st.integers(1, 3), st.just(False)),
    st.tuples(st.just("refund"), st.integers(0, 30), st.integers(1, 200), st.just(False)),
    st.tuples(st.just("expire"), st.integers(0, 30), st.just(0), st.just(False)),
    st.tuples(st.just("merge"), st.just(0), st.just(0), st.just(False)),
    st.tuples(st.just("unmerge"), st.just(0), st.just(0), st.just(False)),
)


def _key() -> str:
    return f"prop-{next(_keys)}"


def conserved(account: LoyaltyAccount) -> int:
    """Credited − (remaining + out of the lots) for one account; 0 when no point is lost or made.
    Out of the lots: open holds, captured spends, expired, reversed and moved-out points."""
    lots = PointsLot.objects.filter(account=account)
    credited = lots.aggregate(total=Sum("amount"))["total"] or 0
    remaining = lots.aggregate(total=Sum("remaining"))["total"] or 0
    spends = PointsSpend.objects.filter(account=account)
    held = spends.filter(status=SpendStatus.HELD).aggregate(t=Sum("points"))["t"] or 0
    captured = spends.aggregate(t=Sum("captured_points"))["t"] or 0
    reversed_ = (
        PointsReversal.objects.filter(operation__movements__account=account)
        .distinct()
        .aggregate(t=Sum("points_taken"))["t"]
        or 0
    )
    gone = (
        PointsMovement.objects.filter(
            account=account, kind__in=[MovementKind.EXPIRE, MovementKind.MERGE_OUT]
        ).aggregate(t=Sum("delta"))["t"]
        or 0
    )
    return credited - remaining - held - captured - reversed_ + gone


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, min_size=1, max_size=25))
def test_random_point_sequences_keep_the_ledger_invariants(steps):
    accounts = [AccountFactory(), AccountFactory()]
    purchases: list[tuple[str, int]] = []  # (source_ref, units still not returned)
    spends: list[int] = []
    merged = None
    for name, a, b, flag in steps:
        if name == "earn":
            ref = f"P{next(_keys)}"
            at = timezone.now() - timedelta(days=31) if flag else timezone.now()
            if earn(
                accounts[a].customer, f"{b}.00", ref=ref, at=at, lines=[line(f"{b}.00", quantity=3)]
            ):
                purchases.append((ref, 3))
        elif name == "hold":
            account = services.account_for(accounts[a].customer)  # follows a merge (from the db)
            available = selectors.points_summary(account=account)["available"]
            try:
                spend = services.points_hold(
                    customer=account.customer,
                    points=b,
                    reference="X",
                    channel="web",
                    idempotency_key=_key(),
                )
            except InsufficientPoints:
                assert b > available  # refused exactly when more than spendable
            else:
                assert b <= available
                assert selectors.points_summary(account=account)["available"] == available - b
                spends.append(spend.pk)
        elif name in ("capture", "release") and spends:
            spend_id = spends[a % len(spends)]
            try:
                if name == "capture":
                    points = PointsSpend.objects.get(pk=spend_id).points
                    services.points_capture(
                        spend_id=spend_id, points=max(1, points * b // 100), idempotency_key=_key()
                    )
                else:
                    services.points_release(spend_id=spend_id, idempotency_key=_key())
            except SpendNotHeld:
                assert PointsSpend.objects.get(pk=spend_id).status != SpendStatus.HELD
        elif name == "return" and purchases:
            index = a % len(purchases)
            ref, left = purchases[index]
            quantity = min(b, left)
            if quantity:
                reversal = services.points_reverse_for_return(
                    source_type="order",
                    source_ref=ref,
                    return_ref=_key(),
                    lines=[ReturnedLine("1", quantity)],
                    channel="store",
                )
                assert reversal.points_taken + reversal.shortfall == reversal.points_due
                purchases[index] = (ref, left - quantity)
        elif name == "refund" and spends:
            spend_id = spends[a % len(spends)]
            try:
                services.points_refund_spent(
                    spend_id=spend_id, points=b, refund_ref=_key(), channel="web"
                )
            except RefundExceedsSpent:
                spend = PointsSpend.objects.get(pk=spend_id)
                assert (
                    spend.status != "captured" or b > spend.captured_points - spend.refunded_points
                )
        elif name == "expire":
            lots = list(PointsLot.objects.filter(account__in=accounts, remaining__gt=0))
            if lots:
                lot = lots[a % len(lots)]
                PointsLot.objects.filter(pk=lot.pk).update(
                    expires_at=timezone.now() - timedelta(seconds=1)
                )
                services.points_expire()
        elif name == "unmerge" and merged:
            # the merge is undone: what is left of the moved lots goes back, nothing is created
            customer_services.customer_unmerge(merge=merged, actor="p", reason="mistake")
            accounts[1].refresh_from_db()
            merged = None
        elif (
            name == "merge"
            and not merged
            and not PointsSpend.objects.filter(
                account=accounts[1], status=SpendStatus.HELD
            ).exists()
        ):
            merged = customer_services.customer_merge(
                survivor=accounts[0].customer,
                absorbed=accounts[1].customer,
                actor="p",
                reason="same",
                force=True,
            )

        # the invariants, after every step
        assert selectors.ledger_mismatches() == []
        for account in accounts:
            account.refresh_from_db()
            assert account.points_remaining >= 0
            assert conserved(account) == 0
        # a hold never took points from a lot that was pending or already expired at that moment
        # (the "expire" step moves expires_at back in time, so expiry is judged on expired_at)
        bad = PointsMovement.objects.filter(kind=MovementKind.HOLD).filter(
            Q(lot__available_at__gt=F("occurred_at")) | Q(lot__expired_at__lte=F("occurred_at"))
        )
        assert not bad.exists()

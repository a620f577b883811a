"""Concurrency guarantees on a real PostgreSQL server (`make test` starts one)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from loyalty import coupons, selectors, services
from loyalty.exceptions import CouponAlreadyUsed, CouponHeldElsewhere, InsufficientPoints
from loyalty.models import Coupon, CouponRedemption, PointsSpend
from tests.factories import LocationFactory
from tests.loyalty.factories import AccountFactory, CampaignFactory, earn

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(workers: int, call):
    """Run `call(i)` in `workers` threads released together; return results or exceptions."""
    barrier = threading.Barrier(workers)

    def run(index):
        try:
            barrier.wait()
            return call(index)
        except Exception as exc:  # collected and asserted on below
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, range(workers)))


def test_channels_spending_the_same_points_at_once_never_take_more_than_the_balance():
    assert connection.vendor == "postgresql"
    # given 100 spendable points over three lots
    account = AccountFactory()
    for amount in ("50.00", "30.00", "20.00"):
        earn(account.customer, amount, at=timezone.now() - timedelta(days=31))
    store = LocationFactory()

    # when 16 workers (web, app, till…) each try to hold 15 points at the same instant
    channels = ["web", "app", "store", "call_centre"]
    outcomes = _race(
        16,
        lambda i: services.points_hold(
            customer=account.customer,
            points=15,
            reference=f"T{i}",
            channel=channels[i % 4],
            store=store if channels[i % 4] == "store" else None,
            idempotency_key=f"race-{i}",
        ),
    )

    # then exactly 6 win (90 points), the rest are refused cleanly, and the ledger adds up
    granted = [o for o in outcomes if isinstance(o, PointsSpend)]
    refused = [o for o in outcomes if isinstance(o, InsufficientPoints)]
    assert [o for o in outcomes if not isinstance(o, (PointsSpend, InsufficientPoints))] == []
    assert (len(granted), len(refused)) == (6, 10)
    assert selectors.points_summary(account=account) == {"available": 10, "pending": 0, "held": 90}
    assert selectors.ledger_mismatches() == []


def test_capture_racing_release_and_expiry_of_one_hold_has_one_winner():
    account = AccountFactory()
    earn(account.customer, "100.00", at=timezone.now() - timedelta(days=31))
    spend = services.points_hold(
        customer=account.customer,
        points=60,
        reference="W1",
        channel="web",
        idempotency_key="h",
        ttl_minutes=1,
    )
    later = timezone.now() + timedelta(minutes=2)

    def call(i):
        if i % 3 == 0:
            return services.points_capture(spend_id=spend.pk, idempotency_key=f"c{i}")
        if i % 3 == 1:
            return services.points_release(spend_id=spend.pk, idempotency_key=f"r{i}")
        return services.points_holds_expire(now=later)

    _race(9, call)
    spend.refresh_from_db()
    summary = selectors.points_summary(account=account)
    if spend.status == "captured":
        assert summary["available"] == 40
    else:
        assert summary["available"] == 100
    assert selectors.ledger_mismatches() == []


def test_32_workers_redeeming_one_code_exactly_one_wins():
    # given one code of a customer, usable online and in store
    campaign = CampaignFactory(channels=["web", "app", "store"])
    account = AccountFactory()
    coupon = Coupon.objects.create(
        campaign=campaign,
        customer=account.customer,
        code=coupons.code_new(),
        issue_channel="email",
        issued_at=timezone.now(),
    )
    store = LocationFactory()
    basket = [coupons.BasketLine("SKU-1", 1, "80.00")]
    channels = ["web", "app", "store"]

    # when 32 workers on three channels redeem it at the same instant
    outcomes = _race(
        32,
        lambda i: coupons.coupon_redeem(
            code=coupon.code,
            customer=account.customer,
            channel=channels[i % 3],
            store=store if channels[i % 3] == "store" else None,
            lines=basket,
            currency="EUR",
            idempotency_key=f"redeem-{i}",
            order_ref=f"O{i}",
        ),
    )

    # then exactly one redemption; every other worker is told the code is used
    won = [o for o in outcomes if isinstance(o, CouponRedemption)]
    lost = [o for o in outcomes if isinstance(o, (CouponAlreadyUsed, CouponHeldElsewhere))]
    assert [o for o in outcomes if o not in won and o not in lost] == []
    assert (len(won), len(lost)) == (1, 31)
    assert CouponRedemption.objects.filter(coupon=coupon).count() == 1
    coupon.refresh_from_db()
    assert coupon.status == "redeemed"


def test_a_merge_racing_spends_on_the_absorbed_account_keeps_the_ledger_exact():
    from customers import services as customer_services
    from customers.models import CustomerMerge

    # given two accounts of one person, the absorbed one with 100 spendable points
    survivor, absorbed = AccountFactory(), AccountFactory()
    earn(absorbed.customer, "100.00", at=timezone.now() - timedelta(days=31))
    stale = absorbed.customer

    # when a forced merge runs while seven tills spend 10 points each from the absorbed record
    def call(i):
        if i == 0:
            return customer_services.customer_merge(
                survivor=survivor.customer, absorbed=stale, actor="cs", reason="same", force=True
            )
        return services.points_hold(
            customer=stale, points=10, reference=f"T{i}", channel="web", idempotency_key=f"m-{i}"
        )

    outcomes = _race(8, call)

    # then no deadlock or crash, and every point is either held or on one of the two accounts
    assert [o for o in outcomes if isinstance(o, Exception)] == []
    assert isinstance(outcomes[0], CustomerMerge)
    held = sum(o.points for o in outcomes[1:])
    total = sum(selectors.points_summary(account=a)["available"] for a in (survivor, absorbed))
    assert held == 70 and total == 30
    assert selectors.ledger_mismatches() == []

"""Loyalty benchmarks (issue #6).

1. Concurrent redemption of ONE coupon code by 32 worker processes released together (web, app
   and till channels mixed), repeated over several codes: exactly one must win each time.
2. Points throughput through the services, 32 worker processes: earn (one store receipt per call,
   `points_earn_for_source`) and spend (`points_hold` + `points_capture`) over 1,000 accounts;
   then spends on ONE hot account (serialised on its row lock), with the overspend check.
   Every run ends with the ledger proof (`loyalty.selectors.ledger_mismatches`).

Usage (bench/run.sh does this): DATABASE_URL=postgres://… python bench/bench_loyalty.py [--quick]
"""

import argparse
import multiprocessing as mp
import random
import time
from datetime import timedelta
from decimal import Decimal

from _common import django_setup, summary_ms, write_section

WORKERS = 32


# ---- setup -----------------------------------------------------------------------------------


def setup_accounts(count):
    from django.utils import timezone

    from customers.identifiers import customer_number_new
    from customers.models import Customer
    from loyalty import services
    from loyalty.models import LoyaltyAccount, ProgramSettings
    from loyalty.services import PurchaseLine

    ProgramSettings.objects.all().delete()
    ProgramSettings.objects.create(currency="EUR", pending_days=30, validity_days=365)
    customers = Customer.objects.bulk_create(
        [Customer(number=customer_number_new(), first_name=f"B{i}") for i in range(count)]
    )
    LoyaltyAccount.objects.bulk_create(
        [LoyaltyAccount(customer=c, card_number=f"BENCH{c.pk:010d}") for c in customers]
    )
    past = timezone.now() - timedelta(days=31)
    for c in customers:  # 1,000 spendable points each, through the service
        services.points_earn_for_source(
            customer=c,
            source_type="store_receipt",
            source_ref=f"seed-{c.pk}",
            lines=[PurchaseLine("1", "SKU", 1, Decimal("1000.00"))],
            currency="EUR",
            channel="store",
            occurred_at=past,
        )
    return [c.pk for c in customers]


# ---- 1. one code, 32 redeemers -----------------------------------------------------------------


def _redeem_worker(args):
    code, customer_id, store_id, worker_id, start_event = args
    django_setup()
    from django.db import connection

    from customers.models import Customer
    from loyalty import coupons
    from loyalty.exceptions import CouponAlreadyUsed, CouponHeldElsewhere
    from stores.models import Location

    connection.ensure_connection()
    customer = Customer.objects.get(pk=customer_id)
    channel = ["web", "app", "store"][worker_id % 3]
    store = Location.objects.get(pk=store_id) if channel == "store" else None
    lines = [coupons.BasketLine("SKU", 1, Decimal("80.00"))]
    start_event.wait()
    started = time.perf_counter()
    try:
        coupons.coupon_redeem(
            code=code,
            customer=customer,
            channel=channel,
            store=store,
            lines=lines,
            currency="EUR",
            idempotency_key=f"bench:{code}:{worker_id}",
        )
        outcome = "won"
    except (CouponAlreadyUsed, CouponHeldElsewhere):
        outcome = "lost"
    except Exception as exc:  # counted: a benchmark must show errors, not hide them
        print("worker error:", type(exc).__name__, exc)
        outcome = "error"
    elapsed = time.perf_counter() - started
    connection.close()
    return outcome, elapsed


def bench_coupon_race(rounds, customer_id):
    from django.db import connections
    from django.utils import timezone

    from loyalty import coupons
    from loyalty.models import Campaign, Coupon, CouponRedemption
    from stores.models import Location, LocationKind

    store = Location.objects.create(
        code="BENCHSTORE",
        name="Bench store",
        kind=LocationKind.STORE,
        latitude=Decimal("48.8566"),
        longitude=Decimal("2.3522"),
    )
    campaign = Campaign.objects.create(
        name="Bench",
        discount_type="amount",
        discount_value=Decimal("10"),
        min_basket=Decimal("50"),
        starts_at=timezone.now() - timedelta(days=1),
        ends_at=timezone.now() + timedelta(days=1),
        channels=["web", "app", "store"],
        issue_channel="email",
        target_kind="list",
    )
    ctx = mp.get_context("fork")
    results = []
    for _ in range(rounds):
        coupon = Coupon.objects.create(
            campaign=campaign,
            customer_id=customer_id,
            code=coupons.code_new(),
            issue_channel="email",
            issued_at=timezone.now(),
        )
        connections.close_all()
        manager = ctx.Manager()
        start_event = manager.Event()
        with ctx.Pool(WORKERS) as pool:
            pending = pool.map_async(
                _redeem_worker,
                [(coupon.code, customer_id, store.pk, i, start_event) for i in range(WORKERS)],
            )
            time.sleep(2)  # every worker connected before the race starts
            start_event.set()
            outcomes = pending.get()
        manager.shutdown()
        results.append(
            {
                "won": sum(1 for o, _ in outcomes if o == "won"),
                "lost": sum(1 for o, _ in outcomes if o == "lost"),
                "errors": sum(1 for o, _ in outcomes if o == "error"),
                "redemptions": CouponRedemption.objects.filter(coupon=coupon).count(),
                "latencies": [t for _, t in outcomes],
            }
        )
    return results


# ---- 2. points throughput ----------------------------------------------------------------------


def _points_worker(args):
    mode, label, customer_ids, deadline, worker_id, start_event = args
    django_setup()
    from django.db import connection

    from customers.models import Customer
    from loyalty import services
    from loyalty.exceptions import InsufficientPoints
    from loyalty.services import PurchaseLine

    connection.ensure_connection()
    customers = {c.pk: c for c in Customer.objects.filter(pk__in=customer_ids)}
    rng = random.Random(worker_id)
    done = refused = errors = 0
    latencies = []
    start_event.wait()
    n = 0
    while time.time() < deadline:
        n += 1
        customer = customers[rng.choice(customer_ids)]
        started = time.perf_counter()
        try:
            if mode == "earn":
                services.points_earn_for_source(
                    customer=customer,
                    source_type="store_receipt",
                    source_ref=f"bench-{label}-{worker_id}-{n}",
                    lines=[PurchaseLine("1", "SKU", 1, Decimal("25.00"))],
                    currency="EUR",
                    channel="store",
                )
            else:
                spend = services.points_hold(
                    customer=customer,
                    points=3,
                    reference=f"T{worker_id}-{n}",
                    channel="store",
                    idempotency_key=f"bench:{label}:{worker_id}:{n}:h",
                )
                services.points_capture(
                    spend_id=spend.pk, idempotency_key=f"bench:{label}:{worker_id}:{n}:c"
                )
            done += 1
            latencies.append(time.perf_counter() - started)
        except InsufficientPoints:
            refused += 1
        except Exception as exc:
            errors += 1
            print("worker error:", type(exc).__name__, exc)
    connection.close()
    return done, refused, errors, latencies


def run_points(mode, label, customer_ids, seconds):
    from django.db import connections

    connections.close_all()
    ctx = mp.get_context("fork")
    manager = ctx.Manager()
    start_event = manager.Event()
    deadline = time.time() + 3 + seconds
    with ctx.Pool(WORKERS) as pool:
        pending = pool.map_async(
            _points_worker,
            [(mode, label, customer_ids, deadline, i, start_event) for i in range(WORKERS)],
        )
        time.sleep(3)
        start_event.set()
        results = pending.get()
    manager.shutdown()
    latencies = [t for r in results for t in r[3]]
    done = sum(r[0] for r in results)
    return {
        "done": done,
        "refused": sum(r[1] for r in results),
        "errors": sum(r[2] for r in results),
        "per_second": done / seconds,
        "latency": summary_ms(latencies) if latencies else None,
    }


def seed_hot(customer_id):
    from django.utils import timezone

    from customers.models import Customer
    from loyalty import services
    from loyalty.services import PurchaseLine

    services.points_earn_for_source(
        customer=Customer.objects.get(pk=customer_id),
        source_type="store_receipt",
        source_ref="seed-hot",
        lines=[PurchaseLine("1", "SKU", 1, Decimal("1000000.00"))],
        currency="EUR",
        channel="store",
        occurred_at=timezone.now() - timedelta(days=31),
    )


def overspend(customer_id):
    """Points captured from the hot account beyond what it ever had (must be 0)."""
    from django.db.models import Sum

    from loyalty.models import LoyaltyAccount, PointsLot, PointsSpend

    account = LoyaltyAccount.objects.get(customer_id=customer_id)
    credited = PointsLot.objects.filter(account=account).aggregate(t=Sum("amount"))["t"] or 0
    spent = PointsSpend.objects.filter(account=account).aggregate(t=Sum("captured_points"))["t"]
    return max((spent or 0) - credited, 0), account.points_remaining


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke check")
    args = parser.parse_args()
    seconds = 4 if args.quick else 15
    rounds = 3 if args.quick else 20
    django_setup()
    from loyalty.selectors import ledger_mismatches

    customer_ids = setup_accounts(200 if args.quick else 1000)

    race = bench_coupon_race(rounds, customer_ids[0])
    exactly_one = sum(1 for r in race if r["won"] == 1 and r["redemptions"] == 1)
    race_errors = sum(r["errors"] for r in race)
    race_latency = summary_ms([t for r in race for t in r["latencies"]])

    earn = run_points("earn", "earn", customer_ids, seconds)
    spend = run_points("spend", "spread", customer_ids, seconds)
    hot_id = customer_ids[1]
    seed_hot(hot_id)  # enough points that the hot run never runs dry
    hot = run_points("spend", "hot", [hot_id], seconds)
    hot_overspend, hot_left = overspend(hot_id)
    mismatches = len(ledger_mismatches())

    def lat(result):
        f = result["latency"]
        return f"{f['p50']:.1f} / {f['p99']:.1f}" if f else "—"

    write_section(
        "loyalty",
        f"""## Loyalty and personal offers (issue #6)

Command: `make bench` (runs `bench/bench_loyalty.py` against a throwaway PostgreSQL started by
`bench/run.sh`).

### One coupon code, {WORKERS} redeemers

{WORKERS} worker processes (web, app and till channels mixed) call
`loyalty.coupons.coupon_redeem` on the same code at the same instant (released by one event
after all are connected); {rounds} codes in a row.

| codes raced | exactly one winner | winners total | losers (coupon_already_used / held) | errors | latency p50 / p99 ms |
|---|---|---|---|---|---|
| {rounds} | {exactly_one} / {rounds} | {sum(r["won"] for r in race)} | {sum(r["lost"] for r in race)} | {race_errors} | {race_latency["p50"]:.1f} / {race_latency["p99"]:.1f} |

### Points earn / spend throughput

{WORKERS} worker processes for {seconds} s each. Earn: one store receipt per call
(`points_earn_for_source`: operation row, lot, movement, earn lines, account cache, tier check).
Spend: `points_hold` (3 points, soonest-expiring lots first) then `points_capture`, two
transactions. {len(customer_ids)} accounts with 1,000 spendable points each; the hot scenario
spends from one account only (every spend serialised on its row lock; seeded with 1,000,000 more
points so that it never runs dry).

| scenario | operations/s | done | refused (insufficient points) | errors | latency p50 / p99 ms |
|---|---|---|---|---|---|
| earn, {len(customer_ids)} accounts | {earn["per_second"]:.0f} | {earn["done"]} | {earn["refused"]} | {earn["errors"]} | {lat(earn)} |
| spend (hold + capture), {len(customer_ids)} accounts | {spend["per_second"]:.0f} | {spend["done"]} | {spend["refused"]} | {spend["errors"]} | {lat(spend)} |
| spend, one hot account | {hot["per_second"]:.0f} | {hot["done"]} | {hot["refused"]} | {hot["errors"]} | {lat(hot)} |

Hot account: overspent {hot_overspend} points, {hot_left} left. Ledger mismatches after all runs
(`loyalty.selectors.ledger_mismatches`): {mismatches}.
""",
    )


if __name__ == "__main__":
    main()

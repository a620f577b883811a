#!/usr/bin/env python
"""Benchmark of stored-value spending (hold → capture) on PostgreSQL.

Usage (bench/run.sh does this): DATABASE_URL=postgres://… python bench/bench_payments.py [--quick]

Two runs of T threads for S seconds, each call a hold of 1.00 then its capture (two
transactions, as a till does):
  1. hot: every thread spends from ONE gift card (the worst case: every call serialises on the
     card's row — the conditional UPDATE is the lock);
  2. spread: each thread spends from its own card.
After each run the invariants are checked: balance = initial − Σ captures, nothing held, and
every ledger sums to its balance. Writes bench/results/payments.md.
"""

from __future__ import annotations

import argparse
import threading
import time
from decimal import Decimal

from _common import django_setup, summary_ms, write_section

django_setup()

from django.db import connection, connections  # noqa: E402

from payments import selectors  # noqa: E402
from payments.services import stored_value as sv  # noqa: E402

INITIAL = Decimal("1000000.00")


def issue(tag: str):
    return sv.gift_card_issue(
        amount=INITIAL,
        currency="EUR",
        source="goodwill",
        channel="backoffice",
        actor="bench",
        idempotency_key=f"bench-issue-{tag}",
    ).card


def run(threads: int, seconds: float, cards) -> dict:
    latencies: list[float] = []
    counts = [0] * threads
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(threads)
    run_tag = time.time_ns()

    def worker(index: int) -> None:
        card = cards[index % len(cards)]
        mine = []
        barrier.wait()
        n = 0
        while time.perf_counter() < stop:
            started = time.perf_counter()
            hold = sv.balance_hold(
                account=card,
                amount="1.00",
                idempotency_key=f"b-{run_tag}-{index}-{n}",
                channel="store",
                actor="bench",
            )
            sv.hold_capture(hold=hold)
            mine.append(time.perf_counter() - started)
            n += 1
        counts[index] = n
        with lock:
            latencies.extend(mine)
        connections.close_all()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    spent = Decimal(sum(counts))
    for card in cards:
        card.refresh_from_db()
    balance = sum((c.balance for c in cards), Decimal(0))
    held = sum((c.held for c in cards), Decimal(0))
    assert balance == INITIAL * len(cards) - spent, (balance, spent)
    assert held == 0, held
    assert selectors.ledger_mismatches() == []
    return {"calls": int(spent), "per_second": float(spent) / seconds, **summary_ms(latencies)}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke check")
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    assert connection.vendor == "postgresql", "run against PostgreSQL (bench/run.sh)"
    seconds = 3 if args.quick else 15
    tag = str(time.time_ns())
    hot = run(args.threads, seconds, [issue(f"{tag}-hot")])
    spread = run(args.threads, seconds, [issue(f"{tag}-{i}") for i in range(args.threads)])
    rows = "\n".join(
        f"| {name} | {r['calls']} | {r['per_second']:.0f} | {r['p50']:.1f} | {r['p90']:.1f} | "
        f"{r['p99']:.1f} |"
        for name, r in (("one card, all threads", hot), ("one card per thread", spread))
    )
    write_section(
        "payments",
        f"""## Payments: gift card hold → capture

{args.threads} threads for {seconds} s, each call = hold 1.00 + capture (two transactions).
Invariants checked after each run: balance = initial − captures, nothing left held, ledgers sum.

| Run | Spends | Spends/s | p50 ms | p90 ms | p99 ms |
|---|---|---|---|---|---|
{rows}
""",
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Benchmark of the customer reference (RCU) on PostgreSQL.

    DATABASE_URL=postgres://… python bench/bench_customers.py [--customers 1000000] [--quick]

Expects a migrated database (bench/run.sh provides a throwaway one). It:
  1. loads N customers, each with an email, a phone and a loyalty card (3·N identifiers), with
     COPY into pre-allocated primary keys: no ORM object per row;
  2. measures resolve latency (p50/p95/p99/max) by email, by phone and by card through the
     resolve selector, in-process (time.perf_counter around each call), with values typed the way
     a till or a form would (upper-case email, national phone form, card with spaces);
  3. measures identify-or-create throughput with T threads for S seconds (half the calls find an
     existing customer, half create a new one);
and writes a Markdown section to bench/results/customers.md (and prints it).

The loaded rows are namespaced by a random run tag, so the script can run twice on one database.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, connections  # noqa: E402

from customers import selectors, services  # noqa: E402
from customers.identifiers import luhn_check_digit  # noqa: E402
from customers.models import Customer, CustomerIdentifier  # noqa: E402

TARGET_P99_MS = 5.0
COPY_CHUNK = 50_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers to load")
    parser.add_argument(
        "--lookups", type=int, default=2_000, help="resolve calls per identifier kind"
    )
    parser.add_argument("--threads", type=int, default=8, help="identify-or-create threads")
    parser.add_argument("--seconds", type=float, default=10.0, help="identify-or-create duration")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "customers.md"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (bench/run.sh --quick): 20,000 customers, 500 lookups, 3 s",
    )
    args = parser.parse_args()
    if args.quick:
        args.customers, args.lookups, args.seconds = 20_000, 500, 3.0
    return args


# ---- data ------------------------------------------------------------------------------------


class Dataset:
    """Deterministic values for customer i of this run."""

    def __init__(self, size: int):
        self.size = size
        self.tag = uuid.uuid4().hex[:6]
        # phones: +33 6x or 7x (a range unused so far), then 7 digits of i (10 M per run at most)
        self.phone_prefix = self._free_phone_prefix()
        self.number_base = self._free_number_base()

    def _free_phone_prefix(self) -> str:
        # two-digit mobile ranges that phonenumbers accepts with any 7 digits after them
        for start in ("61", "62", "64", "65", "66", "67", "68", "73", "74", "75", "76", "77"):
            prefix = f"+33{start}"
            taken = CustomerIdentifier.objects.filter(
                kind="phone", value_normalised__startswith=prefix
            )
            if not taken.exists():
                return prefix
        raise SystemExit("no free phone range left: use a fresh database")

    def _free_number_base(self) -> int:
        for _ in range(20):
            base = random.randrange(100_000_000, 999_999_999 - self.size)
            low = str(base) + "0"
            high = str(base + self.size) + "9"
            if not Customer.objects.filter(number__gte=low, number__lte=high).exists():
                return base
        raise SystemExit("no free customer-number range: use a fresh database")

    def email(self, i: int) -> str:
        return f"client.{i}.{self.tag}@bench-mail.fr"

    def phone(self, i: int) -> str:
        return f"{self.phone_prefix}{i:07d}"

    def phone_national(self, i: int) -> str:
        digits = "0" + self.phone(i)[3:]
        return " ".join(digits[k : k + 2] for k in range(0, 10, 2))

    def card(self, i: int) -> str:
        return f"B{self.tag.upper()}{i:09d}"

    def number(self, i: int) -> str:
        body = str(self.number_base + i)
        return body + luhn_check_digit(body)


def _copy(cursor, table: str, columns: list[str], lines) -> None:
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with cursor.copy(sql) as copy:
        buffer = io.StringIO()
        for count, line in enumerate(lines, start=1):
            buffer.write(line)
            if count % COPY_CHUNK == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def load(data: Dataset) -> dict[str, float]:
    """COPY customers with pre-allocated ids, then their identifiers; one transaction."""
    n = data.size
    now = datetime.now(UTC).isoformat()
    started = time.perf_counter()
    with connection.cursor() as django_cursor:
        pg = django_cursor.connection
        with pg.transaction(), pg.cursor() as cur:
            cur.execute("SELECT pg_get_serial_sequence('customers_customer', 'id')")
            sequence = cur.fetchone()[0]
            # reserve n ids: nobody else gets them, even if other writers run meanwhile
            cur.execute("SELECT setval(%s, nextval(%s) + %s)", (sequence, sequence, n - 1))
            last = cur.fetchone()[0]
            first_id = last - n + 1

            _copy(
                cur,
                "customers_customer",
                [
                    "id",
                    "reference",
                    "number",
                    "first_name",
                    "last_name",
                    "name_key",
                    "language",
                    "status",
                    "created_channel",
                    "created_at",
                    "updated_at",
                ],
                (
                    f"{first_id + i}\t{uuid.uuid4()}\t{data.number(i)}\tClient{i}\tBench\t"
                    f"client{i} bench\tfr\tactive\tweb\t{now}\t{now}\n"
                    for i in range(n)
                ),
            )
            customers_done = time.perf_counter()

            def identifiers():
                for i in range(n):
                    cid = first_id + i
                    email, phone, card = data.email(i), data.phone(i), data.card(i)
                    yield f"{cid}\temail\t\t{email}\t{email}\tt\tweb\t{now}\n"
                    yield f"{cid}\tphone\t\t{phone}\t{phone}\tt\tweb\t{now}\n"
                    yield f"{cid}\tloyalty_card\t\t{card}\t{card}\tt\tstore\t{now}\n"

            _copy(
                cur,
                "customers_customeridentifier",
                [
                    "customer_id",
                    "kind",
                    "source",
                    "value_normalised",
                    "value_raw",
                    "is_primary",
                    "created_channel",
                    "created_at",
                ],
                identifiers(),
            )
        identifiers_done = time.perf_counter()
        # a steady-state database: statistics fresh, visibility map set, no autovacuum pending
        django_cursor.execute("VACUUM ANALYZE customers_customer")
        django_cursor.execute("VACUUM ANALYZE customers_customeridentifier")
    ended = time.perf_counter()
    return {
        "customers_s": customers_done - started,
        "identifiers_s": identifiers_done - customers_done,
        "analyze_s": ended - identifiers_done,
        "total_s": ended - started,
    }


# ---- measures --------------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def measure_resolve(data: Dataset, lookups: int) -> dict[str, dict[str, float]]:
    rng = random.Random(42)
    kinds = {
        "email": lambda i: ("email", data.email(i).upper()),
        "phone": lambda i: ("phone", data.phone_national(i)),
        "loyalty_card": lambda i: (
            "loyalty_card",
            " ".join(data.card(i)[k : k + 4] for k in range(0, 16, 4)),
        ),
    }
    results = {}
    for name, typed in kinds.items():
        samples = [rng.randrange(data.size) for _ in range(lookups)]
        for i in samples[:50]:  # warm-up: connection, caches
            selectors.customer_resolve_one(kind=typed(i)[0], value=typed(i)[1])
        timings, misses = [], 0
        for i in samples:
            kind, value = typed(i)
            started = time.perf_counter()
            customer = selectors.customer_resolve_one(kind=kind, value=value)
            timings.append((time.perf_counter() - started) * 1000)
            if customer is None or customer.number != data.number(i):
                misses += 1
        timings.sort()
        results[name] = {
            "p50": percentile(timings, 50),
            "p95": percentile(timings, 95),
            "p99": percentile(timings, 99),
            "max": timings[-1],
            "mean": statistics.fmean(timings),
            "calls": len(timings),
            "wrong": misses,
        }
    return results


def measure_identify(data: Dataset, threads: int, seconds: float) -> dict[str, float]:
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)
    counts = [{"found": 0, "created": 0, "errors": 0} for _ in range(threads)]
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def worker(index: int) -> None:
        rng = random.Random(index)
        new = 0
        try:
            barrier.wait()
            while not stop.is_set():
                if rng.random() < 0.5:
                    i = rng.randrange(data.size)
                    identifiers = [("email", data.email(i), ""), ("loyalty_card", data.card(i), "")]
                else:
                    new += 1
                    identifiers = [
                        ("email", f"new.{index}.{new}.{data.tag}@bench-mail.fr", ""),
                        ("external", f"T{index}-{new}-{data.tag}", "ecommerce"),
                    ]
                started = time.perf_counter()
                try:
                    result = services.customer_identify_or_create(
                        identifiers=identifiers, sales_channel="web", actor="bench"
                    )
                except Exception:  # noqa: BLE001 - counted and reported
                    counts[index]["errors"] += 1
                    continue
                latencies[index].append((time.perf_counter() - started) * 1000)
                counts[index]["created" if result.created else "found"] += 1
        finally:
            connections.close_all()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    total = {key: sum(c[key] for c in counts) for key in ("found", "created", "errors")}
    flat = sorted(x for per_thread in latencies for x in per_thread)
    calls = total["found"] + total["created"]
    return {
        "threads": threads,
        "seconds": elapsed,
        "calls": calls,
        "calls_per_s": calls / elapsed,
        **total,
        "p50": percentile(flat, 50) if flat else 0.0,
        "p99": percentile(flat, 99) if flat else 0.0,
    }


# ---- report ----------------------------------------------------------------------------------


def server_version() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


def report(args, data: Dataset, loading, resolve, identify) -> str:
    command = f"python bench/bench_customers.py --customers {args.customers}"
    if args.quick:
        command = "python bench/bench_customers.py --quick"
    elif args.lookups != 2000 or args.threads != 8 or args.seconds != 10:
        command += f" --lookups {args.lookups} --threads {args.threads} --seconds {args.seconds:g}"
    worst = max(r["p99"] for r in resolve.values())
    lines = [
        "## Customers (RCU): resolve and identify-or-create",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPU(s), "
        f"PostgreSQL {server_version()}, Python {platform.python_version()}.",
        "",
        "```",
        command,
        "```",
        "",
        f"Load: {args.customers:,} customers and {3 * args.customers:,} identifiers (email, phone, "
        f"loyalty card) by COPY in {loading['total_s']:.1f} s "
        f"(customers {loading['customers_s']:.1f} s, "
        f"identifiers {loading['identifiers_s']:.1f} s, "
        f"VACUUM ANALYZE {loading['analyze_s']:.1f} s).",
        "",
        "| Resolve (selector, in-process) | calls | p50 ms | p95 ms | p99 ms | max ms | wrong |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "email": "by email (typed in upper case)",
        "phone": "by phone (national form)",
        "loyalty_card": "by loyalty card (with spaces)",
    }
    for kind, r in resolve.items():
        lines.append(
            f"| {labels[kind]} | {r['calls']:,} | {r['p50']:.2f} | {r['p95']:.2f} | "
            f"{r['p99']:.2f} | {r['max']:.2f} | {r['wrong']} |"
        )
    verdict = "met" if worst <= TARGET_P99_MS else "NOT met"
    lines += [
        "",
        f"Target resolve p99 ≤ {TARGET_P99_MS:g} ms: **{verdict}** (worst p99 {worst:.2f} ms).",
        "",
        "| Identify-or-create | threads | seconds | calls | calls/s | found | created | errors | "
        "p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| 50 % existing (email + card), 50 % new (email + e-commerce id) | "
        f"{identify['threads']} | "
        f"{identify['seconds']:.1f} | {identify['calls']:,} | {identify['calls_per_s']:.0f} | "
        f"{identify['found']:,} | {identify['created']:,} | {identify['errors']} | "
        f"{identify['p50']:.2f} | {identify['p99']:.2f} |",
        "",
    ]
    return "\n".join(lines)


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return ""


def main() -> None:
    args = parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("This benchmark needs PostgreSQL: set DATABASE_URL=postgres://…")
    data = Dataset(args.customers)
    print(f"loading {args.customers:,} customers (run tag {data.tag})…", flush=True)
    loading = load(data)
    print(f"loaded in {loading['total_s']:.1f} s; measuring resolve…", flush=True)
    resolve = measure_resolve(data, args.lookups)
    print("measuring identify-or-create…", flush=True)
    identify = measure_identify(data, args.threads, args.seconds)
    section = report(args, data, loading, resolve, identify)
    revision = git_revision()
    if revision:
        section += f"\nCode revision: `{revision}`.\n"
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(section)
    print(section)


if __name__ == "__main__":
    main()

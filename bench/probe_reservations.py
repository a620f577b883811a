"""Where a reservation's CPU goes: Python workers, PostgreSQL and Redis, per reservation.

Not part of `make bench` (it writes no figures to docs/): a probe for reading those figures.
N worker processes call `inventory.services.reservation_create` for a few seconds, on one hot
position or spread over 1,000 SKUs x 10 locations, while the CPU time of the postgres and
redis-server processes on this machine is sampled from /proc.

The PostgreSQL and Redis figures count every process of those names on the machine: run it
with no other cluster or Redis busy.

Usage, against a migrated throwaway database (see bench/run.sh for how it starts one):
    DATABASE_URL=... REDIS_URL=... DEBUG=0 SECRET_KEY=x python bench/probe_reservations.py \
        --workers 32 [--spread] [--seconds 6]
"""

import argparse
import multiprocessing as mp
import os
import random
import time

from _common import django_setup

_TICKS = os.sysconf("SC_CLK_TCK")


def processes_cpu_seconds(name_prefix: str) -> float:
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        if stat[stat.index("(") + 1 : stat.rindex(")")].startswith(name_prefix):
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def positions(spread: bool) -> list[tuple[int, int]]:
    from inventory import services
    from inventory.models import Sku, StockPosition
    from stores.models import Location

    if spread:
        if not Location.objects.filter(code="PROBE-L00").exists():
            locations = Location.objects.bulk_create(
                Location(code=f"PROBE-L{i:02d}", name=f"L{i}", latitude=45, longitude=2)
                for i in range(10)
            )
            skus = Sku.objects.bulk_create(
                Sku(code=f"PROBE-S{i:04d}", name=f"S{i}") for i in range(1000)
            )
            for location in locations:
                services.stock_receive(
                    location_id=location.pk,
                    lines=[(sku.pk, 100_000) for sku in skus],
                    idempotency_key=f"probe:{location.code}",
                )
        return list(
            StockPosition.objects.filter(location__code__startswith="PROBE-L").values_list(
                "sku_id", "location_id"
            )
        )
    location, _ = Location.objects.get_or_create(
        code="PROBE-HOT", defaults={"name": "Hot", "latitude": 45, "longitude": 2}
    )
    sku, _ = Sku.objects.get_or_create(code="PROBE-HOT", defaults={"name": "Hot"})
    services.stock_receive(
        location_id=location.pk, lines=[(sku.pk, 100_000)], idempotency_key=f"probe:{time.time()}"
    )
    return [(sku.pk, location.pk)]


def worker(args):
    index, pairs, start, seconds = args
    from django.db import connection

    from inventory import services

    connection.ensure_connection()
    rng = random.Random(index)
    while time.time() < start:
        time.sleep(0.001)
    before = os.times()
    done = 0
    while time.time() < start + seconds:
        sku_id, location_id = rng.choice(pairs)
        done += 1
        services.reservation_create(
            sku_id=sku_id,
            location_id=location_id,
            quantity=1,
            idempotency_key=f"probe:{start}:{index}:{done}",
            channel="web",
            ttl_seconds=0,
        )
    after = os.times()
    connection.close()
    return done, (after.user - before.user) + (after.system - before.system)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--spread", action="store_true")
    args = parser.parse_args()
    django_setup()
    from django.db import connections

    pairs = positions(args.spread)
    connections.close_all()
    start = time.time() + 3
    with mp.get_context("fork").Pool(args.workers) as pool:
        pending = pool.map_async(
            worker, [(i, pairs, start, args.seconds) for i in range(args.workers)]
        )
        time.sleep(start - time.time() + 0.5)  # sample the steady middle of the run
        pg_before, redis_before = processes_cpu_seconds("postgres"), processes_cpu_seconds("redis")
        time.sleep(args.seconds - 1)
        pg_after, redis_after = processes_cpu_seconds("postgres"), processes_cpu_seconds("redis")
        results = pending.get()
    done = sum(n for n, _ in results)
    rate = done / args.seconds
    sampled = rate * (args.seconds - 1)
    print(
        f"{'spread' if args.spread else 'hot'} workers={args.workers}: {rate:.0f} reservations/s; "
        f"CPU per reservation: Python {sum(c for _, c in results) * 1000 / done:.3f} ms, "
        f"PostgreSQL {(pg_after - pg_before) * 1000 / sampled:.3f} ms, "
        f"Redis {(redis_after - redis_before) * 1000 / sampled:.3f} ms"
    )


if __name__ == "__main__":
    main()

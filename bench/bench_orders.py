"""Order intake and routing benchmarks (issue #4).

1. Orders placed per second through the HTTP API: gunicorn (config.wsgi, gthread workers) on a
   free loopback port, driven by 32 concurrent clients (4 processes x 8 threads, keep-alive
   connections), a mix of click & collect and home delivery over 50 locations, 1-3 lines per
   order, some SKUs scarce so that orders race for the last units. Afterwards: oversell (positions
   with more reserved than on hand) must be 0, the ledger must equal the positions, and every
   accepted order's reservations must match its lines exactly.
2. Routing time of a 10-line order over 500 locations: the pure router alone, and with the
   candidate fetch (two queries) from PostgreSQL.

Usage (bench/run.sh does this, with DATABASE_URL and REDIS_URL set to throwaway servers and the
database migrated): python bench/bench_orders.py [--quick]
"""

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal

from _common import ROOT, django_setup, summary_ms, write_section

CLIENT_PROCESSES = 4
THREADS_PER_PROCESS = 8
LOCATIONS = 50
SKUS = 300
SCARCE_SKUS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- data ------------------------------------------------------------------------------------


def load_data(rng: random.Random) -> dict:
    from datetime import time as clock

    from common.models import ApiKey
    from customers.identifiers import customer_number_new
    from customers.models import Customer
    from inventory import services
    from inventory.models import Sku
    from stores.models import Location, OpeningHours

    locations = []
    for i in range(LOCATIONS):
        warehouse = i < 2
        locations.append(
            Location(
                code=f"B{i:03d}",
                name=f"Bench {'warehouse' if warehouse else 'store'} {i}",
                kind="warehouse" if warehouse else "store",
                latitude=Decimal(f"{rng.uniform(43.3, 50.6):.6f}"),
                longitude=Decimal(f"{rng.uniform(-1.5, 7.5):.6f}"),
                allows_pickup=not warehouse,
                ships_from_location=warehouse or i % 4 == 0,
                preparation_minutes=60,
                routing_priority=rng.randint(1, 200),
            )
        )
    locations = Location.objects.bulk_create(locations)
    OpeningHours.objects.bulk_create(
        [
            OpeningHours(location=loc, weekday=day, opens_at=clock(0), closes_at=clock(23, 59))
            for loc in locations
            for day in range(7)
        ]
    )
    skus = Sku.objects.bulk_create(
        [Sku(code=f"BSKU{i:05d}", name=f"Bench product {i}") for i in range(SKUS)]
    )
    for n, location in enumerate(locations):
        lines = []
        for index, sku in enumerate(skus):
            scarce = index < SCARCE_SKUS
            if scarce and rng.random() < 0.9:
                continue
            if rng.random() < 0.35:
                continue
            lines.append((sku.pk, rng.randint(1, 3) if scarce else rng.randint(5, 60)))
        services.stock_receive(location_id=location.pk, lines=lines, idempotency_key=f"bench-{n}")
    customers = Customer.objects.bulk_create(
        [
            Customer(number=customer_number_new(), first_name=f"Bench{i}", language="fr")
            for i in range(500)
        ]
    )
    key = ApiKey(name="bench-web", channel="web", scopes=["orders:read", "orders:write"])
    raw = ApiKey.generate_raw_key()
    key.set_key(raw)
    key.save()
    return {
        "api_key": raw,
        "stores": [loc.code for loc in locations if loc.allows_pickup],
        "skus": [sku.code for sku in skus],
        "customers": [str(c.reference) for c in customers],
    }


def order_body(rng: random.Random, data: dict) -> dict:
    lines = rng.sample(data["skus"], rng.randint(1, 3))
    body = {
        "customer": {"reference": rng.choice(data["customers"])},
        "lines": [
            {"sku": code, "quantity": rng.randint(1, 2), "unit_price": "19.90", "currency": "EUR"}
            for code in lines
        ],
    }
    if rng.random() < 0.5:
        body["fulfilment"] = {"type": "pickup", "store": rng.choice(data["stores"])}
    else:
        body["fulfilment"] = {
            "type": "delivery",
            "address": {
                "name": "Bench Customer",
                "line1": "1 rue du Test",
                "postcode": "75001",
                "city": "Paris",
                "country": "FR",
                "latitude": f"{rng.uniform(43.3, 50.6):.6f}",
                "longitude": f"{rng.uniform(-1.5, 7.5):.6f}",
            },
        }
    return body


# ---- load ------------------------------------------------------------------------------------


def client_process(args):
    port, data, deadline, start_at, worker = args
    results = []
    lock = threading.Lock()

    def client(thread_index):
        rng = random.Random(worker * 100 + thread_index)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = 0
        while time.time() < start_at:
            time.sleep(0.001)
        local = []
        started_cpu[thread_index] = time.process_time()
        while time.time() < deadline:
            n += 1
            body = json.dumps(order_body(rng, data))
            started = time.perf_counter()
            try:
                connection.request(
                    "POST",
                    "/api/v1/orders/",
                    body=body,
                    headers={
                        "Content-Type": "application/json",
                        "Authorization": f"Api-Key {data['api_key']}",
                        "Idempotency-Key": f"bench-{worker}-{thread_index}-{n}",
                    },
                )
                response = connection.getresponse()
                payload = response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                local.append(("error", time.perf_counter() - started, None))
                continue
            elapsed = time.perf_counter() - started
            if status == 201:
                local.append(("accepted", elapsed, json.loads(payload)["reference"]))
            elif status == 409 and json.loads(payload).get("code") == "out_of_stock":
                local.append(("out_of_stock", elapsed, None))
            else:
                local.append((f"http_{status}", elapsed, payload[:200].decode(errors="replace")))
        with lock:
            results.extend(local)

    started_cpu = [None] * THREADS_PER_PROCESS
    threads = [threading.Thread(target=client, args=(i,)) for i in range(THREADS_PER_PROCESS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The process's CPU from the moment its clients started (its threads share one clock).
    return results, time.process_time() - min(t for t in started_cpu if t is not None)


# ---- CPU accounting (the machine may be shared: CPU time per order is the stable measure) -----

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process and its live children, plus what its exited children used."""
    total = 0.0
    fields = _stat(root)
    if fields:
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        total += (utime + stime + cutime + cstime) / _TICKS
    for child in _children(root):
        fields = _stat(child)
        if fields:
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def postmaster_pid() -> int | None:
    from django.db import connection

    port = str(connection.settings_dict.get("PORT") or "5432")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline") as handle:
                cmdline = handle.read().split("\0")
        except OSError:
            continue
        is_postmaster = cmdline and cmdline[0].endswith("postgres") and "-p" in cmdline
        if is_postmaster and cmdline[cmdline.index("-p") + 1] == port:
            return int(entry)
    return None


def start_gunicorn(port: int, workers: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": "bench-only-secret", "LOG_LEVEL": "WARNING"}
    env["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("gunicorn did not start")


def bench_http(data: dict, seconds: float, workers: int, threads: int) -> dict:
    port = free_port()
    postmaster = postmaster_pid()
    server = start_gunicorn(port, workers, threads)
    try:
        start_at = time.time() + 2
        deadline = start_at + seconds
        ctx = mp.get_context("fork")
        with ctx.Pool(CLIENT_PROCESSES) as pool:
            pending = pool.map_async(
                client_process,
                [(port, data, deadline, start_at, w) for w in range(CLIENT_PROCESSES)],
            )
            time.sleep(max(start_at - time.time(), 0))
            app_before = tree_cpu_seconds(server.pid)
            db_before = tree_cpu_seconds(postmaster) if postmaster else 0.0
            batches = pending.get()
            app_cpu = tree_cpu_seconds(server.pid) - app_before
            db_cpu = (tree_cpu_seconds(postmaster) - db_before) if postmaster else None
    finally:
        server.terminate()
        server.wait(timeout=30)
    results = [r for batch, _ in batches for r in batch]
    client_cpu = sum(cpu for _, cpu in batches)
    outcomes: dict[str, int] = {}
    for kind, _, _ in results:
        outcomes[kind] = outcomes.get(kind, 0) + 1
    accepted = [ref for kind, _, ref in results if kind == "accepted"]
    errors = [detail for kind, _, detail in results if kind not in ("accepted", "out_of_stock")]
    return {
        "seconds": seconds,
        "outcomes": outcomes,
        "accepted": accepted,
        "latency": summary_ms([elapsed for _, elapsed, _ in results]),
        "errors_sample": errors[:3],
        "app_cpu": app_cpu,
        "db_cpu": db_cpu,
        "client_cpu": client_cpu,
    }


def verify(accepted: list[str]) -> dict:
    from django.db.models import F

    from inventory.models import Reservation, StockPosition
    from inventory.selectors import ledger_mismatches
    from orders.models import OrderLine

    oversold = StockPosition.objects.filter(reserved__gt=F("on_hand") - F("unsellable")).count()
    wanted: dict[tuple, int] = {}
    for reference, sku_id, quantity in OrderLine.objects.filter(
        order__reference__in=accepted
    ).values_list("order__reference", "sku_id", "quantity"):
        wanted[(reference, sku_id)] = wanted.get((reference, sku_id), 0) + quantity
    held: dict[tuple, int] = {}
    for reference, sku_id, quantity in Reservation.objects.filter(
        reference__in=accepted, status="active"
    ).values_list("reference", "sku_id", "quantity"):
        held[(reference, sku_id)] = held.get((reference, sku_id), 0) + quantity
    return {
        "oversold_positions": oversold,
        "ledger_mismatches": len(ledger_mismatches()),
        "orders_with_wrong_reservations": len(
            {
                ref
                for ref, sku_id in set(wanted) | set(held)
                if wanted.get((ref, sku_id)) != held.get((ref, sku_id))
            }
        ),
    }


# ---- routing ---------------------------------------------------------------------------------


def bench_routing(rng: random.Random, runs: int) -> dict:
    from datetime import time as clock

    from inventory import services
    from inventory.models import Sku
    from orders import routing, selectors
    from stores.models import Location, OpeningHours

    existing = Location.objects.count()
    extra = Location.objects.bulk_create(
        [
            Location(
                code=f"R{i:04d}",
                name=f"Routing store {i}",
                kind="store",
                latitude=Decimal(f"{rng.uniform(43.3, 50.6):.6f}"),
                longitude=Decimal(f"{rng.uniform(-1.5, 7.5):.6f}"),
                allows_pickup=True,
                ships_from_location=i % 3 == 0,
                routing_priority=rng.randint(1, 200),
            )
            for i in range(500 - existing)
        ]
    )
    OpeningHours.objects.bulk_create(
        [
            OpeningHours(location=loc, weekday=0, opens_at=clock(9), closes_at=clock(19))
            for loc in extra
        ]
    )
    skus = list(Sku.objects.order_by("pk")[SCARCE_SKUS : SCARCE_SKUS + 10])
    for n, location in enumerate(Location.objects.all()):
        lines = [(sku.pk, rng.randint(1, 8)) for sku in skus if rng.random() < 0.6]
        if lines:
            services.stock_receive(
                location_id=location.pk, lines=lines, idempotency_key=f"routing-{n}"
            )
    needs = [
        routing.Need(line=i + 1, sku_id=sku.pk, quantity=1 + i % 2, sku_code=sku.code)
        for i, sku in enumerate(skus)
    ]
    rules, protect = selectors.routing_rules_for("web")
    origin = (48.8566, 2.3522)
    pure, with_fetch = [], []
    outcome = None
    for _ in range(runs):
        started = time.perf_counter()
        candidates = selectors.routing_candidates(sku_ids=[n.sku_id for n in needs], channel="web")
        fetched = time.perf_counter()
        plan = routing.route_delivery(
            needs, list(candidates.values()), rules=rules, origin=origin, protect_units=protect
        )
        done = time.perf_counter()
        pure.append(done - fetched)
        with_fetch.append(done - started)
        outcome = plan.outcome
    return {
        "locations": Location.objects.count(),
        "pure": summary_ms(pure),
        "with_fetch": summary_ms(with_fetch),
        "outcome": outcome,
        "rules": rules,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke check")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", 3)))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 2)))
    args = parser.parse_args()
    seconds = 6 if args.quick else 30
    django_setup()
    from django.db import connections

    rng = random.Random(4)
    data = load_data(rng)
    connections.close_all()
    result = bench_http(data, seconds, args.workers, args.threads)
    checks = verify(result["accepted"])
    accepted = len(result["accepted"])
    rate = accepted / seconds
    attempted = sum(result["outcomes"].values())
    routing_result = bench_routing(rng, 50 if args.quick else 300)
    lat = result["latency"]
    verdict = "met" if rate >= 300 else "NOT met"
    requests = max(attempted, 1)
    app_ms = result["app_cpu"] * 1000 / requests
    db_ms = (result["db_cpu"] or 0) * 1000 / requests
    client_ms = result["client_cpu"] * 1000 / requests
    cores = os.cpu_count() or 1
    ceiling = cores * 1000 / (app_ms + db_ms) if app_ms + db_ms else 0
    load = os.getloadavg()[0]
    markdown = f"""## Orders (issue #4)

`python bench/bench_orders.py{" --quick" if args.quick else ""}`: gunicorn `config.wsgi` with
{args.workers} gthread workers x {args.threads} threads on loopback, {CLIENT_PROCESSES * THREADS_PER_PROCESS}
concurrent HTTP clients (keep-alive) posting `POST /api/v1/orders/` for {seconds} s: half click &
collect at a random store, half home delivery to a random place, 1-3 lines, over {LOCATIONS}
locations and {SKUS} SKUs ({SCARCE_SKUS} of them scarce: orders race for their last units).
Each accepted order is routed (rules {routing_result["rules"]}), reserved all-or-nothing,
journaled with its routing decision, and its confirmation is owed in the notifications outbox,
the sending task scheduled on Redis (no Celery worker runs here: sending is not measured).

| Measure | Result |
|---|---|
| Orders accepted per second | **{rate:.0f}** (target 300: {verdict}) |
| Requests per second (accepted + refused out of stock) | {attempted / seconds:.0f} |
| Outcomes | {", ".join(f"{k}: {v}" for k, v in sorted(result["outcomes"].items()))} |
| Latency per request p50 / p90 / p99 | {lat["p50"]:.0f} / {lat["p90"]:.0f} / {lat["p99"]:.0f} ms |
| Oversold positions (reserved > on hand − unsellable) | {checks["oversold_positions"]} |
| Ledger ≠ positions | {checks["ledger_mismatches"]} |
| Accepted orders whose reservations differ from their lines | {checks["orders_with_wrong_reservations"]} |
| CPU per request: gunicorn (Django) / PostgreSQL | {app_ms:.1f} ms / {db_ms:.1f} ms |
| Ceiling on {cores} dedicated cores at that CPU cost | ≈ {ceiling:.0f} requests/s |
| CPU per request of the load generator (same machine) | {client_ms:.1f} ms |
| Load average at the end (the machine may be shared) | {load:.1f} |

Routing a 10-line delivery order over {routing_result["locations"]} locations
({routing_result["outcome"]} plan): pure router p50 {routing_result["pure"]["p50"]:.2f} ms,
p99 {routing_result["pure"]["p99"]:.2f} ms (target ≤ 5 ms); with the candidate fetch from
PostgreSQL (two queries) p50 {routing_result["with_fetch"]["p50"]:.2f} ms,
p99 {routing_result["with_fetch"]["p99"]:.2f} ms.
"""
    if result["errors_sample"]:
        markdown += f"\nError samples: `{result['errors_sample']}`\n"
    write_section("orders", markdown)
    problems = (
        checks["oversold_positions"]
        or checks["ledger_mismatches"]
        or checks["orders_with_wrong_reservations"]
    )
    if problems:
        sys.exit("invariants violated")


if __name__ == "__main__":
    main()

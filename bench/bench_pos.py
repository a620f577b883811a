"""POS benchmark (issue #7): sale events ingested and applied per second.

The production path: events are POSTed, signed, to gunicorn (3 workers) by 16 client threads;
one Celery worker (prefork, 2 processes) applies them from Redis. 10 % of the posts are
duplicates of earlier events (a till retrying). Afterwards the ledger is checked: every unique
sale moved stock exactly once, every duplicate was acknowledged and had no effect.

Usage (bench/run.sh does this, with DATABASE_URL and REDIS_URL set):
    python bench/bench_pos.py [--quick]
"""

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from _common import ROOT, django_setup, write_section

CLIENT_THREADS = 16
STORES = 10
SKUS = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup():
    from integrations.models import PosIntegration, PosTill
    from inventory import services
    from inventory.models import Sku
    from stores.models import Location

    stores = Location.objects.bulk_create(
        [
            Location(
                code=f"POS{i:02d}",
                name=f"Store {i}",
                latitude=48 + i / 10,
                longitude=2,
                allows_pickup=True,
            )
            for i in range(STORES)
        ]
    )
    skus = Sku.objects.bulk_create(
        [Sku(code=f"POS-SKU-{i:03d}", name=f"S{i}") for i in range(SKUS)]
    )
    for store in stores:
        services.stock_receive(
            location_id=store.pk,
            lines=[(s.pk, 50_000) for s in skus],
            idempotency_key=f"bench:pos:{store.pk}",
        )
    integration = PosIntegration.objects.create(slug="bench", name="bench", secret="bench-secret")
    integration.stores.add(*stores)
    PosTill.objects.bulk_create(
        [PosTill(integration=integration, location=s, code="T1") for s in stores]
    )
    return [s.code for s in stores], [s.code for s in skus]


def make_events(count, stores, skus):
    rng = random.Random(11)
    start = datetime.now(UTC) - timedelta(minutes=30)
    events = []
    for n in range(count):
        lines = [
            {"sku": code, "quantity": rng.randint(1, 3), "unit_price": "19.90"}
            for code in rng.sample(skus, rng.randint(1, 3))
        ]
        events.append(
            {
                "event_id": f"bench-{n}",
                "type": "sale",
                "occurred_at": (start + timedelta(milliseconds=n)).isoformat(),
                "store": rng.choice(stores),
                "till": "T1",
                "data": {
                    "receipt": f"R{n}",
                    "currency": "EUR",
                    "lines": lines,
                    "tenders": [{"kind": "card", "amount": "19.90"}],
                },
            }
        )
    return events


def start_processes(port):
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "bench-not-secret",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    venv_bin = os.path.dirname(sys.executable)
    gunicorn = subprocess.Popen(
        [
            os.path.join(venv_bin, "gunicorn"),
            "config.wsgi",
            "--workers",
            "3",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    worker = subprocess.Popen(
        [
            os.path.join(venv_bin, "celery"),
            "-A",
            "config",
            "worker",
            "--concurrency",
            "2",
            "--loglevel",
            "warning",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return gunicorn, worker


def post_all(port, bodies):
    from common.signing import signature_header

    queue = list(enumerate(bodies))
    lock = threading.Lock()
    statuses = {}

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if not queue:
                    break
                index, body = queue.pop(0)
            raw = json.dumps(body).encode()
            connection.request(
                "POST",
                "/api/v1/pos/bench/events/",
                body=raw,
                headers={
                    "Content-Type": "application/json",
                    "X-Omnistock-Signature": signature_header("bench-secret", raw),
                },
            )
            response = connection.getresponse()
            response.read()
            statuses[index] = response.status
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENT_THREADS)]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses, started, time.time()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    unique = 1_000 if args.quick else 6_000
    django_setup()
    from django.db.models import Max, Min

    from integrations.models import PosEvent, PosEventStatus, StoreReceipt
    from inventory.models import StockMovement, StockPosition, TillDiscrepancy
    from inventory.selectors import ledger_mismatches

    stores, skus = setup()
    events = make_events(unique, stores, skus)
    duplicates = random.Random(5).sample(events, unique // 9)  # 10 % of all posts
    bodies = events + duplicates
    random.Random(6).shuffle(bodies)
    on_hand_before = sum(StockPosition.objects.values_list("on_hand", flat=True))

    port = free_port()
    gunicorn, worker = start_processes(port)
    try:
        statuses, started, posted = post_all(port, bodies)
        deadline = time.time() + 600
        while time.time() < deadline:
            done = (
                PosEvent.objects.exclude(status=PosEventStatus.RECEIVED)
                .filter(event_id__startswith="bench-")
                .count()
            )
            if done >= unique:
                break
            time.sleep(0.5)
    finally:
        for process in (gunicorn, worker):
            process.send_signal(signal.SIGTERM)
        for process in (gunicorn, worker):
            process.wait(timeout=60)

    span = PosEvent.objects.filter(event_id__startswith="bench-").aggregate(
        first=Min("received_at"), last=Max("processed_at")
    )
    applied_seconds = (span["last"] - span["first"]).total_seconds()
    accepted = sum(1 for s in statuses.values() if s == 202)
    acknowledged = sum(1 for s in statuses.values() if s == 200)
    errors = sum(1 for s in statuses.values() if s not in (200, 202))
    processed = PosEvent.objects.filter(status=PosEventStatus.PROCESSED).count()
    units_sold = sum(line["quantity"] for event in events for line in event["data"]["lines"])
    on_hand_after = sum(StockPosition.objects.values_list("on_hand", flat=True))
    sale_movements = StockMovement.objects.filter(kind="sale").count()
    expected_movements = sum(len(event["data"]["lines"]) for event in events)
    exactly_once = (
        on_hand_before - on_hand_after == units_sold
        and sale_movements == expected_movements
        and StoreReceipt.objects.count() == unique
        and processed == unique
    )

    write_section(
        "pos",
        f"""## POS events (issue #7)

Command: `make bench` (`bench/bench_pos.py`). {len(bodies):,} signed sale events (1–3 lines each)
POSTed by {CLIENT_THREADS} client threads to gunicorn (3 workers) on loopback, of which
{len(duplicates):,} ({100 * len(duplicates) / len(bodies):.0f} %) are duplicates of earlier
events; one Celery worker (2 prefork processes) applies them from Redis. {STORES} stores,
{SKUS} SKUs.

| measure | value |
|---|---|
| intake (HTTP answers/s, signature + validation + inbox insert) | {len(bodies) / (posted - started):.0f} |
| applied (unique events/s, first received → last processed) | {unique / applied_seconds:.0f} |
| accepted (202) / duplicates acknowledged (200) / errors | {accepted:,} / {acknowledged:,} / {errors} |
| events processed | {processed:,} of {unique:,} |
| units sold vs on-hand decrease | {units_sold:,} vs {on_hand_before - on_hand_after:,} |
| sale movements vs sale lines | {sale_movements:,} vs {expected_movements:,} |
| till discrepancies | {TillDiscrepancy.objects.count()} |
| ledger mismatches | {len(ledger_mismatches())} |
| exactly once | {"yes" if exactly_once else "NO"} |

Target: 1,000 events/s applied on this 2-core machine.
""",
    )


if __name__ == "__main__":
    main()

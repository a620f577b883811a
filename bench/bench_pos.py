"""POS benchmark (issue #7): sale events ingested and applied per second.

The production path: events are POSTed, signed, to gunicorn (3 workers) by 16 client threads;
one Celery worker (prefork, 2 processes) applies them from Redis. 10 % of the events sent are
duplicates of earlier ones (a till retrying). Two ways of sending, one after the other:
- one event per request (`/events/`), as a till sends live;
- batches of BATCH_SIZE events per request (`/events/batch/`), as a till replays its backlog
  or a store's till server forwards every few seconds; duplicates fall in other batches or,
  sometimes, the same one.
Afterwards the ledger is checked for each: every unique sale moved stock exactly once, every
duplicate was acknowledged and had no effect.

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
from decimal import Decimal

from _common import ROOT, django_setup, write_section

CLIENT_THREADS = 16
BATCH_SIZE = 100
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


def make_events(count, stores, skus, prefix):
    rng = random.Random(prefix)
    start = datetime.now(UTC) - timedelta(minutes=30)
    events = []
    for n in range(count):
        lines = [
            {"sku": code, "quantity": rng.randint(1, 3), "unit_price": "19.90"}
            for code in rng.sample(skus, rng.randint(1, 3))
        ]
        events.append(
            {
                "event_id": f"{prefix}-{n}",
                "type": "sale",
                "occurred_at": (start + timedelta(milliseconds=n)).isoformat(),
                "store": rng.choice(stores),
                "till": "T1",
                "data": {
                    "receipt": f"{prefix}-R{n}",  # one sale per receipt and till
                    "currency": "EUR",
                    "lines": lines,
                    "tenders": [  # the tenders pay the receipt, or it is refused
                        {
                            "kind": "card",
                            "amount": str(Decimal("19.90") * sum(li["quantity"] for li in lines)),
                        }
                    ],
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


def post_all(port, bodies, path="/api/v1/pos/bench/events/"):
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
                path,
                body=raw,
                headers={
                    "Content-Type": "application/json",
                    "X-Omnistock-Signature": signature_header("bench-secret", raw),
                },
            )
            response = connection.getresponse()
            answer = response.read()
            statuses[index] = (response.status, answer)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENT_THREADS)]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses, started, time.time()


def run_scenario(port, name, unique, stores, skus, batch_size):
    """Send `unique` sale events plus 10 % duplicates; wait until all are applied; check."""
    from django.db.models import Max, Min, Sum

    from integrations.models import PosEvent, PosEventStatus, StoreReceipt
    from inventory.models import StockMovement, StockPosition

    events = make_events(unique, stores, skus, name)
    duplicates = random.Random(5).sample(events, unique // 9)  # 10 % of all events sent
    sent = events + duplicates
    random.Random(6).shuffle(sent)
    if batch_size == 1:
        bodies, path = sent, "/api/v1/pos/bench/events/"
    else:
        bodies = [
            {"events": sent[start : start + batch_size]}
            for start in range(0, len(sent), batch_size)
        ]
        path = "/api/v1/pos/bench/events/batch/"
    on_hand_before = StockPosition.objects.aggregate(total=Sum("on_hand"))["total"]
    sales_before = StockMovement.objects.filter(kind="sale").count()

    statuses, started, posted = post_all(port, bodies, path)
    deadline = time.time() + 600
    mine = PosEvent.objects.filter(event_id__startswith=f"{name}-")
    while time.time() < deadline:
        if mine.exclude(status=PosEventStatus.RECEIVED).count() >= unique:
            break
        time.sleep(0.25)

    span = mine.aggregate(first=Min("received_at"), last=Max("processed_at"))
    accepted = acknowledged = errors = 0
    for status, answer in statuses.values():
        if batch_size == 1:
            accepted += status == 202
            acknowledged += status == 200
            errors += status not in (200, 202)
        elif status != 200:
            errors += batch_size
        else:
            body = json.loads(answer)
            accepted += body["accepted"]
            acknowledged += body["duplicates"]
            errors += body["rejected"]
    units_sold = sum(line["quantity"] for event in events for line in event["data"]["lines"])
    on_hand_after = StockPosition.objects.aggregate(total=Sum("on_hand"))["total"]
    sale_movements = StockMovement.objects.filter(kind="sale").count() - sales_before
    expected_movements = sum(len(event["data"]["lines"]) for event in events)
    processed = mine.filter(status=PosEventStatus.PROCESSED).count()
    receipts = StoreReceipt.objects.filter(event__event_id__startswith=f"{name}-").count()
    return {
        "name": name,
        "requests": len(bodies),
        "sent": len(sent),
        "duplicates": len(duplicates),
        "unique": unique,
        "intake": len(sent) / (posted - started),
        "applied": unique / (span["last"] - span["first"]).total_seconds(),
        "accepted": accepted,
        "acknowledged": acknowledged,
        "errors": errors,
        "processed": processed,
        "units_sold": units_sold,
        "on_hand_decrease": on_hand_before - on_hand_after,
        "sale_movements": sale_movements,
        "expected_movements": expected_movements,
        "exactly_once": (
            on_hand_before - on_hand_after == units_sold
            and sale_movements == expected_movements
            and receipts == unique
            and processed == unique
            and accepted == unique
            and acknowledged == len(duplicates)
        ),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    single_unique = 1_000 if args.quick else 2_000
    batch_unique = 2_000 if args.quick else 30_000
    django_setup()
    from inventory.models import TillDiscrepancy
    from inventory.selectors import ledger_mismatches

    stores, skus = setup()
    port = free_port()
    gunicorn, worker = start_processes(port)
    try:
        results = [
            run_scenario(port, "live", single_unique, stores, skus, batch_size=1),
            run_scenario(port, "backlog", batch_unique, stores, skus, batch_size=BATCH_SIZE),
        ]
    finally:
        for process in (gunicorn, worker):
            process.send_signal(signal.SIGTERM)
        for process in (gunicorn, worker):
            process.wait(timeout=60)

    rows = "\n".join(
        f"| {'one event per request' if r['requests'] == r['sent'] else f'batches of {BATCH_SIZE}'}"
        f" | {r['sent']:,} ({r['duplicates']:,} duplicates) in {r['requests']:,} requests"
        f" | {r['intake']:,.0f} | **{r['applied']:,.0f}**"
        f" | {r['accepted']:,} / {r['acknowledged']:,} / {r['errors']}"
        f" | {r['processed']:,} of {r['unique']:,}"
        f" | {r['units_sold']:,} vs {r['on_hand_decrease']:,}"
        f" | {r['sale_movements']:,} vs {r['expected_movements']:,}"
        f" | {'yes' if r['exactly_once'] else 'NO'} |"
        for r in results
    )
    best = max(r["applied"] for r in results)
    write_section(
        "pos",
        f"""## POS events (issue #7)

Command: `make bench` (`bench/bench_pos.py`). Signed sale events (1–3 lines each) POSTed by
{CLIENT_THREADS} client threads to gunicorn (3 workers) on loopback; 10 % of the events sent
are duplicates of earlier ones; one Celery worker (2 prefork processes) applies them from
Redis. {STORES} stores, {SKUS} SKUs. First one event per request (`/events/`, a till live),
then batches of {BATCH_SIZE} (`/events/batch/`, a till's backlog or a store server forwarding
every few seconds), on the same servers.

| sending | events | intake (events/s answered) | applied (unique events/s, first received → last processed) | accepted / duplicates acknowledged / errors | processed | units sold vs on-hand decrease | sale movements vs sale lines | exactly once |
|---|---|---:|---:|---|---|---|---|---|
{rows}

Till discrepancies: {TillDiscrepancy.objects.count()}; ledger mismatches: {len(ledger_mismatches())}.

Target: 1,000 events/s applied on this 2-core machine: **{"met" if best >= 1000 else "not met"}**
(best {best:,.0f}/s).
""",
    )


if __name__ == "__main__":
    main()

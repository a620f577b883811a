"""Outbound events under the order load (issue #19): do deliveries keep up?

The README's production processes — gunicorn (2 workers × 4 threads), a Celery worker (threads,
concurrency 4) and beat — on PostgreSQL and Redis, one webhook subscriber (a threaded HTTP server
on loopback that answers 200 at once), and 4 clients placing home-delivery orders through the API
for `--seconds`. Each order makes outbox events (order.*, stock.*). Two runs:

1. steady: events produced and delivered per second over the load, the delivery lag (arrival at
   the subscriber − the event's occurred_at) p50/p95, and how long the backlog takes to drain
   once the load stops;
2. worker killed (SIGKILL) a third of the way through and restarted at two thirds: the same
   figures, and the drain time.

The figure to judge is the ratio delivered/produced over the load (≥ 1: the backlog shrinks) and
the drain time, not absolute rates (±40 % on this shared machine).

Usage (bench/run.sh does this, with DATABASE_URL and REDIS_URL set to throwaway servers and the
database migrated): python bench/bench_webhooks.py [--quick] [--seconds 45]
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from _common import ROOT, django_setup, percentile, write_section

CLIENTS = 4
SKUS = 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Subscriber:
    """Records (event id, occurred_at, arrival) of every delivery; answers 200 at once."""

    def __init__(self):
        self.arrivals: dict[int, tuple[datetime, float]] = {}
        self.lock = threading.Lock()
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                arrived = time.time()
                occurred = datetime.fromisoformat(body["occurred_at"].replace("Z", "+00:00"))
                with subscriber.lock:
                    subscriber.arrivals.setdefault(body["id"], (occurred, arrived))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)

    def lags_between(self, start: float, end: float) -> list[float]:
        with self.lock:
            return [
                arrived - occurred.timestamp()
                for occurred, arrived in self.arrivals.values()
                if start <= occurred.timestamp() < end
            ]


def load_data() -> str:
    from common.models import ApiKey
    from inventory import services
    from inventory.models import Sku
    from stores.models import Location

    warehouse = Location.objects.create(
        code="BW", name="Bench warehouse", kind="warehouse", latitude="48.8", longitude="2.3",
        allows_pickup=False, ships_from_location=True,
    )  # fmt: skip
    skus = Sku.objects.bulk_create([Sku(code=f"WSKU{i:03d}", name=f"P{i}") for i in range(SKUS)])
    services.stock_receive(
        location_id=warehouse.pk, lines=[(s.pk, 100_000) for s in skus], idempotency_key="w"
    )
    key = ApiKey(name="bench-web", channel="web", scopes=["orders:read", "orders:write"])
    raw = ApiKey.generate_raw_key()
    key.set_key(raw)
    key.save()
    return raw


def subscribe(url: str) -> None:
    from integrations.models import WebhookEndpoint

    WebhookEndpoint.objects.create(name="bench", url=url)


def start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def place_orders(port, api_key, stop: threading.Event, counter: list[int], n: int, run_name: str):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    i = 0
    while not stop.is_set():
        i += 1
        body = json.dumps({
            "customer": {"email": f"bench.{n}.{i}@gmail.com"},
            "lines": [{"sku": f"WSKU{(n * 7 + i) % SKUS:03d}", "quantity": 1,
                       "unit_price": "19.90", "currency": "EUR"}],
            "fulfilment": {"type": "delivery", "address": {
                "name": "B", "line1": "1 rue", "postcode": "75001", "city": "Paris",
                "country": "FR", "latitude": "48.86", "longitude": "2.34"}},
        })  # fmt: skip
        try:
            connection.request(
                "POST", "/api/v1/orders/", body,
                {"Authorization": f"Api-Key {api_key}", "Content-Type": "application/json",
                 "Idempotency-Key": f"{run_name}-{n}-{i}"},
            )  # fmt: skip
            response = connection.getresponse()
            response.read()
            if response.status == 201:
                counter[0] += 1
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def wanted_events_between(start: float, end: float) -> int:
    from common.models import OutboxEvent

    return OutboxEvent.objects.filter(
        occurred_at__gte=datetime.fromtimestamp(start, UTC),
        occurred_at__lt=datetime.fromtimestamp(end, UTC),
    ).count()


def run(seconds: int, drain_cap: int, kill_worker: bool, port: int, api_key: str, env, hook):
    from common.models import OutboxEvent

    worker_args = ["celery", "-A", "config", "worker", "--pool", "threads", "--concurrency",
                   "4", "--loglevel", "WARNING"]  # fmt: skip
    worker = start(worker_args, env)
    time.sleep(6)  # the worker connects
    already = OutboxEvent.objects.count()
    delivered_before = hook.count()
    stop, placed = threading.Event(), [0]
    clients = [
        threading.Thread(
            target=place_orders,
            args=(port, api_key, stop, placed, n, "kill" if kill_worker else "steady"),
        )
        for n in range(CLIENTS)
    ]
    started = time.time()
    for client in clients:
        client.start()
    if kill_worker:
        time.sleep(seconds / 3)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        time.sleep(seconds / 3)
        worker = start(worker_args, env)
        time.sleep(max(0.0, started + seconds - time.time()))
    else:
        time.sleep(seconds)
    stop.set()
    for client in clients:
        client.join()
    ended = time.time()
    produced = OutboxEvent.objects.count() - already
    delivered_during = hook.count() - delivered_before
    backlog_at_end = produced - delivered_during
    while hook.count() - delivered_before < produced and time.time() - ended < drain_cap:
        time.sleep(0.5)
    drained_after = time.time() - ended
    delivered = hook.count() - delivered_before
    worker.terminate()
    worker.wait(timeout=30)
    lags = hook.lags_between(started, ended)
    return {
        "orders": placed[0],
        "produced_per_s": produced / (ended - started),
        "delivered_per_s": delivered_during / (ended - started),
        "ratio": delivered_during / produced if produced else 0,
        "backlog_at_end": backlog_at_end,
        "drained": delivered >= produced,
        "drain_s": drained_after,
        "left": produced - delivered,
        "lag_p50": percentile(lags, 0.5) if lags else float("nan"),
        "lag_p95": percentile(lags, 0.95) if lags else float("nan"),
        "produced": produced,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=int, default=45)
    parser.add_argument("--drain-cap", type=int, default=300)
    args = parser.parse_args()
    seconds = 10 if args.quick else args.seconds
    django_setup()
    api_key = load_data()
    hook = Subscriber()
    subscribe(hook.url)
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": "bench-only-secret", "LOG_LEVEL": "WARNING",
           "ALLOWED_HOSTS": "127.0.0.1,localhost"}  # fmt: skip
    port = free_port()
    web = start(["gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                 "--worker-class", "gthread", "--threads", "4"], env)  # fmt: skip
    beat = start(["celery", "-A", "config", "beat", "--loglevel", "WARNING", "--schedule",
                  f"/tmp/bench-beat-{port}"], env)  # fmt: skip
    time.sleep(4)
    try:
        steady = run(seconds, args.drain_cap, False, port, api_key, env, hook)
        killed = run(seconds, args.drain_cap, True, port, api_key, env, hook)
    finally:
        web.terminate()
        beat.terminate()
    rows = []
    for name, r in (("steady", steady), ("worker killed at 1/3, back at 2/3", killed)):
        drain = (
            f"{r['drain_s']:.1f} s"
            if r["drained"]
            else f"not in {args.drain_cap} s ({r['left']} left)"
        )
        rows.append(
            f"| {name} | {r['orders']} | {r['produced']} | {r['produced_per_s']:.0f} | "
            f"{r['delivered_per_s']:.0f} | {r['ratio']:.2f} | {r['backlog_at_end']} | {drain} | "
            f"{r['lag_p50']:.2f} | {r['lag_p95']:.2f} |"
        )
    table = "\n".join(rows)
    write_section(
        "webhooks",
        f"""## Outbound events under the order load

```
python bench/bench_webhooks.py --seconds {seconds}
```

gunicorn (2 × 4 threads), one Celery worker (threads × 4) and beat, one subscriber on loopback
answering 200 at once; {CLIENTS} clients place home-delivery orders through the API for
{seconds} s. Produced/delivered: events per second over the load window; ratio = delivered /
produced over that window (≥ 1: the backlog shrinks); backlog = produced − delivered when the
load stops; drain = time from then until every event produced reached the subscriber; lag =
arrival − occurred_at, in seconds, of the events produced during the load.

| run | orders | events | produced/s | delivered/s | ratio | backlog at end | drain | lag p50 s | lag p95 s |
|---|---|---|---|---|---|---|---|---|---|
{table}""",
    )


if __name__ == "__main__":
    main()

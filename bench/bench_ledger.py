"""Stock ledger and order placement, each beside the pgbench transaction that writes its rows.

Four scenarios, through public entry points only (they are what a redesign must keep):

  hot_service     32 worker processes call `inventory.services.reservation_create` (1 unit, web
                  channel) on ONE SKU at one location until it is sold out.
  hot_http        the same through `POST /api/v1/reservations/` served by gunicorn on 127.0.0.1,
                  32 keep-alive clients (4 processes x 8 threads), an Idempotency-Key each.
  spread_service  32 workers over 1,000 SKUs x 10 locations, for a fixed time.
  orders_http     `POST /api/v1/orders/` for a fixed time (bench/bench_orders.py's data, bodies
                  and clients).

Every scenario starts with a short warm-up (connections, caches, gunicorn workers) that is not
counted. For a hot SKU the warm-up races on a second SKU at the same location and its rate
decides how many units the hot SKU gets: enough for about the scenario's duration, so the
measured phase ends by selling out (where oversell would show).

After each run: oversold positions (reserved > on hand, or on hand - reserved - unsellable -
safety stock < 0, among the scenario's SKUs) and `manage.py stock_reconcile` (mismatches). Both
must be 0.

The ceiling. On the same database, once before and once after the load (the ceiling is the
mean of the two, which bracket the load in time), `pgbench -n -c 32 -j 2 -T <s>` runs a script
that writes THE SAME ROWS one call wrote. They are not guessed: one more call is made alone (a
"probe") and every row whose xmin is newer than the probe's start is read back, in every table.
The script writes those rows again, with their columns and values, as ONE statement in
autocommit (data-modifying CTEs): the conditional UPDATE of each position (its movements'
deltas, refused when the stock is short, as the service's guard), then each INSERT (new keys
where a unique index needs one, timestamps as now() plus the probe's offset, foreign keys to
the rows inserted in the same statement). One round trip, and the position's lock held for one
statement and the commit: the least any implementation can do to write those rows. Positions
are drawn at random from a pool (the hot scenarios: the warm-up SKU's position; spread: its
10,000 positions; orders: 1,000 positions of SKUs no order asks for), topped up first through
the ledger, so that pgbench never runs out and the ledger still reconciles (checked once more at
the end). For orders, several probes (pickup and delivery, 1-3 lines) give one script each,
which pgbench mixes evenly. For the hot scenarios a "queued" variant (an advisory lock on the
position before its UPDATE) runs once more, for comparison only. The scripts are saved next to
the JSON.

Usage
  python bench/bench_ledger.py [--quick]          what bench/run.sh runs: this tree, one side,
                                                  section bench/results/ledger.md
  python bench/bench_ledger.py --out F.json --label before [--quick]
                                                  one side, figures to F.json (bench/compare.sh)
  python bench/bench_ledger.py --report before.json after.json [--section ledger]
                                                  the before/after markdown section
The database must be migrated and DATABASE_URL / REDIS_URL set (bench/run.sh, bench/compare.sh).
"""

import argparse
import contextlib
import graphlib
import http.client
import itertools
import json
import logging
import multiprocessing as mp
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from _common import RESULTS, ROOT, django_setup, machine, summary_ms, write_section

WORKERS = 32  # service worker processes, and HTTP clients (processes x threads)
HTTP_PROCESSES, HTTP_THREADS = 4, 8
STARTUP_SECONDS = 4  # for every worker to fork, set Django up and connect
WARM_SECONDS = 2
ORDER_PROBES = 8  # accepted placements whose rows become the orders pgbench scripts
# Units received on every pgbench position before pgbench runs (the ledger refuses more than
# 100,000 per line by default); also the most a hot SKU gets.
TOP_UP = 100_000
GUNICORN_WORKERS = int(os.environ.get("BENCH_WORKERS", 3))  # as bench/bench_orders.py
GUNICORN_THREADS = int(os.environ.get("BENCH_THREADS", 2))

POSITION_TABLE = "inventory_stockposition"
MOVEMENT_TABLE = "inventory_stockmovement"
# Written at most once a minute per key and process (API key last use): not part of a call.
IGNORED_TABLES = {"common_apikey"}
ADVISORY_NAMESPACE = 7071  # the queued pgbench variant's advisory locks (none of the app's)

GRANTED, REFUSED, ERROR = "granted", "refused", "error"


# ---- the race: warm-up, then the measured phase ----------------------------------------------

# Set by the parent when the measured phase starts; forked workers inherit it.
_GO = None


def _race(attempt, plan: dict, rng: random.Random) -> dict:
    """One client's loop. `attempt(sku, location)` returns GRANTED, REFUSED or ERROR."""
    while time.time() < plan["warm_at"]:
        time.sleep(0.005)
    while time.time() < plan["warm_until"]:
        attempt(*rng.choice(plan["warm_pairs"]))
    _GO.wait()
    deadline = time.time() + plan["limit_seconds"]
    granted = refused = errors = refusals_in_a_row = 0
    latencies = []
    first_attempt = last_grant = time.time()
    while time.time() < deadline:
        started = time.perf_counter()
        outcome = attempt(*rng.choice(plan["pairs"]))
        elapsed = time.perf_counter() - started
        if outcome == GRANTED:
            granted += 1
            latencies.append(elapsed)
            last_grant = time.time()
            refusals_in_a_row = 0
        elif outcome == REFUSED:
            refused += 1
            refusals_in_a_row += 1
            if plan["until_sold_out"] and refusals_in_a_row > 3:
                break
        else:
            errors += 1
    return {
        "granted": granted,
        "refused": refused,
        "errors": errors,
        "first_attempt": first_attempt,
        "last_grant": last_grant,
        "latencies": latencies,
    }


def _service_worker(args):
    label, worker, plan = args
    django_setup()
    from django.db import connection

    from inventory import services
    from inventory.exceptions import InsufficientStock

    connection.ensure_connection()
    counter = itertools.count()

    def attempt(sku_id, location_id):
        try:
            services.reservation_create(
                sku_id=sku_id,
                location_id=location_id,
                quantity=1,
                idempotency_key=f"ledger:{label}:{worker}:{next(counter)}",
                channel="web",
            )
            return GRANTED
        except InsufficientStock:
            return REFUSED
        except Exception as exc:  # counted and shown: a benchmark must not hide errors
            print(f"worker error: {type(exc).__name__}: {exc}"[:300], flush=True)
            return ERROR

    result = _race(attempt, plan, random.Random(worker))
    connection.close()
    return [result]


def _http_worker(args):
    port, api_key, label, worker, plan = args
    results = []

    def client(thread):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        counter = itertools.count()

        def attempt(sku, location):
            nonlocal connection
            body = json.dumps({"lines": [{"sku": sku, "location": location, "quantity": 1}]})
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Api-Key {api_key}",
                "Idempotency-Key": f"{label}-{worker}-{thread}-{next(counter)}",
            }
            try:
                connection.request("POST", "/api/v1/reservations/", body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                return ERROR
            if response.status == 201:
                return GRANTED
            if response.status == 409 and b'"insufficient_stock"' in payload:
                return REFUSED
            print(f"http {response.status}: {payload[:200]!r}", flush=True)
            return ERROR

        results.append(_race(attempt, plan, random.Random(worker * 100 + thread)))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(HTTP_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def run_race(worker_args, *, warm_pairs, pairs, seconds, until_sold_out, stock_hot):
    """Fork the workers, let them warm up, call `stock_hot(warm_at, warm_until)` (which returns
    when the measured phase may start), then measure. `worker_args(plan)` lists (function, args)
    per process."""
    global _GO
    from django.db import connections

    ctx = mp.get_context("fork")
    _GO = ctx.Event()
    connections.close_all()  # no connection may be shared with the forked workers
    warm_at = time.time() + STARTUP_SECONDS
    plan = {
        "warm_at": warm_at,
        "warm_until": warm_at + WARM_SECONDS,
        "warm_pairs": warm_pairs,
        "pairs": pairs,
        # A hot SKU stops when sold out; this cap only bounds a run that would not sell out.
        "limit_seconds": seconds * 3 if until_sold_out else seconds,
        "until_sold_out": until_sold_out,
    }
    jobs = worker_args(plan)
    with ctx.Pool(len(jobs)) as pool:
        pending = [pool.apply_async(function, (args,)) for function, args in jobs]
        stocked = stock_hot(plan["warm_at"], plan["warm_until"])
        _GO.set()
        results = [r for job in pending for r in job.get()]
    started = min(r["first_attempt"] for r in results)
    finished = max(r["last_grant"] for r in results)
    granted = sum(r["granted"] for r in results)
    latency = summary_ms([s for r in results for s in r["latencies"]] or [0.0])
    return {
        "ops_per_s": granted / max(finished - started, 1e-9),
        "seconds": finished - started,
        "granted": granted,
        "refused": sum(r["refused"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "stocked_units": stocked,
    }


def wait_until(moment: float) -> None:
    time.sleep(max(moment - time.time(), 0))


@contextlib.contextmanager
def gunicorn(log: Path):
    """bench/bench_orders.py's gunicorn on a free loopback port, its log (a warning per 409)
    in `log` rather than on the console: it inherits the stderr it is started with."""
    from bench_orders import free_port, start_gunicorn

    log.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    saved = os.dup(2)
    with open(log, "ab") as handle:
        os.dup2(handle.fileno(), 2)
        try:
            server = start_gunicorn(port, GUNICORN_WORKERS, GUNICORN_THREADS)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    try:
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def hot_stocker(location_id, warm_sku_id, hot_sku_id, seconds, label):
    """Stock the hot SKU with what the warm-up's last second sold, times `seconds`."""

    def stock_hot(warm_at, warm_until):
        from inventory import services
        from inventory.models import Reservation

        wait_until(warm_at + WARM_SECONDS / 2)
        before = Reservation.objects.filter(sku_id=warm_sku_id).count()
        wait_until(warm_until)
        after = Reservation.objects.filter(sku_id=warm_sku_id).count()
        units = min(max(int((after - before) / (WARM_SECONDS / 2) * seconds), 100), TOP_UP)
        services.stock_receive(
            location_id=location_id,
            lines=[(hot_sku_id, units)],
            idempotency_key=f"ledger:{label}:hot-stock",
        )
        return units

    return stock_hot


def no_stocking(warm_at, warm_until):
    wait_until(warm_until)
    return None


# ---- data ------------------------------------------------------------------------------------


def hot_data(prefix: str, label: str) -> tuple[int, int, int]:
    """A location with a warm-up SKU (TOP_UP units) and a hot SKU (stocked after the warm-up):
    (location id, warm-up SKU id, hot SKU id)."""
    from inventory import services
    from inventory.models import Sku
    from stores.models import Location

    location = Location.objects.create(
        code=f"{prefix}-LOC", name=f"{prefix} location", latitude=48.85, longitude=2.35
    )
    warm, hot = Sku.objects.bulk_create(
        [Sku(code=f"{prefix}-{kind}", name=f"{prefix} {kind}") for kind in ("WARM", "HOT")]
    )
    services.stock_receive(
        location_id=location.pk, lines=[(warm.pk, TOP_UP)], idempotency_key=f"ledger:{label}:warm"
    )
    return location.pk, warm.pk, hot.pk


def spread_data(sku_count: int, location_count: int, units: int):
    from inventory import services
    from inventory.models import Sku
    from stores.models import Location

    locations = Location.objects.bulk_create(
        [
            Location(code=f"LSPR{i:02d}", name=f"Spread {i}", latitude=45 + i / 10, longitude=2)
            for i in range(location_count)
        ]
    )
    skus = Sku.objects.bulk_create(
        [Sku(code=f"LSPR-{i:04d}", name=f"Spread {i}") for i in range(sku_count)]
    )
    for location in locations:
        services.stock_receive(
            location_id=location.pk,
            lines=[(sku.pk, units) for sku in skus],
            idempotency_key=f"ledger:spread:seed:{location.pk}",
        )
    return [(sku.pk, location.pk) for sku in skus for location in locations]


def api_key(scopes: list[str]) -> str:
    from common.models import ApiKey

    raw = ApiKey.generate_raw_key()
    key = ApiKey(name="bench-ledger", channel="web", scopes=scopes)
    key.set_key(raw)
    key.save()
    return raw


def codes(pairs):
    from inventory.models import Sku
    from stores.models import Location

    sku_codes = dict(Sku.objects.values_list("pk", "code"))
    location_codes = dict(Location.objects.values_list("pk", "code"))
    return [(sku_codes[s], location_codes[loc]) for s, loc in pairs]


def top_up(position_ids: list[int], label: str) -> None:
    """TOP_UP more units on these positions, through the ledger (so it still reconciles)."""
    from inventory import services
    from inventory.models import StockPosition

    by_location = defaultdict(list)
    for sku_id, location_id in StockPosition.objects.filter(pk__in=position_ids).values_list(
        "sku_id", "location_id"
    ):
        by_location[location_id].append((sku_id, TOP_UP))
    for location_id, lines in sorted(by_location.items()):
        services.stock_receive(
            location_id=location_id,
            lines=lines,
            idempotency_key=f"ledger:{label}:top-up:{location_id}",
        )


def position_ids(pairs) -> list[int]:
    from inventory.models import StockPosition

    wanted = set(pairs)
    return sorted(
        pk
        for pk, sku_id, location_id in StockPosition.objects.filter(
            sku_id__in={s for s, _ in pairs}
        ).values_list("pk", "sku_id", "location_id")
        if (sku_id, location_id) in wanted
    )


# ---- invariants ------------------------------------------------------------------------------


def oversold_positions(sku_ids) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {POSITION_TABLE} WHERE sku_id = ANY(%s) "  # noqa: S608
            "AND (reserved > on_hand OR on_hand - reserved - unsellable - safety_stock < 0)",
            [list(sku_ids)],
        )
        return cursor.fetchone()[0]


def reconcile_mismatches() -> int:
    """`manage.py stock_reconcile` of this tree: 0, or the number of mismatches it reports."""
    done = subprocess.run(
        [sys.executable, "manage.py", "stock_reconcile"], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode == 0:
        return 0
    found = re.search(r"(\d+) mismatches", done.stdout + done.stderr)
    if not found:
        raise RuntimeError(f"stock_reconcile failed: {done.stderr[-500:]}")
    return int(found.group(1))


# ---- CPU used by others (the machine may be shared) -----------------------------------------


class OthersCpu:
    """Share of the machine's CPU that processes other than this benchmark (its workers, gunicorn,
    pgbench: children of this process) and PostgreSQL used while it ran: how much a neighbour
    disturbed a measure."""

    def __enter__(self):
        self.started, self.ours = self._snapshot()
        self.began = time.time()
        return self

    def __exit__(self, *exc):
        busy, ours = self._snapshot()
        capacity = (time.time() - self.began) * (os.cpu_count() or 1)
        self.share = max(busy - self.started - (ours - self.ours), 0) / capacity

    @staticmethod
    def _snapshot() -> tuple[float, float]:
        from bench_orders import _TICKS, postmaster_pid, tree_cpu_seconds

        with open("/proc/stat") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / _TICKS  # all but idle and iowait
        global _POSTMASTER
        _POSTMASTER = _POSTMASTER or postmaster_pid()
        ours = tree_cpu_seconds(os.getpid()) + tree_cpu_seconds(_POSTMASTER)
        return busy, ours


_POSTMASTER = None


# ---- the rows one call writes ----------------------------------------------------------------


class Schema:
    """What the script generator needs to know of each table, read from the catalogue."""

    def __init__(self, cursor):
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT LIKE 'bench\\_%' "
            "ORDER BY 1"
        )
        self.tables = [row[0] for row in cursor.fetchall()]
        self.columns, self.pk, self.fks, self.uniques = {}, {}, {}, {}
        for table in self.tables:
            cursor.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '', "
                "a.attidentity <> '' OR d.adbin IS NOT NULL, "
                "CASE WHEN a.atttypid IN ('varchar'::regtype, 'bpchar'::regtype) "
                "AND a.atttypmod > 0 THEN a.atttypmod - 4 END "
                "FROM pg_attribute a LEFT JOIN pg_attrdef d "
                "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum",
                [table],
            )
            self.columns[table] = {
                name: {"type": kind, "generated": generated, "default": default, "length": size}
                for name, kind, generated, default, size in cursor.fetchall()
            }
            cursor.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = %s::regclass AND i.indisprimary",
                [table],
            )
            keys = [row[0] for row in cursor.fetchall()]
            self.pk[table] = keys[0] if len(keys) == 1 else None
            cursor.execute(
                "SELECT a.attname, c.confrelid::regclass::text FROM pg_constraint c "
                "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
                "WHERE c.contype = 'f' AND c.conrelid = %s::regclass "
                "AND array_length(c.conkey, 1) = 1",
                [table],
            )
            self.fks[table] = dict(cursor.fetchall())
            cursor.execute(
                "SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i "
                "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = %s::regclass AND i.indisunique AND NOT i.indisprimary "
                "GROUP BY i.indexrelid",
                [table],
            )
            self.uniques[table] = [row[0] for row in cursor.fetchall()]

    @property
    def outbox_table(self) -> str:
        """Where the outbox lives in this tree (it may move from `integrations` to `common`)."""
        return next(
            t for t in ("common_outboxevent", "integrations_outboxevent") if t in self.tables
        )


_SCHEMA = None  # read once per process: migrations do not run during a benchmark


def capture_call(call) -> dict:
    """Run `call()` alone and return the rows it left, per table: {"inserted": {table: [row]},
    "updated": {table: [row]}, "started": when}. A row is a dict of column -> text (or None)."""
    from django.db import connection
    from django.utils import timezone

    global _SCHEMA
    with connection.cursor() as cursor:
        schema = _SCHEMA = _SCHEMA or Schema(cursor)
        highest = {}
        for table in schema.tables:
            if schema.pk[table]:
                cursor.execute(f'SELECT max("{schema.pk[table]}") FROM "{table}"')  # noqa: S608
                highest[table] = cursor.fetchone()[0]
        cursor.execute("SELECT txid_current() % 4294967296")
        since = cursor.fetchone()[0]
    started = timezone.now()
    call()
    inserted, updated = {}, {}
    with connection.cursor() as cursor:
        for table in schema.tables:
            if table in IGNORED_TABLES:
                continue
            names = list(schema.columns[table])
            as_text = ", ".join(f'"{name}"::text' for name in names)
            cursor.execute(
                f'SELECT {as_text} FROM "{table}" WHERE xmin::text::bigint > %s',  # noqa: S608
                [since],
            )
            for values in cursor.fetchall():
                row = dict(zip(names, values, strict=True))
                key, top = schema.pk[table], highest.get(table)
                # An existing row (its key was taken before the call) was updated.
                existed = key is not None and 0 <= _number(row[key]) <= _number(top)
                (updated if existed else inserted).setdefault(table, []).append(row)
    for table, rows in inserted.items():  # in the order they were inserted
        rows.sort(key=lambda row, key=schema.pk[table]: _number(row.get(key)))
    return {"schema": schema, "inserted": inserted, "updated": updated, "started": started}


def _number(value) -> int:
    """An integer key as a number; anything else as -1 (below every key)."""
    text = "" if value is None else str(value)
    return int(text) if text.isdigit() else -1


def rows_summary(capture: dict) -> dict:
    counts = {f"UPDATE {t}": len(rows) for t, rows in sorted(capture["updated"].items())}
    counts.update({f"INSERT {t}": len(rows) for t, rows in sorted(capture["inserted"].items())})
    return counts


# ---- the pgbench script ----------------------------------------------------------------------


def _literal(value: str, kind: str) -> str:
    return "CAST('" + value.replace("'", "''") + f"' AS {kind})"


def _is_text(schema, table, column) -> bool:
    kind = schema.columns[table][column]["type"]
    return kind == "text" or kind.startswith(("character", "varchar"))


def _unique_text(value: str, length: int | None, row_index: int) -> str:
    """A value unique to this transaction (and row): the probe's text with its tail replaced by
    a number, so it stays about as long (a short column gets the number alone)."""
    digits = 11 if length is None or length >= 16 else length
    keep = value[: max(0, len(value) - digits)][: (length or 10**6) - digits]
    number = f"lpad((txid_current() * 10 + {row_index})::text, {digits}, '0')"
    return "'" + keep.replace("'", "''") + f"' || {number}"


def pgbench_script(capture: dict, pool_size: int, title: str, queued: bool = False) -> str:
    """One statement that writes the rows `capture` found (see the module docstring). `queued`:
    each position's UPDATE first waits for a transaction-level advisory lock on it, so that
    clients of one hot row queue there instead of convoying on the row lock."""
    schema = capture["schema"]
    inserted, updated = capture["inserted"], capture["updated"]
    positions = updated.get(POSITION_TABLE, [])
    # Other existing rows the call updated (none at e2f338f, API keys aside) are updated again,
    # by key, to the values the probe left.
    others = sorted(set(updated) - {POSITION_TABLE})
    if not positions:
        raise RuntimeError("the probe updated no stock position")
    if len(positions) > pool_size:
        raise RuntimeError(f"{len(positions)} positions per call, {pool_size} in the pool")

    # Rows referring to an updated position follow the position pgbench draws, and so do their
    # SKU and location (the movement's and reservation's denormalised columns).
    position_refs = {}  # position id -> CTE name
    for index, row in enumerate(sorted(positions, key=lambda r: int(r["id"])), start=1):
        position_refs[row["id"]] = f"pos{index}"
    position_fk_targets = {
        target: column for column, target in schema.fks[POSITION_TABLE].items()
    }  # e.g. inventory_sku -> sku_id
    position_rows = {row["id"]: row for row in positions}

    def key(table):
        return schema.pk[table] or "id"

    names = {}  # (table, primary key) -> CTE name of an inserted row
    for table, rows in inserted.items():
        for index, row in enumerate(rows, start=1):
            names[(table, row.get(key(table)))] = f"{table}_{index}"

    def render(table, row, row_index, new_row=True):
        """Column list and SELECT expressions of one inserted (or updated) row; the CTEs it
        reads."""
        columns, values, reads = [], [], set()
        fresh = set()  # columns pointing at a row this statement inserts: unique per statement
        followed = None  # the position this row belongs to, if any
        for column, value in row.items():
            target = schema.fks[table].get(column)
            if target == POSITION_TABLE and value in position_refs:
                followed = value
        for column, value in row.items():
            meta = schema.columns[table][column]
            if meta["generated"] or (
                column == schema.pk[table] and (meta["default"] or not new_row)
            ):
                continue
            target = schema.fks[table].get(column)
            expression = None
            if value is None:
                expression = f"CAST(NULL AS {meta['type']})"
            elif target and (target, value) in names:
                expression = f"{names[(target, value)]}.{key(target)}"
                reads.add(names[(target, value)])
                fresh.add(column)
            elif target == POSITION_TABLE and value in position_refs:
                expression = f"{position_refs[value]}.id"
                reads.add(position_refs[value])
            elif followed and target in position_fk_targets:
                position_column = position_fk_targets[target]
                if position_rows[followed][position_column] == value:
                    expression = f"{position_refs[followed]}.{position_column}"
                    reads.add(position_refs[followed])
            if expression is None and meta["type"].startswith("timestamp"):
                offset = (datetime.fromisoformat(value) - capture["started"]).total_seconds()
                expression = "now()" if abs(offset) < 1 else f"now() + interval '{offset:.3f} s'"
            if expression is None:
                expression = _literal(value, meta["type"])
            columns.append(column)
            values.append(expression)
        # Every unique index needs a new value, unless a row inserted here already makes it so.
        for index_columns in schema.uniques[table] if new_row else []:
            if any(row.get(c) is None for c in index_columns) or fresh & set(index_columns):
                continue  # a NULL never conflicts; a new row's id is new
            text = [c for c in index_columns if c in columns and _is_text(schema, table, c)]
            if not text:
                raise RuntimeError(f"no way to make {table} {index_columns} unique")
            column = text[-1]  # the most specific: (owner, key) varies the key
            values[columns.index(column)] = _unique_text(
                row[column], schema.columns[table][column]["length"], row_index
            )
        return columns, values, reads

    # Movements' deltas, summed per position: what the UPDATE adds.
    deltas = {pid: defaultdict(int) for pid in position_refs}
    for movement in inserted.get(MOVEMENT_TABLE, []):
        if movement["position_id"] in deltas:
            for column, value in movement.items():
                if column.endswith("_delta"):
                    deltas[movement["position_id"]][column.removesuffix("_delta")] += int(value)

    lines = [f"-- {title}"]
    ctes = []
    stratum = pool_size // len(position_refs)
    for index, (position_id, name) in enumerate(position_refs.items()):
        # Position n is drawn from the n-th slice of the pool (sorted by id): the positions of
        # one statement are distinct, in key order.
        lines.append(f"\\set k{index + 1} random({index * stratum + 1}, {(index + 1) * stratum})")
        change = deltas[position_id]
        sets = [f"{b} = p.{b} + {d}" for b, d in change.items() if d]
        if "updated_at" in schema.columns[POSITION_TABLE]:
            sets.append("updated_at = now()")
        need = change.get("reserved", 0) + change.get("unsellable", 0) - change.get("on_hand", 0)
        guard = (
            f" AND p.on_hand - p.reserved - p.unsellable - p.safety_stock >= {need}"
            if need > 0
            else ""
        )
        returning = ", ".join(
            [
                "p.id",
                *(f"p.{c}" for c in schema.fks[POSITION_TABLE] if c in position_rows[position_id]),
            ]
        )
        # Joining the previous position's CTE makes it run first: positions are locked in key
        # order, as the ledger locks them, so that two statements never wait on each other.
        after = f", pos{index}" if index else ""
        if queued:
            ctes.append(
                f"queue{index + 1} AS (SELECT pg_advisory_xact_lock({ADVISORY_NAMESPACE}, "
                f"CAST(position_id AS integer)) FROM bench_pool WHERE k = :k{index + 1})"
            )
            after += f", queue{index + 1}"
        ctes.append(
            f"{name} AS (UPDATE {POSITION_TABLE} p SET {', '.join(sets)} FROM bench_pool b{after} "
            f"WHERE b.k = :k{index + 1} AND p.id = b.position_id{guard} RETURNING {returning})"
        )
    order = graphlib.TopologicalSorter()
    rendered = {}
    for table, rows in inserted.items():
        for index, row in enumerate(rows, start=1):
            name = names[(table, row.get(key(table)))]
            rendered[name] = (table, *render(table, row, index))
            order.add(name, *(set(rendered[name][3]) - set(position_refs.values())))
    for name in order.static_order():
        table, columns, values, reads = rendered[name]
        sources = sorted(set(position_refs.values()) | reads)  # no position, no row
        ctes.append(
            f"{name} AS (INSERT INTO {table} ({', '.join(columns)})\n"
            f"  SELECT {', '.join(values)}\n  FROM {', '.join(sources)} RETURNING {key(table)})"
        )
    for table in others:
        pk = key(table)
        for index, row in enumerate(updated[table], start=1):
            columns, values, reads = render(table, row, index, new_row=False)
            sources = sorted(set(position_refs.values()) | reads)
            ctes.append(
                f"{table}_updated_{index} AS (UPDATE {table} SET ({', '.join(columns)}) =\n"
                f"  (SELECT {', '.join(values)} FROM {', '.join(sources)})\n"
                f"  WHERE {pk} = {_literal(row[pk], schema.columns[table][pk]['type'])} "
                f"RETURNING {pk})"
            )
    lines.append("WITH " + ",\n".join(ctes))
    lines.append(f"SELECT count(*) FROM {next(iter(position_refs.values()))};")
    return "\n".join(lines) + "\n"


def pgbench_pool(ids: list[int]) -> None:
    """The positions pgbench draws from, numbered 1..n in id order."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_pool")
        cursor.execute("CREATE TABLE bench_pool (k int PRIMARY KEY, position_id bigint NOT NULL)")
        cursor.execute(
            "INSERT INTO bench_pool SELECT row_number() OVER (ORDER BY id), id "
            "FROM unnest(CAST(%s AS bigint[])) AS id",
            [sorted(ids)],
        )
        cursor.execute("ANALYZE bench_pool")


def pgbench_tps(scripts: list[Path], seconds: int) -> float:
    """`pgbench -n -c 32 -j 2 -T seconds`, the scripts mixed evenly; transactions per second."""
    from django.db import connection

    settings = connection.settings_dict
    command = ["pgbench", "-n", "-c", str(WORKERS), "-j", "2", "-T", str(seconds)]
    for script in scripts:
        command += ["-f", f"{script}@1"]
    command += ["-h", settings["HOST"], "-p", str(settings["PORT"]), "-U", settings["USER"]]
    env = {**os.environ, "PGPASSWORD": settings.get("PASSWORD") or ""}
    done = subprocess.run([*command, settings["NAME"]], capture_output=True, text=True, env=env)
    if done.returncode != 0 or "aborted" in done.stdout + done.stderr:
        raise RuntimeError(f"pgbench failed:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
    return next(
        float(line.split("=")[1].split()[0])
        for line in done.stdout.splitlines()
        if line.startswith("tps")
    )


class Ceiling:
    """A scenario's pgbench ceiling. Probes first (calls made alone, their rows captured), then
    one script per probe, run once before and once after the scenario's load: the mean of the
    two is the ceiling (they bracket the load in time, on a machine whose load may change)."""

    def __init__(self, name: str, out_dir: Path, queued_comparison: bool = False):
        self.name, self.out_dir = name, out_dir
        self.queued_comparison = queued_comparison
        self.captures, self.scripts, self.runs, self.others_cpu = [], [], [], []
        self.queued_scripts, self.queued_tps = [], None

    def probe(self, call) -> None:
        self.captures.append(capture_call(call))

    def prepare(self, pool: list[int]) -> None:
        """Top up and number the positions pgbench draws from; write the scripts."""
        top_up(pool, self.name)
        pgbench_pool(pool)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for index, capture in enumerate(self.captures, start=1):
            title = f"{self.name}: the rows of probe {index} of {len(self.captures)}"
            path = self.out_dir / f"{self.name}_{index}.sql"
            path.write_text(pgbench_script(capture, len(pool), title))
            self.scripts.append(path)
            if self.queued_comparison:
                path = self.out_dir / f"{self.name}_{index}_queued.sql"
                path.write_text(pgbench_script(capture, len(pool), title + ", queued", True))
                self.queued_scripts.append(path)

    def run(self, seconds: int) -> None:
        with OthersCpu() as others:
            self.runs.append(pgbench_tps(self.scripts, seconds))
        self.others_cpu.append(others.share)

    def run_queued(self, seconds: int) -> None:
        if self.queued_scripts:
            self.queued_tps = pgbench_tps(self.queued_scripts, seconds)

    def figures(self) -> dict:
        summaries = [rows_summary(c) for c in self.captures]
        keys = sorted({k for s in summaries for k in s}, key=lambda k: (k[0] != "U", k))
        return {
            "pgbench_tps": sum(self.runs) / len(self.runs),
            "pgbench_runs": self.runs,
            "pgbench_queued_tps": self.queued_tps,
            "others_cpu_pgbench": self.others_cpu,
            "rows_per_call": {
                k: sum(s.get(k, 0) for s in summaries) / len(summaries) for k in keys
            },
            "probes": len(self.captures),
            "scripts": [str(p) for p in self.scripts],
            "outbox_table": self.captures[0]["schema"].outbox_table,
        }


def bracketed(ceiling: Ceiling, seconds: int, load) -> dict:
    """pgbench, the scenario's `load()` (which checks the invariants), pgbench again."""
    ceiling.run(seconds)
    with OthersCpu() as others:
        result = load()
    ceiling.run(seconds)
    ceiling.run_queued(seconds)
    return {**result, **ceiling.figures(), "others_cpu_load": others.share}


# ---- scenarios -------------------------------------------------------------------------------


def scenario_hot(seconds: int, out_dir: Path, http: bool) -> dict:
    """The hot SKU sells out; pgbench works on the warm-up SKU's position (same location, one
    hot row as well), which the measured phase does not touch."""
    from django.test import Client

    from inventory import services

    name = "hot_http" if http else "hot_service"
    location_id, warm_sku, hot_sku = hot_data("LHH" if http else "LHS", name)
    warm_pairs, pairs = [(warm_sku, location_id)], [(hot_sku, location_id)]
    ceiling = Ceiling(name, out_dir, queued_comparison=True)
    if http:
        key = api_key(["stock:read", "stock:write"])
        client = Client(HTTP_AUTHORIZATION=f"Api-Key {key}")
        ((warm_code, location_code),) = codes(warm_pairs)
        body = json.dumps({"lines": [{"sku": warm_code, "location": location_code, "quantity": 1}]})

        def call(n):
            response = client.post(
                "/api/v1/reservations/",
                data=body,
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY=f"{name}-probe-{n}",
            )
            assert response.status_code == 201, response.content[:300]

        call(0)  # the first request of a process (API key's last use, caches): not probed
        ceiling.probe(lambda: call(1))
    else:
        ceiling.probe(
            lambda: services.reservation_create(
                sku_id=warm_sku,
                location_id=location_id,
                quantity=1,
                idempotency_key=f"ledger:{name}:probe",
                channel="web",
            )
        )
    ceiling.prepare(position_ids(warm_pairs))
    stock_hot = hot_stocker(location_id, warm_sku, hot_sku, seconds, name)

    def load():
        if http:
            with gunicorn(out_dir / "gunicorn.log") as port:
                result = run_race(
                    lambda plan: [
                        (_http_worker, (port, key, name, w, plan)) for w in range(HTTP_PROCESSES)
                    ],
                    warm_pairs=codes(warm_pairs),  # the API takes codes
                    pairs=codes(pairs),
                    seconds=seconds,
                    until_sold_out=True,
                    stock_hot=stock_hot,
                )
        else:
            result = run_race(
                lambda plan: [(_service_worker, (name, w, plan)) for w in range(WORKERS)],
                warm_pairs=warm_pairs,
                pairs=pairs,
                seconds=seconds,
                until_sold_out=True,
                stock_hot=stock_hot,
            )
        result["sold_out"] = result["granted"] == result["stocked_units"]
        result["oversold"] = oversold_positions([warm_sku, hot_sku])
        result["mismatches"] = reconcile_mismatches()
        return result

    return bracketed(ceiling, seconds, load)


def scenario_spread(seconds: int, out_dir: Path) -> dict:
    from inventory import services

    pairs = spread_data(1000, 10, 1000)
    ceiling = Ceiling("spread_service", out_dir)
    sku_id, location_id = pairs[len(pairs) // 2]
    ceiling.probe(
        lambda: services.reservation_create(
            sku_id=sku_id,
            location_id=location_id,
            quantity=1,
            idempotency_key="ledger:spread_service:probe",
            channel="web",
        )
    )
    ceiling.prepare(position_ids(pairs))

    def load():
        result = run_race(
            lambda plan: [(_service_worker, ("spread_service", w, plan)) for w in range(WORKERS)],
            warm_pairs=pairs,
            pairs=pairs,
            seconds=seconds,
            until_sold_out=False,
            stock_hot=no_stocking,
        )
        result["oversold"] = oversold_positions({s for s, _ in pairs})
        result["mismatches"] = reconcile_mismatches()
        return result

    return bracketed(ceiling, seconds, load)


def scenario_orders(seconds: int, out_dir: Path) -> dict:
    """bench/bench_orders.py's load (same data, bodies and clients), after a warm-up. pgbench
    draws from 20 more SKUs stocked at every location, which no order asks for: topping up the
    orders' own positions would end the race for scarce units that the load includes."""
    import bench_orders
    from django.db import connections
    from django.test import Client

    from inventory import services
    from inventory.models import Sku
    from stores.models import Location

    data = bench_orders.load_data(random.Random(4))
    sku_ids = list(Sku.objects.filter(code__in=data["skus"]).values_list("pk", flat=True))
    pool_skus = Sku.objects.bulk_create(
        [Sku(code=f"LORD-POOL-{i:02d}", name=f"pgbench pool {i}") for i in range(20)]
    )
    location_ids = list(  # bench_orders' locations: B000 … B049
        Location.objects.filter(code__regex=r"^B[0-9]{3}$").values_list("pk", flat=True)
    )
    for location_id in location_ids:
        services.stock_receive(
            location_id=location_id,
            lines=[(sku.pk, 1) for sku in pool_skus],
            idempotency_key=f"ledger:orders_http:pool:{location_id}",
        )
    pool = [(sku.pk, location_id) for sku in pool_skus for location_id in location_ids]

    ceiling = Ceiling("orders_http", out_dir)
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {data['api_key']}")
    probe_rng = random.Random(5)

    def place(n):
        response = client.post(
            "/api/v1/orders/",
            data=json.dumps(bench_orders.order_body(probe_rng, data)),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=f"orders-probe-{n}",
        )
        return response.status_code

    place(0)  # the first request of a process: not probed
    for n in range(1, 200):  # until ORDER_PROBES placements were accepted
        if len(ceiling.captures) == ORDER_PROBES:
            break
        status = []
        capture = capture_call(lambda n=n, status=status: status.append(place(n)))
        if status == [201]:
            ceiling.captures.append(capture)
    if not ceiling.captures:
        raise RuntimeError("no probe placement was accepted")
    ceiling.prepare(position_ids(pool))

    def load():
        connections.close_all()
        ctx = mp.get_context("fork")
        with (
            gunicorn(out_dir / "gunicorn.log") as port,
            ctx.Pool(bench_orders.CLIENT_PROCESSES) as clients,
        ):
            for phase_seconds, measured in ((WARM_SECONDS, False), (seconds, True)):
                start_at = time.time() + (0.5 if measured else STARTUP_SECONDS)
                batches = clients.map(
                    bench_orders.client_process,
                    [
                        (port, data, start_at + phase_seconds, start_at, w + 100 * measured)
                        for w in range(bench_orders.CLIENT_PROCESSES)
                    ],
                )
        results = [r for batch, _ in batches for r in batch]
        accepted = [ref for kind, _, ref in results if kind == "accepted"]
        refused = sum(kind == "out_of_stock" for kind, _, _ in results)
        latency = summary_ms([e for kind, e, _ in results if kind == "accepted"] or [0.0])
        return {
            "ops_per_s": len(accepted) / seconds,
            "requests_per_s": len(results) / seconds,
            "seconds": seconds,
            "granted": len(accepted),
            "refused": refused,
            "errors": len(results) - len(accepted) - refused,
            "p50_ms": latency["p50"],
            "p99_ms": latency["p99"],
            "oversold": oversold_positions(sku_ids),
            "mismatches": reconcile_mismatches(),
            "orders_with_wrong_reservations": bench_orders.verify(accepted)[
                "orders_with_wrong_reservations"
            ],
        }

    return bracketed(ceiling, seconds, load)


SCENARIOS = {
    "hot_service": lambda s, out: scenario_hot(s, out, http=False),
    "hot_http": lambda s, out: scenario_hot(s, out, http=True),
    "spread_service": scenario_spread,
    "orders_http": scenario_orders,
}


def revision() -> dict:
    def git(*args):
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True
        ).stdout.strip()

    changed = git("status", "--porcelain", "--", ".", ":!bench")
    return {
        "commit": git("rev-parse", "HEAD"),
        "subject": git("log", "-1", "--format=%s"),
        "uncommitted_files": len(changed.splitlines()) if changed else 0,
        "tree": str(ROOT),
    }


def measure(args) -> dict:
    django_setup()
    import inventory

    if not Path(inventory.__file__).resolve().is_relative_to(ROOT):
        sys.exit(f"inventory imported from {inventory.__file__}, not from {ROOT}")
    logging.getLogger("django.request").setLevel(logging.ERROR)  # the probes' refused orders
    seconds = 3 if args.quick else 15
    out_dir = Path(args.out).with_suffix("") if args.out else RESULTS / "ledger_data" / "current"
    side = {
        "label": args.label,
        "revision": revision(),
        "machine": machine(),
        "seconds": seconds,
        "quick": args.quick,
        "load_before": os.getloadavg()[0],
        "scenarios": {},
    }
    for name in args.scenarios:
        print(f"-- {args.label}: {name}", flush=True)
        figures = SCENARIOS[name](seconds, out_dir)
        figures["ratio"] = figures["ops_per_s"] / figures["pgbench_tps"]
        side["scenarios"][name] = figures
        print(
            f"   {figures['ops_per_s']:.0f}/s, p50 {figures['p50_ms']:.1f} ms, "
            f"p99 {figures['p99_ms']:.1f} ms, pgbench {figures['pgbench_tps']:.0f} tps "
            f"({100 * figures['ratio']:.0f} %), oversold {figures['oversold']}, "
            f"mismatches {figures['mismatches']}, errors {figures['errors']}",
            flush=True,
        )
    # pgbench's rows must leave the ledger consistent too (a broken script would show here).
    side["final_mismatches"] = reconcile_mismatches()
    side["load_after"] = os.getloadavg()[0]
    return side


# ---- report ----------------------------------------------------------------------------------

DESCRIPTIONS = {
    "hot_service": "one hot SKU, service, until sold out",
    "hot_http": "one hot SKU, HTTP, until sold out",
    "spread_service": "1,000 SKUs × 10 locations, service",
    "orders_http": "order placement, HTTP",
}


def _revision_text(side: dict) -> str:
    rev = side["revision"]
    text = f"`{rev['commit'][:10]}` ({rev['subject']})"
    if rev["uncommitted_files"]:
        text += f" + {rev['uncommitted_files']} uncommitted file(s) outside bench/"
    return f"{text}, tree `{rev['tree']}`"


def _percent(share: float) -> str:
    return f"{100 * share:.0f} %"


REDESIGN_HEADING = (
    "Ledger and order placement: before and after the one-writer redesign (issue #14)"
)


def _title(sides: list[dict]) -> str:
    """The section's `## ` heading (bench/assemble.py replaces the docs' section of the same
    heading): the redesign's before/after, a revision against itself, or one tree."""
    if len(sides) == 1:
        return "Ledger and order placement against the pgbench ceiling"
    revisions = [s["revision"] for s in sides]
    if revisions[0]["commit"] == revisions[1]["commit"] and not any(
        r["uncommitted_files"] for r in revisions
    ):
        return f"Ledger and order placement: {revisions[0]['commit'][:7]} against itself (check)"
    return REDESIGN_HEADING


def report(sides: list[dict], section: str, command: str, title: str | None = None) -> None:
    before, after = sides if len(sides) == 2 else (None, sides[0])
    names = [n for n in SCENARIOS if n in after["scenarios"]]

    def ops(side, name):
        return f"{side['scenarios'][name]['ops_per_s']:.0f}" if side else "–"

    def ratio(side, name):
        if not side:
            return "–"
        figures = side["scenarios"][name]
        return f"{100 * figures['ratio']:.0f} % of {figures['pgbench_tps']:.0f}"

    def both(key, name):
        return " / ".join(str(s["scenarios"][name][key]) for s in sides)

    rows, details = [], []
    for name in names:
        gain = (
            f"{after['scenarios'][name]['ops_per_s'] / before['scenarios'][name]['ops_per_s']:.2f}×"
            if before
            else "–"
        )
        rows.append(
            f"| {DESCRIPTIONS[name]} (`{name}`) | {ops(before, name)} | {ratio(before, name)} "
            f"| {ops(after, name)} | {ratio(after, name)} | {gain} | {both('oversold', name)} "
            f"| {both('mismatches', name)} |"
        )
        for side in sides:
            f = side["scenarios"][name]
            written = ", ".join(
                f"{k.split()[0]} {k.split()[1]} ×{v:g}" for k, v in f["rows_per_call"].items()
            )
            stocked = f", {f['stocked_units']} units stocked" if f.get("stocked_units") else ""
            queued = f" (queued: {f['pgbench_queued_tps']:.0f})" if f["pgbench_queued_tps"] else ""
            details.append(
                f"| `{name}` | {side['label']} | {f['p50_ms']:.1f} / {f['p99_ms']:.1f} "
                f"| {f['granted']} / {f['refused']} / {f['errors']}{stocked} "
                f"| {' / '.join(f'{run:.0f}' for run in f['pgbench_runs'])}{queued} "
                f"| {_percent(f['others_cpu_pgbench'][0])} / {_percent(f['others_cpu_load'])} / "
                f"{_percent(f['others_cpu_pgbench'][1])} | {f['probes']} | {written} |"
            )
    first = sides[0]
    sides_text = "\n".join(f"- **{s['label']}**: {_revision_text(s)}" for s in sides)
    heading = "Before / after" if before else "Current tree"
    markdown = f"""## {title or _title(sides)}

Command: `{command}`. {first["seconds"]} s per scenario and per pgbench run
({"quick smoke run" if first["quick"] else "full run"}), {WORKERS} concurrent callers, one
throwaway PostgreSQL and Redis for the whole run; each side gets a new database migrated by its
own `manage.py`, and runs the same `bench/bench_ledger.py`.

{sides_text}

**Machine:** {first["machine"]}. It may be shared: "others' CPU" below is the share of its CPU
that processes other than the benchmark's (and PostgreSQL) used meanwhile. Compare the ratios.

### {heading}

ops/s: reservations granted per second (orders accepted per second for `orders_http`; p50 / p99
below are the latencies of those calls, end to end from the client). Ratio:
that rate over the pgbench transactions per second of the same rows, in the same run (tx/s after
"of"). Oversold positions and `stock_reconcile` mismatches: {" / ".join(s["label"] for s in sides)}.

| scenario | before ops/s | before ratio to pgbench | after ops/s | after ratio | after/before | oversold | mismatches |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

| scenario | side | p50 / p99 ms | granted / refused / errors | pgbench tx/s before / after the load | others' CPU: pgbench / load / pgbench | probes | rows written per call (pgbench writes the same) |
|---|---|---|---|---|---|---|---|
{chr(10).join(details)}

### The pgbench scripts

`pgbench -n -c {WORKERS} -j 2 -T {first["seconds"]} -f <script>@1 …` on the same database, once
before and once after each scenario's load (the ceiling is the mean of the two: they bracket the
load in time). A script is generated from a probe: one more call made alone (for
`orders_http`, {ORDER_PROBES} accepted placements, one script each, mixed evenly), whose rows are
read back from every table by xmin. It writes those rows again in ONE autocommit statement:
`WITH pos1 AS (UPDATE inventory_stockposition … SET reserved = reserved + n … WHERE <enough
stock> RETURNING …), <table>_1 AS (INSERT INTO <table> (<the probe row's columns>) SELECT <its
values> FROM pos1, … RETURNING id), … SELECT count(*) FROM pos1`. Values are the probe's, except
new unique keys (idempotency keys, references: the probe's text with a number unique to the
transaction), `now()` (plus the probe's offset) for timestamps, and foreign keys to the rows
inserted by the same statement. For the hot scenarios a "queued" variant also runs once, after
the second run (not in the ratio): each UPDATE first takes a transaction-level advisory lock on
its position, so that 32 clients of one row wait in one queue rather than convoy on the row
lock (a ledger that queues so, as e2f338f's does, can beat the plain script on a hot row).

Positions are drawn at random from a pool, several per statement in key order, each topped up
with {TOP_UP:,} units through the ledger first: the warm-up SKU's position for the hot
scenarios (one hot row too, at the same location), the scenario's 10,000 positions for
`spread_service`, 1,000 positions of 20 SKUs that no order asks for (at the orders' 50
locations) for `orders_http`. The ledger still reconciles after pgbench:
{" / ".join(str(s["final_mismatches"]) for s in sides)} mismatches at the end of each side. The
outbox table is detected in each tree
({", ".join(sorted({f["outbox_table"] for s in sides for f in s["scenarios"].values()}))}
here). The scripts are kept in `bench/results/{section}_data/`.
"""
    write_section(section, markdown)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs, for a smoke check")
    parser.add_argument("--out", help="write this side's figures to this JSON file")
    parser.add_argument("--label", default="current tree", help="this side's name")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--report", nargs="+", metavar="JSON", help="write the section from these")
    parser.add_argument("--section", default="ledger", help="bench/results/<section>.md")
    parser.add_argument("--command", default="python bench/bench_ledger.py")
    parser.add_argument("--title", help="the section's heading (default: from the sides)")
    args = parser.parse_args()
    if args.report:
        sides = [json.loads(Path(p).read_text()) for p in args.report]
        report(sides, args.section, args.command, args.title)
        return
    side = measure(args)
    if args.out:
        Path(args.out).write_text(json.dumps(side, indent=2, default=str))
    else:  # run by bench/run.sh: this tree alone
        (RESULTS / "ledger_data").mkdir(parents=True, exist_ok=True)
        (RESULTS / "ledger_data" / "current.json").write_text(json.dumps(side, indent=2))
        report([side], args.section, args.command + (" --quick" if args.quick else ""))
    failures = [
        name
        for name, f in side["scenarios"].items()
        if f["oversold"] or f["mismatches"] or f.get("orders_with_wrong_reservations")
    ] + (["pgbench's rows (final stock_reconcile)"] if side["final_mismatches"] else [])
    if failures:
        sys.exit(f"invariants violated in {failures}")


if __name__ == "__main__":
    started = datetime.now(UTC)
    main()
    print(f"bench_ledger: done in {(datetime.now(UTC) - started).total_seconds():.0f} s")

"""KPI dashboard benchmark (issue #16): the analytics KPI tables over a year of a 200-location
chain — 1,000,000 orders by default — on PostgreSQL.

    DATABASE_URL=postgres://… python bench/bench_analytics.py [--orders 1000000] [--locations 200]
        [--days 365] [--customers 200000] [--repeat 20] [--seed 16] [--quick]

Expects a fresh, migrated database (bench/run.sh provides a throwaway one). It:
  1. loads a deterministic (seeded) data set: locations, SKUs and campaigns through the ORM, every
     big table by COPY into pre-allocated ids, with column lists read from the models' `_meta`
     (every column the script does not set gets the model's default, so the loader follows the
     schema, or stops and names the column it cannot fill); foreign keys proved after the load
     (see Loader); then VACUUM ANALYZE;
  2. times every KPI of analytics.kpis.TABLES, in-process, as the dashboard calls it (one
     warm-up pass, then --repeat passes of the whole dashboard, each KPI timed on its own with
     time.perf_counter and the pass as a whole), for three scopes: the dashboard's default (last
     28 days by week, every location: head office), the same period for one store (a store
     manager: location_ids=(her store,), the busiest click & collect store), and a quarter (last
     91 days by week, every location);
  3. prints EXPLAIN (ANALYZE, BUFFERS) of the slowest queries of every KPI whose p95 is over the
     target (stdout only), so that indexes or rollups can be chosen;
and writes a Markdown section to bench/results/analytics.md (bench/assemble.py folds it into
docs/benchmarks.md).

What is loaded (default sizes; --quick: 20,000 orders, 20 locations, 10,000 customers):
2 warehouses and 198 stores (90 % click & collect, 15 % ship-from-store, a daily order capacity
for every store that serves online orders), 2,000 SKUs, 200,000 customers (60 % with a loyalty
account); orders over the last 365 days, ids in the order they were placed, 40 % click & collect
(ready_by / ready_at / closed_at; collected, expired or cancelled as the times fall), the rest
shipped, ~1.5 lines each; one allocation per order (a few split, re-routed ones get a second),
allocation lines, a routing decision per order plus the re-routes, one journal event per order
(its last transition) and ~2 % line_rejected events, ~5 % of sold orders returned, tenders for
every order (card mostly; till at pickup, gift card, store credit, loyalty points), till
receipts (0.3 per order: sales and returns, half identified) with their POS events, points lots
for the sold orders and identified receipts of members, points spends, 6 campaigns with ~100,000
codes and their redemptions online and at tills, gift cards and store credit wallets with their
ledger entries, LocationDayLoad per capped location and day, StockDay per location and day and
CatalogueDay per day. Not loaded (no KPI reads them): return lines, transfers, reservations and
the stock ledger, points movements, holds; points lots keep their full `remaining`.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import random
import subprocess
import time
import uuid
import zoneinfo
from array import array
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from datetime import time as clock

from _common import ROOT, django_setup, percentile, write_section

django_setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import JSONField  # noqa: E402
from django.utils import timezone  # noqa: E402

from analytics.admin import DASHBOARD_TABLES  # noqa: E402
from analytics.kpis import TABLES  # noqa: E402
from analytics.models import CatalogueDay, StockDay  # noqa: E402
from analytics.periods import period_parse  # noqa: E402
from customers.identifiers import luhn_check_digit  # noqa: E402
from customers.models import Customer  # noqa: E402
from integrations.models import (  # noqa: E402
    PosEvent,
    PosEventStatus,
    PosEventType,
    PosIntegration,
    PosTill,
    StoreReceipt,
)
from inventory.models import Sku  # noqa: E402
from loyalty.models import (  # noqa: E402
    Campaign,
    Coupon,
    CouponRedemption,
    CouponStatus,
    DiscountType,
    IssueChannel,
    LotKind,
    LoyaltyAccount,
    PointsLot,
    PointsOperation,
    PointsSpend,
    SourceType,
    SpendPurpose,
    SpendStatus,
    TargetKind,
)
from orders.models import (  # noqa: E402
    Allocation,
    AllocationKind,
    AllocationLine,
    AllocationStatus,
    FulfilmentType,
    LineStatus,
    LocationDayLoad,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    Return,
    RoutingDecision,
)
from payments.models import (  # noqa: E402
    EntryKind,
    GiftCard,
    GiftCardEntry,
    GiftCardSource,
    StoreCreditWallet,
    Tender,
    TenderKind,
    TenderStatus,
    WalletEntry,
)
from stores.models import Location, LocationKind  # noqa: E402

TARGET_P95_MS = 500.0
LOAD_TIME = datetime.now(UTC)  # what auto_now columns get
ZONE = zoneinfo.ZoneInfo(settings.REPORTS_TIME_ZONE)
HOUR = 3600.0
DAY = 86400.0
NAN = float("nan")
CURRENCY = "EUR"

# Shares and shapes of the data set (one place to read them).
PICKUP_SHARE = 0.40
CHANNELS_PICKUP = [("web", 55), ("app", 35), ("call_centre", 5), ("store", 5)]
CHANNELS_DELIVERY = [
    ("web", 50),
    ("app", 25),
    ("marketplace", 20),
    ("call_centre", 3),
    ("store", 2),
]
LINES_PER_ORDER = [(1, 60), (2, 30), (3, 8), (4, 2)]  # mean 1.52
ORDER_HOURS = [1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 4, 5, 5, 6, 5, 5, 5, 5, 6, 7, 8, 8, 6, 4, 2]
WEEKDAYS = [1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.0]  # Monday first
SPLIT_SHARE = 0.08  # of multi-line orders
REJECTED_SHARE = 0.02  # orders with a line_rejected event (then re-routed)
TRANSFER_SHORT_SHARE = 0.01  # of transfer allocations: routed again, no new location
RETURN_SHARE = 0.05  # of sold orders
RECEIPTS_PER_ORDER = 0.30
CAMPAIGNS = 6
COUPONS_PER_ORDER = 0.10
REDEEMED_SHARE = 0.12
MEMBER_SHARE = 0.60
WALLET_SHARE = 0.05
RULES = json.dumps(["distance", "protect_last_units", "priority", "stock_depth"])

STATUS = list(OrderStatus.values)
S = {value: index for index, value in enumerate(STATUS)}
SOLD = {S["collected"], S["shipped"], S["delivered"]}
UNSOLD = {S["cancelled"], S["expired"]}
CLOSED = {S["collected"], S["delivered"], S["cancelled"], S["expired"]}
KINDS = [AllocationKind.PICKUP_LOCAL, AllocationKind.TRANSFER, AllocationKind.SHIP]
PICKUP_LOCAL, TRANSFER, SHIP = 0, 1, 2
CHANNEL_PREFIX = {"web": "W", "app": "A", "marketplace": "M", "call_centre": "C", "store": "S"}
MIX_CARD, MIX_TILL, MIX_GIFT, MIX_CREDIT, MIX_POINTS = range(5)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--locations", type=int, default=200, help="2 warehouses, the rest stores")
    parser.add_argument("--days", type=int, default=365, help="of history, ending today")
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--skus", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=20, help="dashboard passes per scope")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (bench/run.sh --quick): 20,000 orders, 20 locations, 10,000 customers",
    )
    args = parser.parse_args()
    if args.quick:
        args.orders, args.locations, args.customers, args.repeat = 20_000, 20, 10_000, 5
    if args.locations < 3:
        parser.error("--locations: at least 3 (2 warehouses and a store)")
    return args


# ---- COPY through the models' _meta -------------------------------------------------------------


def _default(field):
    """What COPY writes in a column the loader does not set: the model's default."""
    label = f"{field.model._meta.label}.{field.name}"
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return LOAD_TIME
    if field.has_default() and callable(field.default) and field.unique:
        raise SystemExit(f"{label}: unique with a default of {field.default}: set it per row")
    if not field.has_default() and field.null:
        return None
    value = field.get_default()  # "" for text columns without a default
    if value is None and not field.null:
        raise SystemExit(f"{label} is NOT NULL without a default: the loader must set it")
    return json.dumps(value) if isinstance(field, JSONField) else value


class Rows:
    """One model's COPY: `fields` (attnames) set per row, in that order; every other concrete
    column gets its default, the primary key (when not set) the database's identity."""

    def __init__(self, model, fields: list[str]):
        meta = model._meta
        by_attname = {f.attname: f for f in meta.concrete_fields}
        unknown = [name for name in fields if name not in by_attname]
        if unknown:
            raise SystemExit(f"{meta.label} has no column {unknown}")
        rest = [
            f
            for f in meta.concrete_fields
            if f.attname not in fields and not (f.primary_key and f.attname == "id")
        ]
        self.model = model
        self.table = meta.db_table
        self.columns = [by_attname[name].column for name in fields] + [f.column for f in rest]
        self.tail = tuple(_default(f) for f in rest)


class Loader:
    """COPY each table in its own transaction, timed. As a superuser (the throwaway cluster of
    bench/run.sh) the per-row foreign key triggers are skipped during COPY — half the load
    time — and every foreign key is proved afterwards, one anti-join each (verify_foreign_keys);
    otherwise they are checked at each table's commit."""

    def __init__(self):
        self.timings: dict[str, tuple[int, float]] = {}
        self.models: list = []
        self.cursor = connection.cursor()
        self.pg = self.cursor.connection  # psycopg 3
        with self.pg.cursor() as cur:
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            self.unchecked = bool(cur.fetchone()[0])

    def reserve(self, model, count: int) -> int:
        """The first of `count` ids of `model` nobody else will get (its sequence moved on)."""
        if count == 0:
            return 0
        with self.pg.cursor() as cur:
            cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", (model._meta.db_table,))
            sequence = cur.fetchone()[0]
            cur.execute("SELECT setval(%s, nextval(%s) + %s)", (sequence, sequence, count - 1))
            return cur.fetchone()[0] - count + 1

    def copy(self, model, fields: list[str], rows) -> int:
        spec = Rows(model, fields)
        sql = f"COPY {spec.table} ({', '.join(spec.columns)}) FROM STDIN"
        tail, count = spec.tail, 0
        started = time.perf_counter()
        with self.pg.transaction(), self.pg.cursor() as cur:
            if self.unchecked:
                cur.execute("SET LOCAL session_replication_role = replica")
            with cur.copy(sql) as copy:
                write = copy.write_row
                for row in rows:
                    write(row + tail)
                    count += 1
        elapsed = time.perf_counter() - started
        self.models.append(model)
        self.timings[spec.table] = (count, elapsed)
        print(f"  {spec.table}: {count:,} rows in {elapsed:.1f} s", flush=True)
        return count

    def orm(self, label: str, rows: int, started: float) -> None:
        self.timings[label] = (rows, time.perf_counter() - started)

    def verify_foreign_keys(self) -> None:
        """Every foreign key of every table COPY filled points at a row: stops otherwise."""
        if not self.unchecked:
            return
        started, checked = time.perf_counter(), 0
        quote = connection.ops.quote_name
        with self.pg.cursor() as cur:
            for model in dict.fromkeys(self.models):
                for field in model._meta.concrete_fields:
                    if not (field.many_to_one or field.one_to_one):
                        continue
                    target = field.target_field
                    column = quote(field.column)
                    cur.execute(
                        f"SELECT count(*) FROM {quote(model._meta.db_table)} c "
                        f"WHERE c.{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
                        f"{quote(target.model._meta.db_table)} p "
                        f"WHERE p.{quote(target.column)} = c.{column})"
                    )
                    dangling = cur.fetchone()[0]
                    if dangling:
                        raise SystemExit(f"{model._meta.label}.{field.name}: {dangling} dangling")
                    checked += 1
        self.orm(f"foreign keys proved ({checked} anti-joins)", checked, started)


def at(ts: float) -> datetime | None:
    return None if ts != ts else datetime.fromtimestamp(ts, UTC)


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def pick(rng: random.Random, cumulative: list[float]) -> int:
    """Index drawn with the weights whose running sums these are."""
    return bisect.bisect_right(cumulative, rng.random() * cumulative[-1])


def running(weights) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def base31(number: int, width: int = 9) -> str:
    alphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 31)
        chars.append(alphabet[digit])
    return "".join(reversed(chars))


# ---- reference data (ORM) -----------------------------------------------------------------------


class World:
    """Locations, SKUs and the time frame, with the weights the plan draws from."""

    def __init__(self, args, rng: random.Random):
        self.args = args
        self.now = timezone.now()
        self.now_ts = self.now.timestamp()
        self.today = timezone.localdate(self.now, timezone=ZONE)
        self.days = [self.today - timedelta(days=n) for n in range(args.days - 1, -1, -1)]
        self.day_start = [
            datetime.combine(d, clock.min, tzinfo=ZONE).timestamp() for d in self.days
        ]
        self.start_ts = self.day_start[0]
        self.day_weights = running(WEEKDAYS[d.weekday()] for d in self.days)
        self.hour_weights = running(ORDER_HOURS)

        stores = args.locations - 2
        locations = [
            Location(code=f"WH-{n}", name=f"Warehouse {n}", kind=LocationKind.WAREHOUSE,
                     latitude=45 + n * 3, longitude=2.5, ships_from_location=True,
                     routing_priority=10, receives_transfers=True)
            for n in (1, 2)
        ] + [
            Location(code=f"S{n:03d}", name=f"Store {n}", kind=LocationKind.STORE,
                     latitude=43 + (n % 50) / 10, longitude=-1 + (n % 70) / 10,
                     allows_pickup=rng.random() < 0.9 or n == 1,
                     ships_from_location=rng.random() < 0.15 or n == 2)
            for n in range(1, stores + 1)
        ]  # fmt: skip
        self.locations = Location.objects.bulk_create(locations)
        self.loc_id = [loc.pk for loc in self.locations]
        self.warehouses = [0, 1]
        self.stores = list(range(2, len(self.locations)))
        # store traffic: a few flagships, a long tail
        self.weight = [0.0, 0.0] + [1 / (rank + 4) ** 0.8 for rank in range(stores)]
        self.pickup_stores = [i for i in self.stores if self.locations[i].allows_pickup]
        self.ship_stores = [i for i in self.stores if self.locations[i].ships_from_location]
        self.pickup_set = set(self.pickup_stores)
        # stores serving online orders (pickup or ship-from-store) have a daily capacity
        self.capped = {i for i in self.stores if i in self.pickup_set or i in self.ship_stores}
        self.pickup_cw = running(self.weight[i] for i in self.pickup_stores)
        self.ship_cw = running(self.weight[i] for i in self.ship_stores)
        self.store_cw = running(self.weight[i] for i in self.stores)

        categories = ["women", "men", "kids", "shoes", "home", "beauty", "sport", "accessories"]
        self.skus = Sku.objects.bulk_create(
            [
                Sku(code=f"B-{n:05d}", name=f"Article {n}", category=categories[n % 8])
                for n in range(args.skus)
            ]
        )
        self.sku_id = [sku.pk for sku in self.skus]
        self.sku_price = [int(rng.lognormvariate(math.log(2500), 0.7)) + 99 for _ in self.skus]
        self.sku_cw = running(1 / (n + 10) for n in range(args.skus))

        integration = PosIntegration.objects.create(slug="bench", name="Bench tills")
        integration.stores.add(*(self.locations[i] for i in self.stores))
        PosTill.objects.bulk_create(
            [
                PosTill(integration=integration, location=self.locations[i], code=till)
                for i in self.stores
                for till in ("T1", "T2")
            ]
        )
        self.integration_id = integration.pk

    def day_of(self, ts: float) -> int:
        return bisect.bisect_right(self.day_start, ts) - 1

    def moment(self, rng: random.Random, hours: list[float] | None = None) -> float:
        """A timestamp in the past of the frame, weekends busier, by hour of the day (three
        draws whatever the clock: today's hours still to come move a week back)."""
        cw = hours or self.hour_weights
        day = pick(rng, self.day_weights)
        ts = self.day_start[day] + pick(rng, cw) * HOUR + rng.random() * HOUR
        return ts if ts < self.now_ts - 60 else ts - 7 * DAY


# ---- the plan: every row decided in memory (compact arrays), then written -------------------


class Plan:
    """Deterministic for a seed: each order (and its payment) draws from its own seeded
    generator, so the clock — which decides the statuses near "now" — changes that order only,
    not every draw after it."""

    def __init__(self, world: World, rng: random.Random):
        args = self.args = world.args
        self.world = world
        n, ncust = args.orders, args.customers
        w = world

        # customers: a home store, 60 % members, a few with store credit
        self.home = array("h", (w.stores[pick(rng, w.store_cw)] for _ in range(ncust)))
        self.member = bytearray(rng.random() < MEMBER_SHARE for _ in range(ncust))
        self.by_store = defaultdict(list)
        for c in range(ncust):
            self.by_store[self.home[c]].append(c)

        placed = sorted(w.moment(rng) for _ in range(n))
        self.placed = array("d", placed)
        self.cust = array("i", [0]) * n
        self.chan = []  # str per order
        self.pickup = array("h", [-1]) * n
        self.status = bytearray(n)
        self.ready_by = array("d", [NAN]) * n
        self.ready_at = array("d", [NAN]) * n
        self.closed_at = array("d", [NAN]) * n
        self.paid_at = array("d", [NAN]) * n  # when money and points follow the goods
        self.total = array("i", [0]) * n
        self.line_start = array("i", [0]) * (n + 1)
        self.loc1, self.kind1 = array("h", [-1]) * n, bytearray(n)
        self.loc2, self.kind2 = array("h", [-1]) * n, bytearray(n)
        self.extra = bytearray(n)  # 0 -, 1 split, 2 rejected and re-routed, 3 transfer short
        self.damaged = bytearray(n)  # a rejection's reason: damaged (1) or not on the shelf
        self.ret_at = array("d", [NAN]) * n
        self.ret_loc = array("h", [-1]) * n
        self.sku, self.qty, self.price = array("i"), array("b"), array("i")
        self.load = Counter()  # (location index, day index) → orders prepared there that day
        chan_p = running(weight for _, weight in CHANNELS_PICKUP)
        chan_d = running(weight for _, weight in CHANNELS_DELIVERY)
        lines_cw = running(weight for _, weight in LINES_PER_ORDER)
        main, rng = rng, random.Random()

        for i in range(n):
            rng.seed((args.seed << 40) + i)
            ts = placed[i]
            c = int(ncust * rng.random() ** 2)  # heavy buyers first: repeat customers
            self.cust[i] = c
            is_pickup = rng.random() < PICKUP_SHARE
            self.chan.append(
                CHANNELS_PICKUP[pick(rng, chan_p)][0]
                if is_pickup
                else CHANNELS_DELIVERY[pick(rng, chan_d)][0]
            )
            self.line_start[i] = len(self.sku)
            total = 0
            for _ in range(LINES_PER_ORDER[pick(rng, lines_cw)][0]):
                s = pick(rng, w.sku_cw)
                q = 1 if rng.random() < 0.85 else (2 if rng.random() < 0.8 else 3)
                self.sku.append(s)
                self.qty.append(q)
                self.price.append(w.sku_price[s])
                total += q * w.sku_price[s]
            self.total[i] = total
            nlines = len(self.sku) - self.line_start[i]
            day = w.day_of(ts)
            if is_pickup:
                self._pickup(rng, i, c, ts)
            else:
                self._delivery(rng, i, ts)
            if nlines > 1 and rng.random() < SPLIT_SHARE:
                self.extra[i] = 1
                self._second(rng, i, is_pickup)
            elif rng.random() < REJECTED_SHARE and ts < w.now_ts - DAY:
                self.extra[i] = 2
                self.damaged[i] = rng.random() < 0.3
                self._second(rng, i, is_pickup)
            elif self.kind1[i] == TRANSFER and rng.random() < TRANSFER_SHORT_SHARE:
                self.extra[i] = 3
            if self.status[i] != S["cancelled"]:
                for loc in (self.loc1[i], self.loc2[i]):
                    if loc in w.capped:
                        self.load[(loc, day)] += 1
            if self.status[i] in SOLD and rng.random() < RETURN_SHARE:
                self._return(rng, i)
        self.line_start[n] = len(self.sku)
        self._capacities()
        self.busiest_store = Counter(
            self.pickup[i] for i in range(n) if self.pickup[i] >= 0
        ).most_common(1)[0][0]
        self._receipts(main)
        self._payments(main)
        self._lots()
        self._coupons(main)

    def _pickup(self, rng, i, c, ts):
        w = self.world
        home = self.home[c]
        store = home if home in w.pickup_set and rng.random() < 0.8 else None
        if store is None:
            store = w.pickup_stores[pick(rng, w.pickup_cw)]
        self.pickup[i] = store
        draw = rng.random()
        if draw < 0.70:
            self.loc1[i], self.kind1[i] = store, PICKUP_LOCAL
        elif draw < 0.95:
            self.loc1[i], self.kind1[i] = rng.choice(w.warehouses), TRANSFER
        else:
            other = w.stores[pick(rng, w.store_cw)]
            self.loc1[i] = other if other != store else rng.choice(w.warehouses)
            self.kind1[i] = TRANSFER
        hour = datetime.fromtimestamp(ts, ZONE).hour
        promise = 2.0 if 9 <= hour < 17 else float((24 - hour + 11) % 24 or 24)
        if self.kind1[i] == TRANSFER:
            promise += 48
        self.ready_by[i] = ts + promise * HOUR
        if rng.random() < 0.05:  # cancelled before it was ready
            closed = ts + rng.uniform(0.3, 20) * HOUR
            if closed < w.now_ts:
                self.status[i], self.closed_at[i] = S["cancelled"], closed
                return
        on_time = rng.random() < 0.88
        to_ready = promise * (rng.uniform(0.35, 1.0) if on_time else rng.uniform(1.0, 1.8))
        ready = ts + to_ready * HOUR + (0 if on_time else rng.uniform(0, 6) * HOUR)
        if ready >= w.now_ts:
            self.status[i] = S["picking"] if rng.random() < 0.5 else S["allocated"]
            return
        self.ready_at[i] = ready
        wait = rng.lognormvariate(math.log(18), 1.3) * HOUR
        hold = 7 * DAY
        if wait > hold:
            if ready + hold < w.now_ts:
                self.status[i], self.closed_at[i] = S["expired"], ready + hold
            else:
                self.status[i] = S["ready_for_pickup"]
        elif ready + wait < w.now_ts:
            self.status[i] = S["collected"]
            self.closed_at[i] = self.paid_at[i] = ready + wait
        else:
            self.status[i] = S["ready_for_pickup"]

    def _delivery(self, rng, i, ts):
        w = self.world
        if rng.random() < 0.8:
            self.loc1[i] = rng.choice(w.warehouses)
        else:
            self.loc1[i] = w.ship_stores[pick(rng, w.ship_cw)]
        self.kind1[i] = SHIP
        self.ready_by[i] = ts + 24 * HOUR
        if rng.random() < 0.03:
            closed = ts + rng.uniform(0.3, 20) * HOUR
            if closed < w.now_ts:
                self.status[i], self.closed_at[i] = S["cancelled"], closed
                return
        shipped = ts + rng.uniform(6, 30) * HOUR
        delivered = shipped + rng.uniform(1, 3) * DAY
        if shipped >= w.now_ts:
            self.status[i] = S["picking"] if rng.random() < 0.5 else S["allocated"]
        elif delivered >= w.now_ts:
            self.status[i], self.paid_at[i] = S["shipped"], shipped
        else:
            self.status[i], self.paid_at[i] = S["delivered"], shipped
            self.closed_at[i] = delivered

    def _second(self, rng, i, is_pickup):
        w = self.world
        first = self.loc1[i]
        if is_pickup:
            if self.kind1[i] == PICKUP_LOCAL:
                self.loc2[i], self.kind2[i] = rng.choice(w.warehouses), TRANSFER
            else:
                self.loc2[i], self.kind2[i] = self.pickup[i], PICKUP_LOCAL
        else:
            choices = [loc for loc in w.warehouses + w.ship_stores[:5] if loc != first]
            self.loc2[i], self.kind2[i] = rng.choice(choices), SHIP

    def _return(self, rng, i):
        w = self.world
        back = self.closed_at[i] if self.closed_at[i] == self.closed_at[i] else self.paid_at[i]
        ts = back + rng.uniform(1, 25) * DAY
        if ts >= w.now_ts:
            return
        if self.pickup[i] >= 0 or rng.random() < 0.6:
            loc = self.pickup[i] if self.pickup[i] >= 0 else w.stores[pick(rng, w.store_cw)]
        else:
            loc = rng.choice(w.warehouses)  # sent back by post
        self.ret_at[i], self.ret_loc[i] = ts, loc

    def _capacities(self):
        """Every capped location's daily capacity: its 90th-percentile day, plus a quarter."""
        per_location = defaultdict(list)
        for (loc, _day), count in self.load.items():
            per_location[loc].append(count)
        self.capacity = {}
        for index in self.world.capped:
            counts = sorted(per_location.get(index, [0]))
            self.capacity[index] = max(5, math.ceil(percentile(counts, 0.9) * 1.25))

    def _receipts(self, rng):
        """Till receipts: sales and returns in opening hours, half of them identified."""
        w = self.world
        hours = running(1 if 9 <= h < 20 else 0 for h in range(24))
        n = int(self.args.orders * RECEIPTS_PER_ORDER)
        self.r_at = array("d", sorted(w.moment(rng, hours) for _ in range(n)))
        self.r_loc = array("h", (w.stores[pick(rng, w.store_cw)] for _ in range(n)))
        self.r_sale = bytearray(rng.random() < 0.92 for _ in range(n))
        self.r_cust = array("i", [-1]) * n
        self.r_total = array(
            "i", (int(rng.lognormvariate(math.log(3500), 0.8)) + 100 for _ in range(n))
        )
        self.r_till = bytearray(rng.random() < 0.5 for _ in range(n))
        for r in range(n):
            if rng.random() < (0.5 if self.r_sale[r] else 0.3):
                local = self.by_store.get(self.r_loc[r])
                if local and rng.random() < 0.7:
                    self.r_cust[r] = rng.choice(local)
                else:
                    self.r_cust[r] = int(self.args.customers * rng.random() ** 2)

    def _payments(self, rng):
        """Each order's tenders: card, or till at pickup, or part gift card / store credit /
        points with the card for the rest; the stored-value balances follow."""
        w, n = self.world, self.args.orders
        ncards = max(50, n // 50)
        self.gc_created = array(
            "d", (rng.uniform(w.start_ts - 200 * DAY, w.now_ts - DAY) for _ in range(ncards))
        )
        self.gc_initial = array(
            "i", (rng.choice((2000, 2500, 3000, 5000, 7500, 10000, 15000)) for _ in range(ncards))
        )
        self.gc_balance = array("i", self.gc_initial)
        self.gc_uses = []  # (card, ts, cents, order)
        owners = rng.sample(range(self.args.customers), int(self.args.customers * WALLET_SHARE))
        self.wallet_of = {c: k for k, c in enumerate(owners)}
        self.wl_customer = array("i", owners)
        self.wl_created = array(
            "d", (rng.uniform(w.start_ts - 100 * DAY, w.now_ts - 30 * DAY) for _ in owners)
        )
        self.wl_initial = array("i", (rng.randrange(1000, 8000) for _ in owners))
        self.wl_balance = array("i", self.wl_initial)
        self.wl_uses = []
        self.mix = bytearray(n)
        self.part = array("i", [0]) * n
        self.spends = []  # (ts, "order"|"receipt", index, points)
        own = random.Random()
        for i in range(n):
            own.seed((self.args.seed << 40) + (1 << 36) + i)
            status, ts, c, total = self.status[i], self.placed[i], self.cust[i], self.total[i]
            sold = status in SOLD
            draw = own.random()
            if self.pickup[i] >= 0 and draw < 0.10:  # pays at the till when collecting
                self.mix[i] = MIX_TILL
            elif 0.10 <= draw < 0.14:  # 4 %: a gift card, the card for the rest
                card = own.randrange(ncards)
                if self.gc_created[card] >= ts:
                    self.gc_created[card] = ts - own.uniform(1, 60) * DAY
                part = min(self.gc_balance[card], int(total * own.uniform(0.2, 1.0)))
                if part >= 100:
                    self.mix[i], self.part[i] = MIX_GIFT, part
                    if sold:
                        self.gc_balance[card] -= part
                        self.gc_uses.append((card, self.paid_at[i], part, i))
            elif draw >= 0.60 and c in self.wallet_of:  # 40 % of a wallet owner's orders
                k = self.wallet_of[c]
                part = min(self.wl_balance[k], total)
                if part >= 100 and self.wl_created[k] < ts:
                    self.mix[i], self.part[i] = MIX_CREDIT, part
                    if sold:
                        self.wl_balance[k] -= part
                        self.wl_uses.append((k, self.paid_at[i], part, i))
            elif 0.14 <= draw < 0.155 and self.member[c]:  # 1.5 % of a member's orders
                points = min(total - 1, own.randrange(300, 1500))  # 3 to 15 EUR
                if points >= 100:
                    self.mix[i], self.part[i] = MIX_POINTS, points
                    self.spends.append((ts, "order", i, points))
        for r in range(len(self.r_at)):
            c = self.r_cust[r]
            if self.r_sale[r] and c >= 0 and self.member[c] and rng.random() < 0.03:
                self.spends.append((self.r_at[r], "receipt", r, min(self.r_total[r] - 1, 1000)))
        self.spends.sort()

    def _lots(self):
        """Points earned: sold orders and identified till sales of members, in time order."""
        lots = []
        for i in range(self.args.orders):
            if self.status[i] in SOLD and self.member[self.cust[i]]:
                lots.append((self.paid_at[i], "order", i))
        for r in range(len(self.r_at)):
            c = self.r_cust[r]
            if self.r_sale[r] and c >= 0 and self.member[c]:
                lots.append((self.r_at[r], "receipt", r))
        lots.sort()
        self.lots = lots

    def _coupons(self, rng):
        """6 campaigns, each issuing codes over 3 weeks; 12 % redeemed, online on one of the
        recipient's orders or at a till on one of her receipts (the recipient is then that
        order's or receipt's customer)."""
        w, ncust = self.world, self.args.customers
        total = int(self.args.orders * COUPONS_PER_ORDER)
        offsets = [330, 250, 170, 90, 40, 18][-CAMPAIGNS:]
        self.campaign_starts = [w.now_ts - d * DAY for d in offsets]
        self.coupons = []  # (campaign, customer, issued, redemption or None)
        for k, start in enumerate(self.campaign_starts):
            count = min(total // CAMPAIGNS, ncust // 2)
            end_issue = min(start + 21 * DAY, w.now_ts - 60)
            times = sorted(rng.uniform(start, end_issue) for _ in range(count))
            recipients = rng.sample(range(ncust), count)
            taken = set(recipients)
            for j, issued in enumerate(times):
                customer, redemption = recipients[j], None
                if rng.random() < REDEEMED_SHARE:
                    when = issued + rng.expovariate(1 / (5 * DAY))
                    online = rng.random() < 0.6
                    if when < min(start + 45 * DAY, w.now_ts):
                        redemption = self._redemption(online, when, taken)
                        if redemption is not None:
                            taken.discard(customer)
                            customer = redemption[1]
                self.coupons.append((k, customer, issued, redemption))

    def _redemption(self, online, when, taken):
        """("online", customer, order) or ("store", customer, receipt) near `when`."""
        if online:
            first = bisect.bisect_left(self.placed, when)
            for i in range(first, min(first + 50, self.args.orders)):
                c = self.cust[i]
                if self.chan[i] in ("web", "app") and self.status[i] in SOLD and c not in taken:
                    taken.add(c)
                    return ("online", c, i)
            return None
        first = bisect.bisect_left(self.r_at, when)
        for r in range(first, min(first + 50, len(self.r_at))):
            c = self.r_cust[r]
            if self.r_sale[r] and c >= 0 and c not in taken:
                taken.add(c)
                return ("store", c, r)
        return None


# ---- load -----------------------------------------------------------------------------------------


def reference(i: int, channel: str) -> str:
    return f"{CHANNEL_PREFIX.get(channel, 'X')}{base31(i)}"


def load(plan: Plan, loader: Loader, rng: random.Random) -> None:
    w, args = plan.world, plan.args
    n, ncust = args.orders, args.customers
    loc_id, sku_id = w.loc_id, w.sku_id
    started = time.perf_counter()
    capped = []
    for index, capacity in plan.capacity.items():
        w.locations[index].daily_order_capacity = capacity
        capped.append(w.locations[index])
    Location.objects.bulk_update(capped, ["daily_order_capacity"])
    loader.orm("stores_location.daily_order_capacity (ORM update)", len(capped), started)

    # customers and their loyalty accounts
    first_customer = loader.reserve(Customer, ncust)
    cust_id = range(first_customer, first_customer + ncust)
    created_channels = ["web", "app", "store", "store"]

    def customers():
        for c in range(ncust):
            number = str(100_000_000 + c)
            yield (
                cust_id[c], str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                number + luhn_check_digit(number), f"Client{c}", "Bench", f"client{c} bench",
                "fr", loc_id[plan.home[c]], created_channels[c % 4],
                at(w.start_ts - rng.uniform(1, 1000) * DAY),
            )  # fmt: skip

    loader.copy(
        Customer,
        ["id", "reference", "number", "first_name", "last_name", "name_key", "language",
         "preferred_store_id", "created_channel", "created_at"],
        customers(),
    )  # fmt: skip
    members = [c for c in range(ncust) if plan.member[c]]
    first_account = loader.reserve(LoyaltyAccount, len(members))
    account_of = {c: first_account + k for k, c in enumerate(members)}
    loader.copy(
        LoyaltyAccount,
        ["id", "customer_id", "card_number", "created_at"],
        ((account_of[c], cust_id[c], f"BENCH{c:011d}", at(w.start_ts - DAY)) for c in members),
    )

    # orders
    first_order = loader.reserve(Order, n)
    refs = [reference(i, plan.chan[i]) for i in range(n)]

    def last_change(i):
        for ts in (plan.closed_at[i], plan.paid_at[i], plan.ready_at[i]):
            if ts == ts:
                return ts
        return plan.placed[i]

    def orders():
        for i in range(n):
            status, ts = plan.status[i], plan.placed[i]
            day = w.days[w.day_of(ts)]
            pickup = plan.pickup[i] >= 0
            slots = [[loc_id[loc], day.isoformat()] for loc in (plan.loc1[i], plan.loc2[i])
                     if loc >= 2 and status != S["cancelled"]]  # fmt: skip
            closed = plan.closed_at[i]
            ready = plan.ready_at[i]
            yield (
                first_order + i, refs[i], f"bench:order:{i}", plan.chan[i],
                cust_id[plan.cust[i]], CURRENCY, money(plan.total[i]), STATUS[status],
                FulfilmentType.PICKUP if pickup else FulfilmentType.DELIVERY,
                loc_id[plan.pickup[i]] if pickup else None,
                "" if pickup else f"Client {plan.cust[i]}",
                "" if pickup else f"{1 + i % 120} rue de la Paix",
                "" if pickup else f"{75001 + i % 20}", "" if pickup else "Paris",
                "" if pickup else "FR",
                at(plan.ready_by[i]),
                None if pickup else day + timedelta(days=3),
                at(ready), at(ready + 7 * DAY) if pickup and ready == ready else None,
                at(ts), json.dumps(slots), at(closed),
                at(last_change(i)),
            )  # fmt: skip

    loader.copy(
        Order,
        ["id", "reference", "created_by_key", "channel", "customer_id", "currency",
         "total_amount", "status", "fulfilment", "pickup_location_id", "ship_name",
         "ship_address", "ship_postcode", "ship_city", "ship_country", "ready_by",
         "delivery_expected_on", "ready_at", "pickup_deadline", "placed_at", "capacity_slots",
         "closed_at", "updated_at"],
        orders(),
    )  # fmt: skip

    nlines = plan.line_start[n]
    first_line = loader.reserve(OrderLine, nlines)

    def line_status(i):
        status = plan.status[i]
        if status in (S["collected"], S["delivered"]):
            return LineStatus.FULFILLED
        if status in UNSOLD:
            return LineStatus.CANCELLED
        return LineStatus.OPEN

    def lines():
        for i in range(n):
            returned = plan.ret_at[i] == plan.ret_at[i]
            state = line_status(i)
            for k in range(plan.line_start[i], plan.line_start[i + 1]):
                back = plan.qty[k] if returned and k == plan.line_start[i] else 0
                yield (first_line + k, first_order + i, k - plan.line_start[i] + 1,
                       sku_id[plan.sku[k]], plan.qty[k], money(plan.price[k]), state, back, back)  # fmt: skip

    loader.copy(
        OrderLine,
        ["id", "order_id", "line_no", "sku_id", "quantity", "unit_price", "status",
         "quantity_returned", "quantity_refunded"],
        lines(),
    )  # fmt: skip

    # allocations: the first location, and the second of split and re-routed orders
    nalloc = n + sum(1 for i in range(n) if plan.loc2[i] >= 0)
    first_alloc = loader.reserve(Allocation, nalloc)

    def alloc_status(i, kind):
        status = plan.status[i]
        if status in SOLD:
            return AllocationStatus.FULFILLED
        if status in UNSOLD:
            return AllocationStatus.RELEASED
        if status == S["ready_for_pickup"]:
            return AllocationStatus.RECEIVED if kind == TRANSFER else AllocationStatus.RESERVED
        return AllocationStatus.IN_TRANSIT if kind == TRANSFER else AllocationStatus.RESERVED

    def allocations():
        aid = first_alloc
        for i in range(n):
            ts, rerouted = plan.placed[i], plan.extra[i] == 2
            status = alloc_status(i, plan.kind1[i])
            if rerouted and plan.line_start[i + 1] - plan.line_start[i] == 1:
                status = AllocationStatus.RELEASED  # its only line was rejected
            yield (aid, first_order + i, loc_id[plan.loc1[i]], KINDS[plan.kind1[i]], status,
                   at(ts + 2), at(ts + 2 * DAY) if plan.kind1[i] == TRANSFER else None)  # fmt: skip
            aid += 1
            if plan.loc2[i] >= 0:
                kind = plan.kind2[i]
                created = ts + (2 * HOUR if rerouted else 2)  # a re-route comes after the rejection
                yield (aid, first_order + i, loc_id[plan.loc2[i]], KINDS[kind], alloc_status(i, kind),
                       at(created), at(created + 2 * DAY) if kind == TRANSFER else None)  # fmt: skip
                aid += 1

    loader.copy(
        Allocation,
        ["id", "order_id", "location_id", "kind", "status", "created_at", "expected_at"],
        allocations(),
    )

    def allocation_lines():
        aid = first_alloc
        for i in range(n):
            start, end = plan.line_start[i], plan.line_start[i + 1]
            second = plan.loc2[i] >= 0
            for k in range(start, end):
                line = first_line + k
                if plan.extra[i] == 1:  # split: every other line from the second location
                    yield (aid + ((k - start) % 2), line, plan.qty[k], True)
                elif plan.extra[i] == 2 and k == start:  # rejected at the first, re-routed
                    yield (aid, line, plan.qty[k], False)
                    yield (aid + 1, line, plan.qty[k], True)
                else:
                    yield (aid, line, plan.qty[k], True)
            aid += 2 if second else 1

    loader.copy(
        AllocationLine,
        ["allocation_id", "order_line_id", "quantity", "is_active"],
        allocation_lines(),
    )

    def decisions():
        for i in range(n):
            ts = plan.placed[i]
            chosen = json.dumps(
                [{"location": w.locations[plan.loc1[i]].code, "kind": KINDS[plan.kind1[i]]}]
            )
            outcome = (
                "split"
                if plan.extra[i] == 1
                else ("pickup_local" if plan.kind1[i] == PICKUP_LOCAL else "single")
            )
            yield (first_order + i, "placement", RULES, "[]", chosen, outcome, "1.250", at(ts + 1))
            if plan.extra[i] == 2:
                again = json.dumps(
                    [{"location": w.locations[plan.loc2[i]].code, "kind": KINDS[plan.kind2[i]]}]
                )
                yield (
                    first_order + i,
                    "rejection",
                    RULES,
                    "[]",
                    again,
                    "single",
                    "1.800",
                    at(ts + 2 * HOUR),
                )
            elif plan.extra[i] == 3:
                yield (
                    first_order + i,
                    "transfer_short",
                    RULES,
                    "[]",
                    chosen,
                    "single",
                    "1.500",
                    at(ts + DAY),
                )

    loader.copy(
        RoutingDecision,
        [
            "order_id",
            "trigger",
            "rules",
            "candidates",
            "chosen",
            "outcome",
            "duration_ms",
            "created_at",
        ],
        decisions(),
    )

    def events():
        """The journal: each order's last transition, and the line rejections."""
        for i in range(n):
            status, ts = plan.status[i], plan.placed[i]
            when = max(last_change(i), ts + 1)
            yield (
                first_order + i,
                STATUS[status],
                "",
                STATUS[status],
                "bench",
                plan.chan[i],
                "{}",
                at(when),
            )
            if plan.extra[i] == 2:
                k = plan.line_start[i]
                reason = "damaged" if plan.damaged[i] else "not_on_shelf"
                data = {"line": 1, "sku": w.skus[plan.sku[k]].code, "location": loc_id[plan.loc1[i]],
                        "reason": reason, "quantity": plan.qty[k], "found_quantity": 0, "kept": 0,
                        "set_aside": plan.qty[k] if reason == "damaged" else 0}  # fmt: skip
                yield (
                    first_order + i,
                    "line_rejected",
                    "",
                    "",
                    "store:bench",
                    "store",
                    json.dumps(data),
                    at(ts + 2 * HOUR - 60),
                )

    loader.copy(
        OrderEvent,
        ["order_id", "kind", "from_status", "to_status", "actor", "channel", "data", "occurred_at"],
        events(),
    )

    def returns():
        for ts, i in sorted(
            (plan.ret_at[i], i) for i in range(n) if plan.ret_at[i] == plan.ret_at[i]
        ):
            k = plan.line_start[i]
            loc = plan.ret_loc[i]
            channel = "store" if loc >= 2 else "backoffice"
            yield (first_order + i, cust_id[plan.cust[i]], loc_id[loc], money(plan.qty[k] * plan.price[k]),
                   CURRENCY, "bench", channel, f"bench:return:{i}", at(ts))  # fmt: skip

    loader.copy(
        Return,
        ["order_id", "customer_id", "location_id", "refund_amount", "currency", "actor", "channel",
         "idempotency_key", "created_at"],
        returns(),
    )  # fmt: skip

    # till receipts, each with its POS event
    nrec = len(plan.r_at)
    first_event = loader.reserve(PosEvent, nrec)

    def till(r):
        return "T2" if plan.r_till[r] else "T1"

    loader.copy(
        PosEvent,
        ["id", "integration_id", "event_id", "event_type", "location_id", "till", "receipt_number",
         "occurred_at", "status", "attempts", "received_at", "processed_at"],
        (
            (first_event + r, w.integration_id, f"bench-{r}",
             PosEventType.SALE if plan.r_sale[r] else PosEventType.RETURN, loc_id[plan.r_loc[r]],
             till(r), f"R{r:08d}", at(plan.r_at[r]), PosEventStatus.PROCESSED, 1,
             at(plan.r_at[r] + 2), at(plan.r_at[r] + 3))
            for r in range(nrec)
        ),
    )  # fmt: skip

    def receipts():
        for r in range(nrec):
            total = plan.r_total[r]
            s = pick(rng, w.sku_cw)
            lines = json.dumps([{"sku": w.skus[s].code, "quantity": 1, "unit_price": money(total)}])
            tenders = json.dumps([{"kind": "card", "amount": money(total)}])
            c = plan.r_cust[r]
            yield (first_event + r, "sale" if plan.r_sale[r] else "return", f"R{r:08d}",
                   loc_id[plan.r_loc[r]], till(r), cust_id[c] if c >= 0 else None, CURRENCY,
                   money(total), lines, tenders, at(plan.r_at[r]))  # fmt: skip

    loader.copy(
        StoreReceipt,
        ["event_id", "kind", "number", "location_id", "till", "customer_id", "currency", "total",
         "lines", "tenders", "occurred_at"],
        receipts(),
    )  # fmt: skip

    # loyalty: one operation per lot and per spend
    nops = len(plan.lots) + len(plan.spends)
    first_op = loader.reserve(PointsOperation, nops)

    def operations():
        for k, (ts, source, index) in enumerate(plan.lots):
            yield (first_op + k, f"bench:earn:{source}:{index}", "earn", "",
                   plan.chan[index] if source == "order" else "store", at(ts))  # fmt: skip
        for k, (ts, source, index, _points) in enumerate(plan.spends):
            channel = plan.chan[index] if source == "order" else "store"
            yield (
                first_op + len(plan.lots) + k,
                f"bench:hold:{source}:{index}",
                "hold",
                "",
                channel,
                at(ts),
            )

    loader.copy(
        PointsOperation, ["id", "idempotency_key", "kind", "request_hash", "channel", "created_at"],
        operations(),
    )  # fmt: skip

    def lots():
        for k, (ts, source, index) in enumerate(plan.lots):
            if source == "order":
                c, points = plan.cust[index], plan.total[index] // 100
                source_type, ref, channel = SourceType.ORDER, refs[index], plan.chan[index]
                store = plan.pickup[index]
            else:
                c, points = plan.r_cust[index], plan.r_total[index] // 100
                source_type, ref, channel = (SourceType.STORE_RECEIPT,
                                             f"pos:{w.integration_id}:bench-{index}", "store")  # fmt: skip
                store = plan.r_loc[index]
            points = max(points, 1)
            yield (account_of[c], LotKind.EARN, source_type, ref, points, points, at(ts),
                   at(ts + 30 * DAY), at(ts + 365 * DAY), channel,
                   loc_id[store] if store >= 0 else None, first_op + k, at(ts))  # fmt: skip

    loader.copy(
        PointsLot,
        ["account_id", "kind", "source_type", "source_ref", "amount", "remaining", "earned_at",
         "available_at", "expires_at", "channel", "store_id", "operation_id", "created_at"],
        lots(),
    )  # fmt: skip

    first_spend = loader.reserve(PointsSpend, len(plan.spends))
    spend_of_order = {}

    def spends():
        for k, (ts, source, index, points) in enumerate(plan.spends):
            if source == "order":
                spend_of_order[index] = first_spend + k
                status = plan.status[index]
                c, ref, channel, store = (
                    plan.cust[index],
                    refs[index],
                    plan.chan[index],
                    plan.pickup[index],
                )
                if status in SOLD:
                    state, captured, closed = SpendStatus.CAPTURED, points, plan.paid_at[index]
                elif status in UNSOLD:
                    state, captured, closed = SpendStatus.RELEASED, 0, plan.closed_at[index]
                else:
                    state, captured, closed = SpendStatus.HELD, 0, NAN
            else:
                c, ref, channel, store = (
                    plan.r_cust[index],
                    f"R{index:08d}",
                    "store",
                    plan.r_loc[index],
                )
                state, captured, closed = SpendStatus.CAPTURED, points, ts + 30
            yield (first_spend + k, account_of[c], SpendPurpose.TENDER, ref, points, captured, state,
                   channel, loc_id[store] if store >= 0 else None, at(ts + 8 * DAY), at(ts),
                   at(closed), first_op + len(plan.lots) + k)  # fmt: skip

    loader.copy(
        PointsSpend,
        ["id", "account_id", "purpose", "reference", "points", "captured_points", "status",
         "channel", "store_id", "expires_at", "created_at", "closed_at", "operation_id"],
        spends(),
    )  # fmt: skip

    # stored value: gift cards and wallets, their ledgers
    ncards = len(plan.gc_initial)
    first_card = loader.reserve(GiftCard, ncards)
    loader.copy(
        GiftCard,
        ["id", "currency", "balance", "created_at", "updated_at", "code_hash", "code_last4",
         "initial_balance", "source", "issued_channel", "reference"],
        (
            (first_card + g, CURRENCY, money(plan.gc_balance[g]), at(plan.gc_created[g]), LOAD_TIME,
             f"{g:064x}", f"{g % 10000:04d}", money(plan.gc_initial[g]),
             GiftCardSource.SOLD if g % 10 else GiftCardSource.GOODWILL,
             "store" if g % 3 else "web", f"bench-gc-{g}")
            for g in range(ncards)
        ),
    )  # fmt: skip

    def ledger(initial, created, uses, first_account, prefix, opening):
        balance = list(initial)
        for g in range(len(initial)):
            yield (first_account + g, money(initial[g]), money(initial[g]), opening,
                   f"bench:{prefix}:{g}:open", "store", "", at(created[g]))  # fmt: skip
        for k, (g, ts, cents, i) in enumerate(sorted(uses, key=lambda use: use[1])):
            balance[g] -= cents
            yield (first_account + g, f"-{money(cents)}", money(balance[g]), EntryKind.CAPTURE,
                   f"bench:{prefix}:{k}:capture", plan.chan[i], refs[i], at(ts))  # fmt: skip

    entry_fields = ["account_id", "amount", "balance_after", "kind", "idempotency_key", "channel",
                    "reference", "created_at"]  # fmt: skip
    loader.copy(
        GiftCardEntry,
        entry_fields,
        ledger(plan.gc_initial, plan.gc_created, plan.gc_uses, first_card, "gc", EntryKind.ISSUE),
    )
    nwallets = len(plan.wl_customer)
    first_wallet = loader.reserve(StoreCreditWallet, nwallets)
    loader.copy(
        StoreCreditWallet,
        ["id", "customer_id", "currency", "balance", "created_at"],
        (
            (first_wallet + k, cust_id[plan.wl_customer[k]], CURRENCY, money(plan.wl_balance[k]),
             at(plan.wl_created[k]))
            for k in range(nwallets)
        ),
    )  # fmt: skip
    loader.copy(
        WalletEntry,
        entry_fields,
        ledger(
            plan.wl_initial, plan.wl_created, plan.wl_uses, first_wallet, "wl", EntryKind.CREDIT
        ),
    )

    def tender_state(status, cents):
        if status in SOLD:
            return TenderStatus.CAPTURED, cents, cents
        if status in UNSOLD:
            return TenderStatus.VOIDED, 0, 0
        return TenderStatus.AUTHORISED, cents, 0

    def tenders():
        for i in range(n):
            status, ts, total, part, mix = (plan.status[i], plan.placed[i], plan.total[i],
                                            plan.part[i], plan.mix[i])  # fmt: skip
            if status in SOLD:
                done = plan.paid_at[i]
            else:
                done = plan.closed_at[i] if status in UNSOLD else ts
            parts = []  # (k, kind, cents, provider, points spend, created)
            if mix == MIX_TILL:
                if status in SOLD:  # paid at the till when collected
                    parts.append((0, TenderKind.TILL, total, "", None, plan.paid_at[i]))
            else:
                if mix == MIX_GIFT:
                    parts.append((1, TenderKind.GIFT_CARD, part, "", None, ts + 2))
                elif mix == MIX_CREDIT:
                    parts.append((1, TenderKind.STORE_CREDIT, part, "", None, ts + 2))
                elif mix == MIX_POINTS:
                    spend = spend_of_order[i]
                    parts.append((1, TenderKind.LOYALTY_POINTS, part, "", spend, ts + 2))
                if total - part > 0:
                    parts.append((0, TenderKind.CARD, total - part, "sandbox", None, ts + 2))
            for k, kind, cents, provider, spend, created in parts:
                state, authorised, captured = tender_state(status, cents)
                yield (refs[i], kind, CURRENCY, money(cents), money(authorised), money(captured),
                       state, provider, f"pi_bench_{i}_{k}" if provider else "", spend,
                       f"bench:tender:{i}:{k}", plan.chan[i], at(created), at(done))  # fmt: skip

    loader.copy(
        Tender,
        ["order_reference", "kind", "currency", "amount", "amount_authorised", "amount_captured",
         "status", "provider", "provider_reference", "loyalty_spend_id", "idempotency_key",
         "channel", "created_at", "updated_at"],
        tenders(),
    )  # fmt: skip

    # campaigns (ORM), their codes and redemptions
    started = time.perf_counter()
    channels_of_issue = [
        IssueChannel.EMAIL,
        IssueChannel.SMS,
        IssueChannel.PUSH,
        IssueChannel.RECEIPT,
    ]
    campaigns = Campaign.objects.bulk_create(
        [
            Campaign(name=f"Campaign {k + 1}", discount_type=DiscountType.PERCENT,
                     discount_value=10, starts_at=at(start), ends_at=at(start + 45 * DAY),
                     channels=["web", "app", "store"], issue_channel=channels_of_issue[k % 4],
                     target_kind=TargetKind.SEGMENT, o2o_days=30)
            for k, start in enumerate(plan.campaign_starts)
        ]
    )  # fmt: skip
    loader.orm("loyalty_campaign", len(campaigns), started)
    first_coupon = loader.reserve(Coupon, len(plan.coupons))
    loader.copy(
        Coupon,
        ["id", "campaign_id", "customer_id", "code", "issue_channel", "issued_at", "status"],
        (
            (first_coupon + j, campaigns[k].pk, cust_id[c], f"BENCH{k:02d}{j:09d}",
             campaigns[k].issue_channel, at(issued),
             CouponStatus.REDEEMED if redemption else CouponStatus.ISSUED)
            for j, (k, c, issued, redemption) in enumerate(plan.coupons)
        ),
    )  # fmt: skip

    def redemptions():
        for j, (k, c, _issued, redemption) in enumerate(plan.coupons):
            if redemption is None:
                continue
            where, _c, index = redemption
            if where == "online":  # on one of her orders
                basket, channel, when = plan.total[index], plan.chan[index], plan.placed[index]
                store, till_code, ref = None, "", refs[index]
            else:  # at a till, on one of her receipts
                basket, channel, when = plan.r_total[index], "store", plan.r_at[index]
                store, till_code, ref = loc_id[plan.r_loc[index]], till(index), ""
            yield (first_coupon + j, campaigns[k].pk, cust_id[c], channel, store, till_code, ref,
                   money(basket), money(basket // 10), CURRENCY, f"bench:redeem:{j}", at(when))  # fmt: skip

    loader.copy(
        CouponRedemption,
        ["coupon_id", "campaign_id", "customer_id", "channel", "store_id", "till", "order_ref",
         "basket_total", "discount", "currency", "idempotency_key", "redeemed_at"],
        redemptions(),
    )  # fmt: skip

    # nightly figures: capacity counters, stock rollups
    loader.copy(
        LocationDayLoad,
        ["location_id", "day", "orders"],
        ((loc_id[loc], w.days[day], count) for (loc, day), count in sorted(plan.load.items())),
    )

    def stock_days():
        listed = [
            int(args.skus * (0.95 if index < 2 else rng.uniform(0.3, 0.75)))
            for index in range(len(loc_id))
        ]
        out_rate = [0.01 if index < 2 else rng.uniform(0.02, 0.12) for index in range(len(loc_id))]
        for d, day in enumerate(w.days):
            for index, location in enumerate(loc_id):
                skus = min(args.skus, int(listed[index] * (1 + 0.0003 * d)))
                sellable = int(skus * (1 - max(0.0, out_rate[index] + rng.uniform(-0.02, 0.02))))
                yield (day, location, skus, sellable)

    loader.copy(StockDay, ["day", "location_id", "skus_listed", "skus_sellable"], stock_days())
    loader.copy(
        CatalogueDay,
        ["day", "skus_active", "sellable_warehouse_only", "sellable_anywhere"],
        (
            (day, int(args.skus * 0.95), int(args.skus * rng.uniform(0.20, 0.25)),
             int(args.skus * rng.uniform(0.86, 0.92)))
            for day in w.days
        ),
    )  # fmt: skip

    # the caches the ledgers back: account points (gift card and wallet balances are set above)
    started = time.perf_counter()
    with loader.pg.transaction(), loader.pg.cursor() as cur:
        cur.execute(
            "UPDATE loyalty_loyaltyaccount a SET points_remaining = s.points FROM ("
            " SELECT account_id, SUM(remaining) AS points FROM loyalty_pointslot"
            " GROUP BY account_id) s WHERE s.account_id = a.id"
        )
    loader.orm("loyalty_loyaltyaccount.points_remaining (UPDATE)", len(members), started)


def vacuum_analyze(loader: Loader) -> float:
    started = time.perf_counter()
    tables = [name for name in loader.timings if name.isidentifier()]
    tables += [Location._meta.db_table, Sku._meta.db_table, Campaign._meta.db_table]
    with loader.pg.cursor() as cur:
        for table in dict.fromkeys(tables):
            cur.execute(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started


# ---- measures -----------------------------------------------------------------------------------


def scopes(plan: Plan):
    store = plan.world.locations[plan.busiest_store]
    today = plan.world.today
    return [
        ("28 days, every location", "28 d, all",
         period_parse(first_day=None, last_day=None, granularity="week")),
        (f"28 days, one store ({store.code})", "28 d, one store",
         period_parse(first_day=None, last_day=None, granularity="week", location_ids=[store.pk])),
        ("91 days, every location", "91 d, all",
         period_parse(first_day=today - timedelta(days=90), last_day=today, granularity="week")),
    ]  # fmt: skip


def measure(periods, repeat: int):
    """{scope: {kpi: [seconds…], "dashboard": […]}} and the row counts of the warm-up call."""
    others = [name for name in TABLES if name not in DASHBOARD_TABLES]
    samples, rows = {}, {}
    for label, _short, period in periods:
        print(f"measuring {label}…", flush=True)
        found = {name: [] for name in [*DASHBOARD_TABLES, *others, "dashboard"]}
        rows[label] = {
            name: len(TABLES[name](period).rows) for name in [*DASHBOARD_TABLES, *others]
        }
        for _ in range(repeat):
            started = time.perf_counter()
            for name in DASHBOARD_TABLES:
                before = time.perf_counter()
                TABLES[name](period)
                found[name].append(time.perf_counter() - before)
            found["dashboard"].append(time.perf_counter() - started)
            for name in others:
                before = time.perf_counter()
                TABLES[name](period)
                found[name].append(time.perf_counter() - before)
        samples[label] = found
    return samples, rows


def figures(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"p50": percentile(ms, 0.5), "p95": percentile(ms, 0.95), "max": max(ms)}


def explain_slow(name: str, period, label: str, top: int = 3) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the KPI's slowest queries, to stdout."""
    captured = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            captured.append((time.perf_counter() - started, sql, params))

    with connection.execute_wrapper(timed):
        TABLES[name](period)
    total = sum(c[0] for c in captured)
    print(f"\n==== {name} — {label}: {len(captured)} queries, {total * 1000:.0f} ms in SQL")
    for seconds, sql, params in sorted(captured, key=lambda c: c[0], reverse=True)[:top]:
        print(f"\n-- {seconds * 1000:.0f} ms: {sql[:400]}{'…' if len(sql) > 400 else ''}")
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            for (line,) in cursor.fetchall():
                print(line)


# ---- report -------------------------------------------------------------------------------------


def git_revision() -> str:
    """`abc1234`, and whether the work tree differs from it (results and docs aside)."""

    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)

    revision = git("rev-parse", "--short", "HEAD").stdout.strip()
    if not revision:
        return ""
    changed = git("status", "--porcelain", "--", ".", ":!bench/results", ":!docs/benchmarks.md")
    return f"`{revision}`" + (
        " (work tree with uncommitted changes)" if changed.stdout.strip() else ""
    )


def server_version() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


def report(args, revision, loader, vacuum_s, periods, samples, rows, load_avg) -> tuple[str, list]:
    command = "BENCH=analytics bash bench/run.sh" + (" --quick" if args.quick else "")
    defaults = {"orders": 1_000_000, "locations": 200, "days": 365, "customers": 200_000,
                "skus": 2_000, "repeat": 20, "seed": 16}  # fmt: skip
    if not args.quick:
        extra = [f"--{k} {getattr(args, k)}" for k, v in defaults.items() if getattr(args, k) != v]
        command += (" " + " ".join(extra)) if extra else ""
    copied = sum(seconds for _rows, seconds in loader.timings.values())
    counts = {table: count for table, (count, _s) in loader.timings.items()}
    orders_table = Order._meta.db_table
    lines = [
        "## Analytics: KPI dashboard queries (issue #16)",
        "",
        f"PostgreSQL {server_version()} (defaults but `shared_buffers=512MB`: `work_mem` 4 MB), "
        f"{os.cpu_count()} cores shared with a test run (load average {load_avg[0]:.1f} before the "
        f"measures, {load_avg[1]:.1f} after): the figures may be inflated.",
        "",
        "```",
        command,
        "```",
        "",
        f"Data set (seed {args.seed}, `bench/bench_analytics.py`): {counts.get(orders_table, 0):,} "
        f"orders over the last {args.days} days ({PICKUP_SHARE:.0%} click & collect), "
        f"{args.locations} locations (2 warehouses, {args.locations - 2} stores), {args.skus:,} SKUs, "
        f"{args.customers:,} customers; loaded by COPY (ids pre-allocated, columns from the "
        f"models' `_meta`) in **{copied + vacuum_s:.0f} s** ({copied:.0f} s of COPY and ORM, "
        f"{vacuum_s:.0f} s of VACUUM ANALYZE):",
        "",
        "| table | rows | load s |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {table} | {count:,} | {seconds:.1f} |"
        for table, (count, seconds) in loader.timings.items()
    ]
    lines += [
        "",
        "Each KPI function called in-process as the dashboard calls it (`TABLES[name](period)`), "
        f"after one warm-up call: {args.repeat} passes of the whole dashboard per scope, each KPI "
        "timed on its own. Scopes: the dashboard default (last 28 days by week, head office), "
        "the same for a store manager (`location_ids=(her store,)`, the busiest click & collect "
        "store), a quarter (last 91 days by week, head office).",
        "",
        "| KPI (ms: p50 / p95 / max) | "
        + " | ".join(label for label, _s, _p in periods)
        + " | rows |",
        "|---|" + "---:|" * len(periods) + "---:|",
    ]
    misses, worst = [], None
    names = [*DASHBOARD_TABLES, *[name for name in TABLES if name not in DASHBOARD_TABLES]]
    for name in names:
        cells = []
        for label, short, _period in periods:
            f = figures(samples[label][name])
            cell = f"{f['p50']:,.0f} / {f['p95']:,.0f} / {f['max']:,.0f}"
            if f["p95"] > TARGET_P95_MS:
                misses.append((name, label, short, f["p95"]))
                cell = f"**{cell}**"
            if worst is None or f["p95"] > worst[3]:
                worst = (name, label, short, f["p95"])
            cells.append(cell)
        counts_of = " / ".join(str(rows[label][name]) for label, _s, _p in periods)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {counts_of} |")
    dash = [figures(samples[label]["dashboard"]) for label, _s, _p in periods]
    lines.append(
        f"| *whole dashboard ({len(DASHBOARD_TABLES)} tables in a row)* | "
        + " | ".join(f"{f['p50']:,.0f} / {f['p95']:,.0f} / {f['max']:,.0f}" for f in dash)
        + " | |"
    )
    verdict = "met" if not misses else "NOT met"
    lines += ["", f"Target p95 ≤ {TARGET_P95_MS:.0f} ms per KPI: **{verdict}**"]
    if misses:
        missed = sorted({name for name, *_ in misses}, key=names.index)
        lines[-1] += (
            f" — {len(misses)} of {len(names) * len(periods)} KPI × scope figures over it "
            f"({', '.join(missed)}); worst: {worst[0]}, {worst[1]}, p95 {worst[3]:,.0f} ms. "
            "The slow queries' plans are printed by the script (stdout)."
        )
    else:
        lines[-1] += f" (worst: {worst[0]}, {worst[1]}, p95 {worst[3]:,.0f} ms)."
    if revision:
        lines += ["", f"Code revision: {revision}."]
    return "\n".join(lines) + "\n", misses


def main() -> None:
    args = parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("This benchmark needs PostgreSQL: set DATABASE_URL=postgres://…")
    if Order.objects.exists() or Location.objects.exists():
        raise SystemExit("Expects an empty, migrated database (bench/run.sh makes one).")
    revision = git_revision()  # the code imported and migrated now, whatever is committed later
    rng = random.Random(args.seed)
    loader = Loader()
    started = time.perf_counter()
    world = World(args, rng)
    loader.orm("locations, SKUs, POS integration and tills (ORM)", len(world.locations), started)
    started = time.perf_counter()
    plan = Plan(world, rng)
    print(
        f"planned {args.orders:,} orders in {time.perf_counter() - started:.1f} s; loading…",
        flush=True,
    )
    load(plan, loader, random.Random(args.seed + 1))
    loader.verify_foreign_keys()
    print("VACUUM ANALYZE…", flush=True)
    vacuum_s = vacuum_analyze(loader)
    periods = scopes(plan)
    load_before = os.getloadavg()[0]
    samples, rows = measure(periods, args.repeat)
    load_after = os.getloadavg()[0]
    section, misses = report(
        args, revision, loader, vacuum_s, periods, samples, rows, (load_before, load_after)
    )
    write_section("analytics", section)
    by_scope = {label: period for label, _short, period in periods}
    for name, label, _short, p95 in misses:
        print(f"\n#### {name}, {label}: p95 {p95:,.0f} ms > {TARGET_P95_MS:.0f} ms")
        explain_slow(name, by_scope[label], label)


if __name__ == "__main__":
    main()

"""Order reads with rules in them: routing candidates, the cart check, orders for staff."""

from __future__ import annotations

import time
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time

from django.core.cache import cache, caches
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from common.channels import is_online
from inventory.exceptions import UnknownLocation
from inventory.models import StockPosition
from orders import pickup, routing
from orders.exceptions import OrderNotFound, PickupNotOffered, StoreClosed, StoreInactive
from orders.models import (
    DEFAULT_RULES,
    Allocation,
    AllocationKind,
    AllocationLine,
    AllocationStatus,
    LineStatus,
    LocationDayLoad,
    Order,
    OrderLine,
    OrderStatus,
    RoutingRule,
)
from stores.models import Location, LocationKind
from stores.selectors import location_ready_by, locations_with_calendar

_LOCATION_FIELDS = (
    "pk",
    "code",
    "kind",
    "ships_from_location",
    "allows_pickup",
    "receives_transfers",
    "routing_priority",
    "latitude",
    "longitude",
    "transfer_days_to_stores",
    "daily_order_capacity",
    "timezone",
)


def stock_column(channel: str) -> str:
    """Online channels may not take the safety stock; a store till may."""
    return "available" if is_online(channel) else "available_at_till"


# Reference data read on every placement (locations, their calendars, routing rules) is cached
# in each process under a version kept in the shared cache: a save of a Location, its opening
# hours or closures, or a RoutingRule bumps the version (signals in OrdersConfig.ready), so every
# process reads fresh data on its next order. REFERENCE_TTL bounds staleness if a bump is lost.
_REFERENCE_VERSION_KEY = "orders:reference:v"
REFERENCE_TTL = 60
local_cache = caches["local"]


# The shared version itself is re-read at most once a second per process (one round trip to the
# shared cache instead of one per lookup): another process's change is seen within a second.
_VERSION_MEMO_SECONDS = 1.0
_version_memo: dict[str, tuple[float, int]] = {}


def reference_data_changed() -> None:
    try:
        cache.incr(_REFERENCE_VERSION_KEY)
    except ValueError:
        cache.set(_REFERENCE_VERSION_KEY, int(time.time() * 1000), None)
    _version_memo.clear()


def _reference_version() -> int:
    now = time.monotonic()
    memo = _version_memo.get("v")
    if memo is None or now - memo[0] > _VERSION_MEMO_SECONDS:
        memo = (now, cache.get(_REFERENCE_VERSION_KEY, 0))
        _version_memo["v"] = memo
    return memo[1]


def _reference_key(name: str) -> str:
    return f"orders:ref:{name}:{_reference_version()}"


def _reference_cached(name: str, compute):
    key = _reference_key(name)
    value = local_cache.get(key)
    if value is None:
        value = compute()
        local_cache.set(key, value, REFERENCE_TTL)
    return value


def routing_rules_for(channel: str) -> tuple[list[str], int]:
    """The operator's ordered rules for the channel (DEFAULT_RULES when none is set) and the
    number of units `protect_last_units` keeps in a store."""

    def compute():
        row = (
            RoutingRule.objects.filter(channel=channel)
            .values("rules", "protect_last_units")
            .first()
        )
        if not row or not row["rules"]:
            return [str(rule) for rule in DEFAULT_RULES], row["protect_last_units"] if row else 2
        return list(row["rules"]), row["protect_last_units"]

    return _reference_cached(f"rules:{channel}", compute)


def location_with_calendar(location_id: int | None) -> Location | None:
    """One location with its opening hours and closures (cached, see above)."""
    if location_id is None:
        return None

    def compute():
        return locations_with_calendar(Location.objects.filter(pk=location_id)).first() or False

    return _reference_cached(f"location:{location_id}", compute) or None


def _warm_calendars(location_ids: Iterable[int]) -> None:
    """Load the calendars of these locations that are not cached yet in three queries in all,
    rather than three per location (every capped location's preparation day needs one)."""
    version = _reference_version()
    missing = [
        i for i in location_ids if local_cache.get(f"orders:ref:location:{i}:{version}") is None
    ]
    if not missing:
        return
    for location in locations_with_calendar(Location.objects.filter(pk__in=missing)):
        local_cache.set(f"orders:ref:location:{location.pk}:{version}", location, REFERENCE_TTL)


def _active_locations() -> list[dict]:
    return _reference_cached(
        "active-locations",
        lambda: list(Location.objects.filter(is_active=True).values(*_LOCATION_FIELDS)),
    )


def local_day(tz_name: str, at: datetime) -> date:
    import zoneinfo

    return at.astimezone(zoneinfo.ZoneInfo(tz_name)).date()


def preparation_day(location_id: int, tz_name: str, at: datetime) -> date:
    """The local day a location prepares an order placed `at`, which its daily capacity counts:
    the day it would have the order ready from its own stock, through its opening hours (an
    order placed after closing, or too late to be prepared today, counts on the next opening
    day). Lines coming by transfer do not move it."""
    location = location_with_calendar(location_id)
    ready = location_ready_by(location, at=at) if location else None
    return local_day(tz_name, ready or at)


def routing_candidates(
    *, sku_ids: Iterable[int], channel: str, at: datetime | None = None
) -> dict[int, routing.Candidate]:
    """Every active location with its available units of these SKUs and, where it is capped,
    the orders it can still take on the day it would prepare this one.

    Two queries (three when some location has a daily cap), whatever the number of locations;
    the capped locations' calendars are loaded together (three queries) once per process and
    reference-data version.
    """
    at = at or timezone.now()
    column = stock_column(channel)
    sku_ids = list(sku_ids)
    candidates: dict[int, routing.Candidate] = {}
    capped: dict[int, tuple[int, date]] = {}
    active = _active_locations()
    _warm_calendars(row["pk"] for row in active if row["daily_order_capacity"] is not None)
    for row in active:
        candidates[row["pk"]] = routing.Candidate(
            id=row["pk"],
            code=row["code"],
            kind=row["kind"],
            can_ship=row["kind"] == LocationKind.WAREHOUSE or row["ships_from_location"],
            allows_pickup=row["allows_pickup"],
            receives_transfers=row["receives_transfers"],
            priority=row["routing_priority"],
            latitude=float(row["latitude"]),
            longitude=float(row["longitude"]),
            transfer_days=row["transfer_days_to_stores"],
            capacity_left=row["daily_order_capacity"],
            capacity_cap=row["daily_order_capacity"],
            timezone=row["timezone"],
        )
        if row["daily_order_capacity"] is not None:
            day = preparation_day(row["pk"], row["timezone"], at)
            candidates[row["pk"]].capacity_day = day
            capped[row["pk"]] = (row["daily_order_capacity"], day)
    # Every location's positions of these SKUs (one index range per SKU); those of inactive
    # locations are skipped here rather than listing every active location's id in the query.
    rows = StockPosition.objects.filter(sku_id__in=sku_ids, **{f"{column}__gt": 0}).values_list(
        "location_id", "sku_id", column
    )
    for location_id, sku_id, units in rows if sku_ids else ():
        candidate = candidates.get(location_id)
        if candidate is not None:
            candidate.stock[sku_id] = units
    if capped:
        loads = LocationDayLoad.objects.filter(
            location_id__in=list(capped), day__in={day for _, day in capped.values()}
        ).values_list("location_id", "day", "orders")
        used = {(loc, day): n for loc, day, n in loads}
        for location_id, (cap, day) in capped.items():
            candidates[location_id].capacity_left = max(cap - used.get((location_id, day), 0), 0)
    return candidates


def pickup_store_check(location: Location | None, *, code: str = "") -> Location:
    """The store is known, active and offers click & collect (or a clear error)."""

    if location is None:
        raise UnknownLocation(f"No store with code {code!r}.", details={"store": [code]})
    if not location.is_active:
        raise StoreInactive(f"{location.code} is inactive.", details={"store": [location.code]})
    if not location.allows_pickup:
        raise PickupNotOffered(
            f"{location.code} does not offer click & collect.", details={"store": [location.code]}
        )
    return location


def pickup_store_get(*, code: str) -> Location:
    location = locations_with_calendar(Location.objects.filter(code=code)).first()
    return pickup_store_check(location, code=code)


def pickup_promise(
    location: Location, *, at: datetime, not_before: datetime | None = None
) -> datetime:
    ready = location_ready_by(location, at=at, not_before=not_before)
    if ready is None:
        raise StoreClosed(
            f"{location.code} has no opening in the coming weeks.",
            details={"store": [location.code]},
        )
    return ready


# ---- cart check ------------------------------------------------------------------------------


@dataclass
class CartCheck:
    store: Location
    can_collect: bool
    ready_by: datetime | None
    mode: str  # "in_store", "transfer", "unavailable" or "at_capacity"
    lines: list[dict] = field(default_factory=list)
    alternatives: list[dict] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def cart_check(
    *,
    store_code: str,
    lines: Sequence[tuple[int, str, int]],  # (sku_id, sku_code, quantity)
    channel: str,
    at: datetime | None = None,
    alternatives_limit: int = 5,
) -> CartCheck:
    """Can this cart be collected at this store, and when? With nearby stores that can serve the
    whole cart when the chosen one cannot at once."""
    at = at or timezone.now()
    store = pickup_store_get(code=store_code)
    needs = _needs(lines)
    candidates = routing_candidates(sku_ids={n.sku_id for n in needs}, channel=channel, at=at)
    pickup = candidates[store.pk]
    rules, protect = routing_rules_for(channel)
    plan = routing.route_pickup(
        needs, pickup, list(candidates.values()), rules=rules, protect_units=protect
    )
    per_line = [
        {
            "sku": n.sku_code,
            "requested": n.quantity,
            "available_here": pickup.stock.get(n.sku_id, 0),
            "in_store": pickup.stock.get(n.sku_id, 0) >= n.quantity,
        }
        for n in needs
    ]
    alternatives = _whole_cart_stores(candidates, needs, store, at, alternatives_limit)
    if pickup.capacity_left == 0:  # placing the order would be refused (store_at_capacity)
        return CartCheck(store, False, None, "at_capacity", per_line, alternatives)
    if not plan.ok:
        return CartCheck(store, False, None, "unavailable", per_line, alternatives)
    transfers = [a for a in plan.assignments if a.kind == "transfer"]
    not_before = None
    if transfers:
        days = max(a.location.transfer_days for a in transfers)
        not_before = at + timezone.timedelta(days=days)
    ready_by = pickup_promise(store, at=at, not_before=not_before)
    return CartCheck(
        store=store,
        can_collect=True,
        ready_by=ready_by,
        mode="transfer" if transfers else "in_store",
        lines=per_line,
        alternatives=alternatives if transfers else [],
        sources=[a.location.code for a in transfers],
    )


def _needs(lines: Sequence[tuple[int, str, int]]) -> list[routing.Need]:
    return [
        routing.Need(line=index, sku_id=sku_id, quantity=quantity, sku_code=code)
        for index, (sku_id, code, quantity) in enumerate(lines, start=1)
    ]


def _whole_cart_stores(candidates, needs, store, at, limit) -> list[dict]:
    """Pickup stores that hold every line now, nearest to the chosen store first."""
    able = [
        c
        for c in candidates.values()
        if c.allows_pickup
        and c.id != store.pk
        and (c.capacity_left is None or c.capacity_left > 0)
        and all(c.stock.get(n.sku_id, 0) >= n.quantity for n in needs)
    ]
    origin = (float(store.latitude), float(store.longitude))
    ranked = sorted(
        ((routing.distance_km(*origin, c.latitude, c.longitude), c) for c in able),
        key=lambda pair: (pair[0], pair[1].code),
    )[:limit]
    if not ranked:
        return []
    calendars = {
        loc.pk: loc
        for loc in locations_with_calendar(
            Location.objects.filter(pk__in=[c.id for _, c in ranked])
        )
    }
    result = []
    for km, candidate in ranked:
        location = calendars[candidate.id]
        ready = location_ready_by(location, at=at)
        if ready is None:
            continue
        result.append(
            {
                "store": location.code,
                "name": location.name,
                "distance_km": round(km, 2),
                "ready_by": ready,
            }
        )
    return result


# ---- orders ----------------------------------------------------------------------------------


def order_get(*, reference: str, channel: str | None = None) -> Order:
    """An order with everything its detail shows, in a fixed number of queries."""
    queryset = Order.objects.select_related("customer", "pickup_location").prefetch_related(
        "lines__sku",
        Prefetch(
            "allocations",
            queryset=Allocation.objects.select_related("location", "transfer").prefetch_related(
                Prefetch(
                    "lines",
                    queryset=AllocationLine.objects.select_related("order_line", "reservation"),
                )
            ),
        ),
        "routing_decisions",
        "events",
    )
    order = queryset.filter(reference=reference).first()
    if order is None:
        raise OrderNotFound.of_reference(reference)
    return order


BOARD_COLUMNS = {
    "to_prepare": [OrderStatus.ALLOCATED],
    "picking": [OrderStatus.PICKING],
    "ready": [OrderStatus.READY_FOR_PICKUP],
}


BOARD_VIEWS = ("today", "overdue", "all")


def pickup_board(
    *, location_id: int, now: datetime | None = None, show: str = "all"
) -> dict[str, list[Order]]:
    """A store's click & collect orders by column, for one of the BOARD_VIEWS:

    - `today`: what is due by tonight on the store's clock (late ones included), and every ready
      order (its customer may come at any time);
    - `overdue`: orders not ready by their promised time, and ready ones past their deadline;
    - `all`.

    The `overdue` column holds ready orders past their deadline (the expiry job cancels them).
    Each card is flagged `is_late` (not ready by its ready-by). `board["counts"]` gives the
    number of orders each view shows, for the filter tabs."""
    now = now or timezone.now()
    store_zone = zoneinfo.ZoneInfo(
        Location.objects.filter(pk=location_id).values_list("timezone", flat=True).get()
    )
    tonight = datetime.combine(
        now.astimezone(store_zone).date() + timedelta(days=1), clock_time.min, tzinfo=store_zone
    )
    orders = list(
        Order.objects.filter(
            pickup_location_id=location_id,
            status__in=[s for statuses in BOARD_COLUMNS.values() for s in statuses],
        )
        .select_related("customer")
        .prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.select_related("sku").order_by("line_no")),
            Prefetch(
                "allocations",
                queryset=Allocation.objects.select_related("location").prefetch_related(
                    Prefetch("lines", queryset=AllocationLine.objects.filter(is_active=True))
                ),
            ),
        )
        .order_by("ready_by", "pk")
    )
    views: dict[str, list[Order]] = {name: [] for name in BOARD_VIEWS}
    for order in orders:
        _board_card(order)
        ready = order.status == OrderStatus.READY_FOR_PICKUP
        order.is_late = not ready and order.ready_by is not None and order.ready_by < now
        order.is_past_deadline = (
            ready and order.pickup_deadline is not None and (order.pickup_deadline < now)
        )
        views["all"].append(order)
        if ready or order.ready_by is None or order.ready_by < tonight:
            views["today"].append(order)
        if order.is_late or order.is_past_deadline:
            views["overdue"].append(order)
    board: dict = {name: [] for name in [*BOARD_COLUMNS, "overdue"]}
    for order in views[show if show in views else "all"]:
        if order.is_past_deadline:
            board["overdue"].append(order)
            continue
        for name, statuses in BOARD_COLUMNS.items():
            if order.status in statuses:
                board[name].append(order)
    board["counts"] = {name: len(shown) for name, shown in views.items()}
    return board


def _board_card(order: Order) -> None:
    """What the associate needs on the card, from the prefetched rows (no query): each line
    (SKU, product, size, quantity, where it comes from) and the transfers still awaited."""
    sources: dict[int, list[str]] = {}
    order.awaited_transfers = []
    for allocation in order.allocations.all():
        if allocation.status == AllocationStatus.RELEASED:
            continue
        waiting = allocation.kind == AllocationKind.TRANSFER and allocation.status in (
            AllocationStatus.RESERVED,
            AllocationStatus.IN_TRANSIT,
        )
        if waiting:
            order.awaited_transfers.append(allocation)
        for line in allocation.lines.all():
            where = allocation.location.code
            sources.setdefault(line.order_line_id, []).append(
                _("%(quantity)s by transfer from %(location)s")
                % {"quantity": line.quantity, "location": where}
                if waiting
                else _("%(quantity)s here") % {"quantity": line.quantity}
            )
    order.card_lines = [
        {
            "line_no": line.line_no,
            "sku": line.sku.code,
            "name": line.sku.name,
            "size": (line.sku.attributes or {}).get("size", ""),
            "quantity": line.quantity,
            "from": ", ".join(sources.get(line.pk, [])),
        }
        for line in order.lines.all()
        if line.status == LineStatus.OPEN
    ]
    order.can_start_picking = order.status == OrderStatus.ALLOCATED and not order.awaited_transfers


def order_for_return(text: str) -> Order | None:
    """The order a return is for, from what staff type or scan: its reference, or the pickup
    QR payload (OMNISTOCK-PICKUP:<reference>:<code>) a handheld scanner types."""
    text = (text or "").strip()
    if text.upper().startswith(pickup.QR_PREFIX + ":"):
        text = text.split(":")[1] if text.count(":") == 2 else ""
    if not text:
        return None
    return Order.objects.filter(reference__iexact=text[:20]).first()


def returnable_lines(order: Order) -> list[OrderLine]:
    """The order's lines with units handed over and not returned yet (`returnable`)."""
    lines = list(order.lines.select_related("sku").order_by("line_no"))
    for line in lines:
        line.returnable = line.quantity - line.quantity_returned
    return [line for line in lines if line.returnable > 0]


def orders_for_locations(
    location_ids: Iterable[int], *, placed_since: datetime | None = None
) -> QuerySet[Order]:
    """Orders a store's staff may see: picked up there, or with an allocation there.
    `placed_since` (the KPIs' periods) keeps those placed since then — and reads only the
    allocations made since, as none predates its order's placement."""
    ids = list(location_ids)
    served = Allocation.objects.filter(location_id__in=ids)
    orders = Order.objects.all()
    if placed_since is not None:
        served = served.filter(created_at__gte=placed_since)
        orders = orders.filter(placed_at__gte=placed_since)
    return orders.filter(Q(pickup_location_id__in=ids) | Q(pk__in=served.values("order_id")))


def orders_list(
    *,
    channel: str | None = None,
    status: str | None = None,
    customer_id: int | None = None,
    location_id: int | None = None,
    placed_from: datetime | None = None,
    placed_to: datetime | None = None,
    staff_locations: Sequence[int] | None = None,
) -> QuerySet[Order]:
    """Orders, newest first, filtered (every filter optional, combined with AND). `location_id`
    is the pickup store or any location that serves the order (an allocation);
    `staff_locations` keeps a staff member's stores' orders (`orders_for_locations`). Each order
    comes with its customer, pickup store and `line_count`: a page is one query, whatever its
    size."""
    orders = Order.objects.select_related("customer", "pickup_location").annotate(
        line_count=Count("lines")
    )
    if staff_locations is not None:
        orders = orders.filter(pk__in=orders_for_locations(staff_locations).values("pk"))
    if channel:
        orders = orders.filter(channel=channel)
    if status:
        orders = orders.filter(status=status)
    if customer_id is not None:
        orders = orders.filter(customer_id=customer_id)
    if location_id is not None:
        serves = Allocation.objects.filter(order=OuterRef("pk"), location_id=location_id)
        orders = orders.filter(Q(pickup_location_id=location_id) | Q(Exists(serves)))
    if placed_from is not None:
        orders = orders.filter(placed_at__gte=placed_from)
    if placed_to is not None:
        orders = orders.filter(placed_at__lt=placed_to)
    return orders.order_by("-placed_at", "-pk")

"""Routing an order's needs to locations: reserve, take daily capacity, record allocations,
transfers and the routing decision. Used by placement and by re-routing after a rejection."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Subquery

from inventory import services as stock
from inventory.exceptions import InsufficientStock, LocationInactive
from inventory.models import (
    Reservation,
)
from inventory.services import ReservationRequest
from orders import routing, selectors
from orders.exceptions import (
    StoreAtCapacity,
    StoreInactive,
)
from orders.models import (
    Allocation,
    AllocationKind,
    AllocationLine,
    FulfilmentType,
    LocationDayLoad,
    Order,
    OrderEvent,
    OrderLine,
    PendingNotification,
    RoutingDecision,
)
from stores.models import Location
from stores.selectors import location_ready_by

ROUTING_ATTEMPTS = 3


def allocate(
    order: Order,
    needs: list[routing.Need],
    *,
    trigger: str,
    actor: str,
    at: datetime,
    pickup_store: Location | None,
    exclude: frozenset[int] = frozenset(),
    persist: Callable[[routing.RoutingPlan], NewOrderRows] | None = None,
) -> Allocated | None:
    """Route `needs`, reserve them (all or nothing) and record allocations and the decision.

    `persist(plan)` (a placement) fills in the order and returns its lines and events, unsaved,
    once the stock is reserved; they are written here with the allocations and the decision.
    Without it the order exists already (a re-routing).

    A reservation can lose a race between the read and the write: the router then runs again on
    fresh stock (up to ROUTING_ATTEMPTS), so the loser is routed elsewhere. Returns None (with
    `order._short` set) when no location can serve; nothing was reserved then.
    """
    rules, protect = selectors.routing_rules_for(order.channel)
    sku_ids = {n.sku_id for n in needs}
    attempts = []
    for attempt in range(1, ROUTING_ATTEMPTS + 1):
        candidates = selectors.routing_candidates(sku_ids=sku_ids, channel=order.channel, at=at)
        for location_id, _ in order.capacity_slots:
            if location_id in candidates:  # it prepares this order already: no new slot needed
                candidates[location_id].capacity_left = None
        started = time.perf_counter()
        plan = _route(
            order, needs, candidates, trigger=trigger, rules=rules, protect=protect, exclude=exclude
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        if not plan.ok:
            order._short = plan.short
            if trigger != "placement":
                decision_record(order, plan, trigger, elapsed_ms, attempts)
            return None
        plan.trigger = trigger
        try:
            reservations = _reserve(order, plan, candidates, trigger=trigger, actor=actor)
        except InsufficientStock as exc:
            attempts.append({"attempt": attempt, "lost_race": exc.details.get("lines", [])})
            continue
        except LocationInactive:  # the cached location list was stale: read it again
            selectors.reference_data_changed()
            attempts.append({"attempt": attempt, "lost_race": "location deactivated"})
            continue
        decision = decision_record(order, plan, trigger, elapsed_ms, attempts, save=persist is None)
        if persist is None:  # a re-routing: the order and its lines exist
            allocations = allocations_record(
                order, plan, reservations, actor=actor, at=at, pickup_store=pickup_store
            )
            return Allocated(plan=plan, allocations=allocations, decision=decision)
        # A placement: the order and every row it owns, its transfers too, are written together.
        new_rows = persist(plan)
        allocations = _new_allocations(order, plan, reservations, new_rows.lines)
        _insert_placement(order, new_rows, allocations, decision)
        _request_transfers(order, plan, allocations, actor=actor, at=at)
        return Allocated(plan=plan, allocations=allocations, decision=decision, new_rows=new_rows)
    order._short = [
        {"line": n.line, "sku": n.sku_code, "requested": n.quantity, "available": 0} for n in needs
    ]
    return None


def _route(
    order: Order,
    needs: list[routing.Need],
    candidates: dict[int, routing.Candidate],
    *,
    trigger: str,
    rules,
    protect,
    exclude: frozenset[int],
) -> routing.RoutingPlan:
    """The router's plan: click & collect around the pickup store, else home delivery from the
    best locations for the address."""
    if order.fulfilment != FulfilmentType.PICKUP:
        return routing.route_delivery(
            needs,
            list(candidates.values()),
            rules=rules,
            origin=(float(order.ship_latitude), float(order.ship_longitude)),
            protect_units=protect,
            exclude=exclude,
        )
    pickup_candidate = candidates.get(order.pickup_location_id)
    if pickup_candidate is None:
        raise StoreInactive(details={"store": [str(order.pickup_location_id)]})
    if pickup_candidate.capacity_left == 0 and trigger == "placement":
        raise StoreAtCapacity(
            f"{pickup_candidate.code} has reached its orders for that day.",
            details={"store": [pickup_candidate.code]},
        )
    return routing.route_pickup(
        needs,
        pickup_candidate,
        list(candidates.values()),
        rules=rules,
        protect_units=protect,
        exclude=exclude,
        local_allowed=order.pickup_location_id not in exclude,
    )


def _reserve(
    order: Order,
    plan: routing.RoutingPlan,
    candidates: dict[int, routing.Candidate],
    *,
    trigger: str,
    actor: str,
) -> list[Reservation]:
    """Reserve the plan's units (all or nothing) and take a daily slot at each capped location
    that prepares the order. The savepoint undoes the reservation when a capped location filled
    up meanwhile; with no cap to take, a refused reservation has written nothing (the ledger's
    own savepoint)."""
    capped = _capped_preparers(order, plan, candidates)
    with transaction.atomic() if capped else nullcontext():
        reservations = stock.reservations_create(
            requests=[
                ReservationRequest(sku_id=need.sku_id, location_id=a.location.id, quantity=units)
                for a in plan.assignments
                for need, units in a.lines
            ],
            idempotency_key=f"order:{order.reference}:{trigger}:{secrets.token_hex(6)}",
            channel=order.channel,
            reference=order.reference,
            ttl_seconds=0,
            actor=actor,
        )
        _consume_capacity(order, capped, candidates)
    return reservations


@dataclass
class NewOrderRows:
    lines: list[OrderLine]
    events: list[OrderEvent]
    notifications: list[PendingNotification]


@dataclass
class Allocated:
    plan: routing.RoutingPlan
    allocations: list[Allocation]
    decision: RoutingDecision
    new_rows: NewOrderRows | None = None  # a placement's order lines and events


class _CapacityRace(InsufficientStock):
    pass


def _is_reroute(plan: routing.RoutingPlan) -> bool:
    return plan.trigger != "placement"


def _consume_capacity(
    order: Order,
    capped: list[int],
    candidates: dict[int, routing.Candidate],
) -> None:
    """One more order on its preparation day at each capped location that prepares it
    (`capped`, from `_capped_preparers`); a location that filled up meanwhile makes the router
    run again."""
    # A re-routing to a location that already prepares this order takes no second slot, even if
    # the day it would count now is another (a line rejected in the evening).
    counted = {location_id for location_id, _ in order.capacity_slots}
    used = []
    for location_id in capped:  # primary-key order, like every lock in this project
        if location_id in counted:
            continue
        candidate = candidates[location_id]
        day = candidate.capacity_day  # set by routing_candidates for every capped location
        LocationDayLoad.objects.get_or_create(location_id=location_id, day=day)
        # The cap is read by the statement that takes the slot, not from the cached reference
        # data: a cap lowered in another process is enforced by the very next placement, and a
        # stale cache can only make the router's answer optimistic, never the count wrong.
        cap_now = Location.objects.filter(pk=location_id).values("daily_order_capacity")
        updated = LocationDayLoad.objects.filter(
            location_id=location_id, day=day, orders__lt=Subquery(cap_now)
        ).update(orders=F("orders") + 1)
        if not updated:
            if cap_now.values_list("daily_order_capacity", flat=True).first() != (
                candidate.capacity_cap
            ):  # the cached cap is stale, not just a lost race: read it again
                selectors.reference_data_changed()
            raise _CapacityRace(
                "The location reached its daily capacity meanwhile.",
                details={"lines": [], "capacity": [location_id]},
            )
        used.append([location_id, day.isoformat()])
    if used:  # only once every slot is taken: a lost race leaves the order as it was
        order.capacity_slots = [*order.capacity_slots, *used]
        if order.pk:  # a re-routing: a placement saves the order right after
            order.save(update_fields=["capacity_slots", "updated_at"])


def _capped_preparers(
    order: Order, plan: routing.RoutingPlan, candidates: dict[int, routing.Candidate]
) -> list[int]:
    """The capped locations that would count this order on their preparation day, in key
    order: the pickup store (it prepares the order, even lines that come by transfer; not again
    on a re-routing), or each shipping location."""
    if order.fulfilment == FulfilmentType.PICKUP:
        if _is_reroute(plan):
            return []  # the pickup store already counted this order when it was placed
        ids = {order.pickup_location_id}
    else:
        ids = {a.location.id for a in plan.assignments}
    return sorted(i for i in ids if candidates[i].capacity_cap is not None)


def capacity_return(order: Order) -> int:
    """Give back the daily slots an order counted in (cancelled before its preparation
    started: nobody did the work). Returns how many."""
    for location_id, day in sorted(order.capacity_slots):  # key order, as they were taken
        LocationDayLoad.objects.filter(location_id=location_id, day=day, orders__gt=0).update(
            orders=F("orders") - 1
        )
    returned = len(order.capacity_slots)
    if returned:
        order.capacity_slots = []
        order.save(update_fields=["capacity_slots", "updated_at"])
    return returned


def _new_allocations(
    order: Order,
    plan: routing.RoutingPlan,
    reservations: list[Reservation],
    order_lines: Sequence[OrderLine],
) -> list[Allocation]:
    """One allocation per assignment of the plan, with its lines (`loaded_lines`), unsaved.
    `reservations` come in the plan's order (assignment by assignment, line by line)."""
    lines = {line.line_no: line for line in order_lines}
    reservation_iter = iter(reservations)
    allocations = []
    for assignment in plan.assignments:
        allocation = Allocation(
            order=order,
            location=Location(pk=assignment.location.id, code=assignment.location.code),
            kind=assignment.kind,
        )
        allocation.loaded_lines = [
            AllocationLine(
                allocation=allocation,
                order_line=lines[need.line],
                quantity=units,
                reservation=next(reservation_iter),
            )
            for need, units in assignment.lines
        ]
        allocations.append(allocation)
    return allocations


def _save_allocations(allocations: list[Allocation]) -> None:
    Allocation.objects.bulk_create(allocations)
    AllocationLine.objects.bulk_create(
        [line for allocation in allocations for line in allocation.loaded_lines]
    )


def _transfer_assignments(plan: routing.RoutingPlan, allocations: list[Allocation]):
    """(assignment, allocation, its transfer's lines) for each `transfer` allocation."""
    for assignment, allocation in zip(plan.assignments, allocations, strict=True):
        if assignment.kind == AllocationKind.TRANSFER:
            yield assignment, allocation, [(need.sku_id, units) for need, units in assignment.lines]


def _request_transfers(
    order: Order,
    plan: routing.RoutingPlan,
    allocations: list[Allocation],
    *,
    actor: str,
    at: datetime,
) -> None:
    """The transfers that bring each new `transfer` allocation's units to the pickup store (one
    per allocation, keyed by it), at placement and at re-routing alike."""
    for assignment, allocation, lines in _transfer_assignments(plan, allocations):
        allocation.transfer = stock.transfer_request(
            source_id=assignment.location.id,
            destination_id=order.pickup_location_id,
            lines=lines,
            idempotency_key=f"order:{order.reference}:transfer:{allocation.pk}",
            reference=order.reference,
            actor=actor,
        )
        allocation.expected_at = at + timedelta(days=assignment.location.transfer_days)
        allocation.save(update_fields=["transfer", "expected_at"])


def allocations_record(
    order: Order,
    plan: routing.RoutingPlan,
    reservations: list[Reservation],
    *,
    actor: str,
    at: datetime,
    pickup_store: Location | None,
) -> list[Allocation]:
    """A re-routing's allocations, for an order that exists."""
    allocations = _new_allocations(order, plan, reservations, order.lines.all())
    _save_allocations(allocations)
    _request_transfers(order, plan, allocations, actor=actor, at=at)
    # A re-routing may push the promise later (a line now comes by transfer, or ships from a
    # slower location).
    promise = ready_by_promise(order, plan, at=at, store=pickup_store)
    if promise is not None:
        order.ready_by = max(order.ready_by, promise) if order.ready_by else promise
    order.save(update_fields=["ready_by", "delivery_expected_on", "updated_at"])
    return allocations


def _insert_placement(
    order: Order,
    new_rows: NewOrderRows,
    allocations: list[Allocation],
    decision: RoutingDecision,
) -> None:
    """Write a new order with its events, lines, allocations (and their lines), routing
    decision and the messages it owes: one INSERT per table."""
    order.save(force_insert=True)
    OrderEvent.objects.bulk_create(new_rows.events)
    OrderLine.objects.bulk_create(new_rows.lines)
    _save_allocations(allocations)
    decision.save(force_insert=True)
    PendingNotification.objects.bulk_create(new_rows.notifications)


def ready_by_promise(
    order: Order, plan: routing.RoutingPlan, *, at: datetime, store: Location | None
) -> datetime | None:
    """When the order is ready. Click & collect: the store's lead time in its opening hours,
    after the slowest transfer has arrived. Home delivery: when the slowest shipping location
    has prepared its parcel (its lead time in its opening hours); `order.delivery_expected_on`
    is then set to the latest arrival, that day plus the location's delivery days."""
    if order.fulfilment != FulfilmentType.PICKUP:
        return _delivery_promise(order, plan, at=at)
    store = store or selectors.location_with_calendar(order.pickup_location_id)
    arrivals = [
        at + timedelta(days=a.location.transfer_days)
        for a in plan.assignments
        if a.kind == AllocationKind.TRANSFER
    ]
    return selectors.pickup_promise(store, at=at, not_before=max(arrivals, default=None))


def _delivery_promise(order: Order, plan: routing.RoutingPlan, *, at: datetime) -> datetime | None:
    shipped_by, arrive_on = [], []
    for assignment in plan.assignments:
        location = selectors.location_with_calendar(assignment.location.id)
        # A location with no opening in the coming weeks was not a candidate; be safe anyway.
        ready = location_ready_by(location, at=at) or at
        shipped_by.append(ready)
        arrive_on.append(
            add_delivery_days(ready.astimezone(location.tz).date(), location.delivery_days)
        )
    if not shipped_by:
        return None
    latest = max(arrive_on)
    if order.delivery_expected_on is None or latest > order.delivery_expected_on:
        order.delivery_expected_on = latest
    return max(shipped_by)


def add_delivery_days(day: date, days: int) -> date:
    """`days` delivery days after `day`, counting Monday to Saturday (carriers rest on Sunday)."""
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() != 6:
            days -= 1
    return day


def decision_record(
    order: Order,
    plan: routing.RoutingPlan,
    trigger: str,
    elapsed_ms: float,
    attempts: list,
    *,
    save: bool = True,
) -> RoutingDecision:
    decision = RoutingDecision(
        order=order,
        trigger=trigger,
        rules=plan.rules,
        candidates=plan.candidates + ([{"lost_races": attempts}] if attempts else []),
        chosen=[
            {
                "location": a.location.code,
                "kind": a.kind,
                "lines": [
                    {"line": need.line, "sku": need.sku_code, "quantity": units}
                    for need, units in a.lines
                ],
            }
            for a in plan.assignments
        ],
        outcome=plan.outcome,
        note=plan.note[:255],
        duration_ms=Decimal(f"{elapsed_ms:.3f}"),
    )
    if save:
        decision.save()
    return decision

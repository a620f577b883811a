"""The one writer of stock: `stock_apply` (and `stock_apply_many`, its batched form).

Every stock service builds StockChanges and hands them to `stock_apply` inside an operation
(`operation_run`): one idempotent StockOperation per call, whose key makes a retry replay the
first result instead of moving stock twice. Nothing else in the project writes a StockPosition's
quantities or a StockMovement.

Concurrency (PostgreSQL, READ COMMITTED): an operation's own rows (its movements, reservations)
are inserted first; then the positions it touches are locked in one `SELECT … FOR NO KEY UPDATE`
in primary-key order (so two multi-line operations never deadlock), checked against their guard
in Python, and written with `F()` increments (one `bulk_update` past 8 positions). The locks are
held until the operation's transaction commits. On SQLite, writers are serialised by the
database itself. docs/inventory.md, "The one writer", says why in this order.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common.channels import is_online
from common.exceptions import IdempotencyKeyReused, InvalidInput
from common.idempotency import idempotency_key_check, request_fingerprint, run_once
from common.outbox import events_record
from inventory.exceptions import InsufficientStock, InvalidQuantity
from inventory.models import (
    AdjustmentReason,
    MovementKind,
    Quantities,
    StockCountLine,
    StockMovement,
    StockOperation,
    StockPosition,
    TillDiscrepancy,
)
from inventory.selectors import availability_changed
from stores.models import Location


class Guard(IntEnum):
    """What a change that removes units must respect. Higher is stricter."""

    NONE = 0  # the goods already left (a till sale): record, flag, never refuse
    ON_HAND = 1  # on_hand may not go below zero
    TILL = 2  # on_hand − reserved − unsellable may not go below zero
    ONLINE = 3  # … nor eat into the safety stock


def guard_for_channel(channel: str) -> Guard:
    """Online channels may not sell into the safety stock; a store till may."""
    return Guard.ONLINE if is_online(channel) else Guard.TILL


# Per-unit effect of each kind on (on_hand, reserved, unsellable, incoming): the one table the
# movement deltas come from.
KIND_EFFECTS: dict[str, Quantities] = {
    MovementKind.RECEIPT: Quantities(1, 0, 0, 0),
    MovementKind.SALE: Quantities(-1, 0, 0, 0),
    MovementKind.RETURN: Quantities(1, 0, 0, 0),
    MovementKind.UNSELLABLE_IN: Quantities(0, 0, 1, 0),
    MovementKind.UNSELLABLE_OUT: Quantities(0, 0, -1, 0),
    MovementKind.WRITE_OFF: Quantities(-1, 0, -1, 0),
    MovementKind.TRANSFER_OUT: Quantities(-1, 0, 0, 0),
    MovementKind.TRANSFER_INCOMING: Quantities(0, 0, 0, 1),
    MovementKind.TRANSFER_IN: Quantities(1, 0, 0, -1),
    MovementKind.TRANSFER_DISCREPANCY: Quantities(0, 0, 0, -1),
    MovementKind.RESERVE: Quantities(0, 1, 0, 0),
    MovementKind.RELEASE: Quantities(0, -1, 0, 0),
    MovementKind.COMMIT: Quantities(-1, -1, 0, 0),
    MovementKind.ADJUSTMENT: Quantities(1, 0, 0, 0),  # signed by the adjustment
}
# A return of damaged goods comes back on hand but unsellable.
RETURN_UNSELLABLE = Quantities(1, 0, 1, 0)

DEFAULT_GUARDS: dict[str, Guard] = {
    MovementKind.SALE: Guard.NONE,
    MovementKind.TRANSFER_OUT: Guard.TILL,
    MovementKind.UNSELLABLE_IN: Guard.TILL,
    MovementKind.WRITE_OFF: Guard.ON_HAND,
    MovementKind.ADJUSTMENT: Guard.ON_HAND,
    MovementKind.COMMIT: Guard.NONE,  # units were already held for this order
}


@dataclass(frozen=True)
class StockChange:
    """One change of one position, as asked by a service. Quantities are validated already."""

    sku_id: int
    location_id: int
    kind: str
    quantity: int
    delta: Quantities
    guard: Guard = Guard.NONE
    reason: str = ""
    reservation_id: int | None = None
    transfer_id: int | None = None
    note: str = ""
    occurred_at: datetime | None = None  # when it differs from the operation's


def change(
    kind: str,
    *,
    sku_id: int,
    location_id: int,
    quantity: int,
    guard: Guard | None = None,
    sign: int = 1,
    effects: Quantities | None = None,
    **extra,
) -> StockChange:
    """A StockChange of `quantity` units, its deltas from the kind's per-unit effects (or
    explicit `effects`), times `sign` (−1 for an adjustment down)."""
    per_unit = effects or KIND_EFFECTS[kind]
    return StockChange(
        sku_id=sku_id,
        location_id=location_id,
        kind=kind,
        quantity=quantity,
        delta=per_unit.times(sign * quantity),
        guard=DEFAULT_GUARDS.get(kind, Guard.ON_HAND) if guard is None else guard,
        **extra,
    )


@dataclass
class PositionOutcome:
    position_id: int
    sku_id: int
    location_id: int
    sku_code: str
    location_code: str
    before: Quantities
    after: Quantities
    safety_stock: int
    low_stock_threshold: int = 0
    safety_stock_before: int | None = None  # when the safety stock itself changed

    @property
    def available_before(self) -> int:
        safety = self.safety_stock if self.safety_stock_before is None else self.safety_stock_before
        return self.before.available(safety)

    @property
    def available_after(self) -> int:
        return self.after.available(self.safety_stock)

    @property
    def available_at_till_after(self) -> int:
        return self.after.available(0)


@dataclass
class ApplyResult:
    movements: list[StockMovement] = field(default_factory=list)
    outcomes: dict[int, PositionOutcome] = field(default_factory=dict)
    till_discrepancies: int = 0


@dataclass(frozen=True)
class OperationChanges:
    """One operation's share of a batched `stock_apply_many` call."""

    operation: StockOperation
    changes: Sequence[StockChange]
    occurred_at: datetime | None = None  # the till's clock, when it is not now


# ---- validation shared by services, API and admin ---------------------------------------------


def validate_quantity(value, *, field_name: str = "quantity", allow_zero: bool = False) -> int:
    """A whole number of units, > 0 (or ≥ 0), below the configured absurdity bound."""
    maximum = settings.OMNISTOCK["MAX_QUANTITY_PER_LINE"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidQuantity(
            f"{field_name} must be a whole number of units.",
            details={field_name: ["not an integer"]},
        )
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidQuantity(
            f"{field_name} must be greater than zero.", details={field_name: ["must be > 0"]}
        )
    if value > maximum:
        raise InvalidQuantity(
            f"{field_name} {value} is above the limit of {maximum} units.",
            details={field_name: [f"must be ≤ {maximum}"]},
        )
    return value


def merged_lines(
    lines: Iterable[tuple[int, int]], *, allow_zero: bool = False
) -> list[tuple[int, int]]:
    """(sku id, quantity) lines, validated, one per SKU (quantities of a SKU named twice add up)."""
    merged: dict[int, int] = defaultdict(int)
    for sku_id, quantity in lines:
        merged[sku_id] += validate_quantity(quantity, allow_zero=allow_zero)
    if not merged:
        raise InvalidInput("At least one line is needed.", details={"lines": ["empty"]})
    return list(merged.items())


# ---- operations: the unit of idempotency ------------------------------------------------------


def operation_new(
    *, kind: str, idempotency_key: str, params: dict, channel: str, actor: str, reference: str
) -> StockOperation:
    return StockOperation(
        idempotency_key=idempotency_key_check(idempotency_key),
        kind=kind,
        request_hash=request_fingerprint(kind, params),
        channel=channel,
        actor=actor[:150],
        reference=reference[:120],
    )


def _same_request(asked: StockOperation) -> Callable[[StockOperation], bool]:
    return lambda stored: stored.kind == asked.kind and stored.request_hash == asked.request_hash


def operation_run(
    *,
    kind: str,
    idempotency_key: str,
    params: dict,
    channel: str,
    actor: str,
    reference: str = "",
    body: Callable[[StockOperation], None],
) -> tuple[StockOperation, bool]:
    """Run `body` once per idempotency key, in one transaction. Returns (operation, replayed).

    The operation row is inserted first: a concurrent duplicate waits on its unique key for the
    first to commit, then replays its result (or is refused if it asked for something else)."""
    asked = operation_new(
        kind=kind,
        idempotency_key=idempotency_key,
        params=params,
        channel=channel,
        actor=actor,
        reference=reference,
    )

    def perform() -> StockOperation:
        asked.save(force_insert=True)
        body(asked)
        return asked

    operation, replayed = run_once(
        find=lambda: StockOperation.objects.filter(idempotency_key=asked.idempotency_key).first(),
        same_request=_same_request(asked),
        perform=perform,
        reused_message=(
            f"The idempotency key {asked.idempotency_key} was already used for a different "
            "stock change."
        ),
        key_first=True,
    )
    operation.replayed = replayed
    return operation, replayed


def operation_apply(
    *,
    kind: str,
    idempotency_key: str,
    params: dict,
    changes: Sequence[StockChange],
    channel: str,
    actor: str,
    reference: str = "",
    occurred_at: datetime | None = None,
) -> StockOperation:
    """An idempotent operation whose whole effect is `changes` (receipts, sales, returns…).
    A fresh one carries its ApplyResult in `applied`; a replay applied nothing."""

    def body(operation: StockOperation) -> None:
        operation.applied = stock_apply(
            operation=operation, changes=changes, occurred_at=occurred_at
        )

    operation, _ = operation_run(
        kind=kind,
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        reference=reference,
        params=params,
        body=body,
    )
    return operation


def operations_claim(operations: list[StockOperation]) -> list[StockOperation]:
    """Save many new operations at once (a till's backlog), each under its unique key. Returns
    them in order; one whose key exists already is the stored one, marked `replayed`, provided
    it was the same request (else IdempotencyKeyReused, for the whole batch).

    Must run in the caller's transaction. A concurrent batch that claims one of the same keys
    first makes this one fail with IntegrityError: the caller retries the batch, which then
    finds those keys (see `stock_sell_at_till_many`)."""
    keys = [operation.idempotency_key for operation in operations]
    stored = {
        op.idempotency_key: op for op in StockOperation.objects.filter(idempotency_key__in=keys)
    }
    # Inserted in key order: two overlapping batches wait on their common keys in one order.
    fresh = sorted(
        (operation for operation in operations if operation.idempotency_key not in stored),
        key=lambda operation: operation.idempotency_key,
    )
    StockOperation.objects.bulk_create(fresh)
    claimed = []
    for operation in operations:
        earlier = stored.get(operation.idempotency_key)
        if earlier is None:
            operation.replayed = False
            claimed.append(operation)
            continue
        if not _same_request(operation)(earlier):
            raise IdempotencyKeyReused(
                f"The idempotency key {operation.idempotency_key} was already used for a "
                "different stock change."
            )
        earlier.replayed = True
        claimed.append(earlier)
    return claimed


# ---- positions --------------------------------------------------------------------------------


@dataclass
class Position:
    """A stock position as the writer needs it: its ids, the codes its events and refusals
    name, and — once `positions_lock` read them under the lock — its quantities."""

    pk: int
    sku_id: int
    location_id: int
    sku_code: str
    location_code: str
    low_stock_threshold: int
    location_active: bool
    quantities: Quantities = field(default_factory=Quantities.zero)
    safety_stock: int = 0


def positions_of(pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], Position]:
    """The positions of these (sku id, location id) pairs, created when missing. Not locked:
    `stock_apply` locks them when it writes (rows inserted before, such as movements and
    reservations, only take a key-share lock on them)."""
    wanted = set(pairs)

    def read() -> dict[tuple[int, int], Position]:
        rows = StockPosition.objects.filter(
            sku_id__in={sku for sku, _ in wanted},
            location_id__in={location for _, location in wanted},
        ).values_list(
            "pk",
            "sku_id",
            "location_id",
            "sku__code",
            "location__code",
            "location__low_stock_threshold",
            "location__is_active",
        )
        return {(row[1], row[2]): Position(*row) for row in rows if (row[1], row[2]) in wanted}

    found = read()
    missing = wanted - found.keys()
    if missing:
        safety = dict(
            Location.objects.filter(pk__in={loc for _, loc in missing}).values_list(
                "pk", "safety_stock"
            )
        )
        StockPosition.objects.bulk_create(
            [
                StockPosition(sku_id=sku, location_id=loc, safety_stock=safety.get(loc, 0))
                for sku, loc in sorted(missing)
            ],
            ignore_conflicts=True,  # a concurrent operation may create the same position
        )
        found = read()
    return found


def positions_lock(positions: Iterable[Position]) -> None:
    """Lock the positions until the transaction ends and read their quantities: one
    `SELECT … FOR NO KEY UPDATE` in primary-key order, so two operations touching the same
    positions always queue in the same order and never deadlock. (NO KEY: the rows' foreign-key
    checks by other writers' movements and reservations do not wait.)"""
    by_pk = {position.pk: position for position in positions}
    rows = (
        StockPosition.objects.filter(pk__in=by_pk)
        .order_by("pk")
        .select_for_update(no_key=True)
        .values_list("pk", "on_hand", "reserved", "unsellable", "incoming", "safety_stock")
    )
    for pk, on_hand, reserved, unsellable, incoming, safety_stock in rows:
        by_pk[pk].quantities = Quantities(on_hand, reserved, unsellable, incoming)
        by_pk[pk].safety_stock = safety_stock


def _refused(before: Quantities, delta: Quantities, guard: Guard, safety_stock: int) -> bool:
    """Whether `delta` under `guard` would take more than the position holds."""
    after = before + delta
    # Buckets never go negative (the table's CHECKs would refuse too, with a worse message).
    if min(after.reserved, after.unsellable, after.incoming) < 0 and (
        delta.reserved < 0 or delta.unsellable < 0 or delta.incoming < 0
    ):
        return True
    if guard >= Guard.ON_HAND and delta.on_hand < 0 and after.on_hand < 0:
        return True
    if guard >= Guard.TILL and delta.sellable < 0:
        keep = safety_stock if guard == Guard.ONLINE else 0
        return after.sellable - keep < 0
    return False


def _insufficient(position: Position, delta: Quantities) -> InsufficientStock:
    held = position.quantities
    wanted = max(-delta.sellable, -delta.on_hand, 0)
    available = held.available(position.safety_stock)
    at_till = held.available(0)
    return InsufficientStock(
        f"Not enough stock of {position.sku_code} at {position.location_code}: "
        f"{wanted} wanted, {available} available online, {at_till} at the till.",
        details={
            "lines": [
                {
                    "sku": position.sku_code,
                    "location": position.location_code,
                    "requested": wanted,
                    "available": available,
                    "available_at_till": at_till,
                    "on_hand": held.on_hand,
                    "reserved": held.reserved,
                }
            ]
        },
    )


# ---- the writer -------------------------------------------------------------------------------


def stock_apply(
    *,
    operation: StockOperation,
    changes: Sequence[StockChange],
    occurred_at: datetime | None = None,
    positions: dict[tuple[int, int], Position] | None = None,
) -> ApplyResult:
    """Apply changes to positions and append their movements. The only writer of stock.

    Must run inside the operation's transaction (services call it from `operation_run`).
    Either every change applies or, when one position lacks stock, InsufficientStock is raised
    and the caller's transaction rolls everything back. `positions` may be passed when the
    caller looked them up already (`positions_of`).
    """
    return stock_apply_many(
        [OperationChanges(operation, changes, occurred_at)], positions=positions
    )[0]


def stock_apply_many(
    batch: Sequence[OperationChanges],
    *,
    positions: dict[tuple[int, int], Position] | None = None,
) -> list[ApplyResult]:
    """`stock_apply` for many operations in one transaction (a till's backlog, say).

    Each operation keeps its own movements; each position is written once, with the sum of
    every operation's deltas. Several operations may only carry changes that are never refused
    (Guard.NONE, e.g. till sales): a sum under one guard would not refuse what the operations
    one after the other would (a sale then a receipt). Each result's `outcomes` hold the touched
    positions before and after the whole batch.
    """
    if len(batch) > 1 and any(c.guard != Guard.NONE for item in batch for c in item.changes):
        raise ValueError("stock_apply_many batches only changes with Guard.NONE")
    batch = [
        dataclasses.replace(item, changes=[*item.changes, *absorbed])
        for item, absorbed in zip(batch, absorbed_by_later_counts(batch), strict=True)
    ]
    all_changes = [c for item in batch for c in item.changes]
    if not all_changes:
        return [ApplyResult() for _ in batch]
    if positions is None:
        positions = positions_of((c.sku_id, c.location_id) for c in all_changes)
    # Movements first: inserting them takes no lock that another writer waits for, so the
    # positions stay locked only for their update, the events and the commit.
    now = timezone.now()
    movements = StockMovement.objects.bulk_create(
        [
            StockMovement(
                operation=item.operation,
                position_id=positions[(c.sku_id, c.location_id)].pk,
                sku_id=c.sku_id,
                location_id=c.location_id,
                kind=c.kind,
                reason=c.reason,
                quantity=c.quantity,
                on_hand_delta=c.delta.on_hand,
                reserved_delta=c.delta.reserved,
                unsellable_delta=c.delta.unsellable,
                incoming_delta=c.delta.incoming,
                reservation_id=c.reservation_id,
                transfer_id=c.transfer_id,
                note=c.note[:255],
                occurred_at=c.occurred_at or item.occurred_at or now,
            )
            for item in batch
            for c in item.changes
        ]
    )
    outcomes = _positions_update(positions, all_changes)
    events_record(stock_events(outcomes.values()))
    # Any change of on hand, reserved or unsellable changes what some channel may sell.
    changed_skus = {o.sku_id for o in outcomes.values() if o.before.sellable != o.after.sellable}
    if changed_skus:
        transaction.on_commit(lambda: availability_changed(changed_skus))

    results = []
    movements_left = iter(movements)
    for item in batch:
        own_positions = {positions[(c.sku_id, c.location_id)].pk for c in item.changes}
        results.append(
            ApplyResult(
                movements=[next(movements_left) for _ in item.changes],
                outcomes={pk: outcomes[pk] for pk in own_positions},
            )
        )
    _flag_till_discrepancies(batch, results, positions)
    return results


def _positions_update(
    positions: dict[tuple[int, int], Position], changes: Sequence[StockChange]
) -> dict[int, PositionOutcome]:
    """Lock the positions, check every one's summed deltas against the strictest guard asked of
    it, then write them. Raises InsufficientStock, writing nothing, when one is refused."""
    totals: dict[int, Quantities] = defaultdict(Quantities.zero)
    guards: dict[int, Guard] = defaultdict(lambda: Guard.NONE)
    by_pk: dict[int, Position] = {}
    for c in changes:
        position = positions[(c.sku_id, c.location_id)]
        by_pk[position.pk] = position
        totals[position.pk] = totals[position.pk] + c.delta
        guards[position.pk] = max(guards[position.pk], c.guard)
    positions_lock(by_pk.values())

    outcomes: dict[int, PositionOutcome] = {}
    for pk in sorted(by_pk):
        position = by_pk[pk]
        before = position.quantities
        if _refused(before, totals[pk], guards[pk], position.safety_stock):
            raise _insufficient(position, totals[pk])
        position.quantities = before + totals[pk]
        outcomes[pk] = PositionOutcome(
            position_id=pk,
            sku_id=position.sku_id,
            location_id=position.location_id,
            sku_code=position.sku_code,
            location_code=position.location_code,
            before=before,
            after=position.quantities,
            safety_stock=position.safety_stock,
            low_stock_threshold=position.low_stock_threshold,
        )
    _positions_write({pk: totals[pk] for pk in sorted(by_pk)}, by_pk)
    return outcomes


# A till's backlog may touch hundreds of positions: past this many, one bulk_update (one
# statement, whose CASE expressions cost more to build than a few plain UPDATEs).
_ROWS_PER_PLAIN_UPDATE = 8


def _positions_write(deltas: dict[int, Quantities], by_pk: dict[int, Position]) -> None:
    """Write the new quantities of locked positions, in primary-key order."""
    now = timezone.now()
    if len(deltas) > _ROWS_PER_PLAIN_UPDATE:
        StockPosition.objects.bulk_update(
            [
                StockPosition(
                    pk=pk,
                    on_hand=by_pk[pk].quantities.on_hand,
                    reserved=by_pk[pk].quantities.reserved,
                    unsellable=by_pk[pk].quantities.unsellable,
                    incoming=by_pk[pk].quantities.incoming,
                    updated_at=now,
                )
                for pk in deltas
            ],
            ["on_hand", "reserved", "unsellable", "incoming", "updated_at"],
        )
        return
    for pk, delta in deltas.items():
        moved = (
            ("on_hand", delta.on_hand),
            ("reserved", delta.reserved),
            ("unsellable", delta.unsellable),
            ("incoming", delta.incoming),
        )
        increments = {name: F(name) + value for name, value in moved if value}
        StockPosition.objects.filter(pk=pk).update(**increments, updated_at=now)


def stock_events(outcomes: Iterable[PositionOutcome]) -> list[tuple[str, dict]]:
    """The outbox events a change of positions owes its subscribers:
    stock.available_changed (what online channels may sell changed), stock.low (it fell to
    the location's threshold) and stock.back_in_stock (it was 0 and is not any more)."""
    events = []
    for outcome in outcomes:
        before, after = outcome.available_before, outcome.available_after
        if before == after:
            continue
        threshold = outcome.low_stock_threshold
        payload = {
            "sku": outcome.sku_code,
            "location": outcome.location_code,
            "available": after,
            "available_before": before,
            "available_at_till": outcome.available_at_till_after,
            "on_hand": outcome.after.on_hand,
            "reserved": outcome.after.reserved,
            "unsellable": outcome.after.unsellable,
            "incoming": outcome.after.incoming,
            "low_stock_threshold": threshold,
        }
        events.append(("stock.available_changed", payload))
        if before > threshold >= after:
            events.append(("stock.low", payload))
        if before == 0 < after:
            events.append(("stock.back_in_stock", payload))
    return events


def absorbed_by_later_counts(batch: Sequence[OperationChanges]) -> list[list[StockChange]]:
    """Compensations, per operation, for on-hand changes dated before a count already recorded.

    A count is the physical truth at its time: it already saw (or missed) what happened before
    it. A sale or return rung up before a count but received after it (a till replaying its
    backlog), or an older count received after a newer one, must not move the stock the newer
    count established. Each such change is recorded as it happened, with an opposite adjustment
    dated at the first later count: the ledger at and after that count is what the count said,
    whatever the order in which events arrived. Only changes dated in the past (`occurred_at`
    given) are looked at; one query serves the whole batch.
    """
    dated = [
        (index, item.occurred_at, c)
        for index, item in enumerate(batch)
        if item.occurred_at is not None
        for c in item.changes
        if c.delta.on_hand
    ]
    compensations: list[list[StockChange]] = [[] for _ in batch]
    if not dated:
        return compensations
    rows = (
        StockCountLine.objects.filter(
            count__location_id__in={c.location_id for _, _, c in dated},
            sku_id__in={c.sku_id for _, _, c in dated},
            count__counted_at__gt=min(occurred_at for _, occurred_at, _ in dated),
        )
        .values_list("count__location_id", "sku_id", "count__counted_at")
        .distinct()
    )
    count_times: dict[tuple[int, int], list[datetime]] = defaultdict(list)
    for location_id, sku_id, counted_at in rows:
        count_times[(location_id, sku_id)].append(counted_at)
    for index, occurred_at, c in dated:
        later = [t for t in count_times.get((c.location_id, c.sku_id), ()) if t > occurred_at]
        if not later:
            continue
        counted_at = min(later)
        compensations[index].append(
            change(
                MovementKind.ADJUSTMENT,
                sku_id=c.sku_id,
                location_id=c.location_id,
                quantity=abs(c.delta.on_hand),
                sign=-1 if c.delta.on_hand > 0 else 1,
                reason=AdjustmentReason.COUNT,
                guard=Guard.NONE,
                note=f"absorbed by the count of {counted_at.isoformat()}",
                occurred_at=counted_at,
            )
        )
    return compensations


def _flag_till_discrepancies(
    batch: Sequence[OperationChanges],
    results: list[ApplyResult],
    positions: dict[tuple[int, int], Position],
) -> None:
    """Flag till sales the ledger thinks impossible: on hand, or what is sellable, below zero
    once the sale's operation applied (operation by operation, in batch order)."""
    running = {pk: outcome.before for result in results for pk, outcome in result.outcomes.items()}
    flagged = []
    for item, result in zip(batch, results, strict=True):
        for c in item.changes:
            pk = positions[(c.sku_id, c.location_id)].pk
            running[pk] = running[pk] + c.delta
        for c, movement in zip(item.changes, result.movements, strict=True):
            if c.kind != MovementKind.SALE:
                continue
            pk = positions[(c.sku_id, c.location_id)].pk
            held = running[pk]
            if held.on_hand < 0 or held.sellable < 0:
                result.till_discrepancies += 1
                flagged.append(
                    (
                        result.outcomes[pk],
                        TillDiscrepancy(
                            movement=movement,
                            on_hand_after=held.on_hand,
                            sellable_after=held.sellable,
                        ),
                    )
                )
    if not flagged:
        return
    TillDiscrepancy.objects.bulk_create([discrepancy for _, discrepancy in flagged])
    events_record(
        [
            (
                "stock.till_discrepancy",
                {
                    "sku": outcome.sku_code,
                    "location": outcome.location_code,
                    "movement": discrepancy.movement.pk,
                    "on_hand": discrepancy.on_hand_after,
                    "sellable": discrepancy.sellable_after,
                },
            )
            for outcome, discrepancy in flagged
        ]
    )

"""Every stock change goes through here.

`stock_apply` is the only code that writes StockPosition quantities and StockMovement rows. The
public services below (receive, adjust, count, sell, return, reserve, release, commit, transfer)
build the changes, and each call is one idempotent StockOperation: the same key twice applies once
and returns the first result; the same key with different arguments is refused.

Concurrency (PostgreSQL, READ COMMITTED): a position row is locked by the conditional
`UPDATE … WHERE <enough stock> RETURNING …` itself, so the check and the write are one atomic step
and the lock is held only from that UPDATE to COMMIT. Rows are updated in primary-key order, so
two multi-line operations can never deadlock. On SQLite, writers are serialised by the database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone
from rest_framework.utils.encoders import JSONEncoder

from common import sql
from common.channels import SalesChannel, is_online
from common.exceptions import IdempotencyKeyReused, InvalidInput
from integrations.models import OutboxEvent
from integrations.services import events_record, outbox_notify
from inventory.exceptions import (
    InsufficientStock,
    InvalidQuantity,
    LocationInactive,
    ReservationNotOpen,
    TransferStateError,
)
from inventory.models import (
    AdjustmentReason,
    MovementKind,
    Reservation,
    ReservationStatus,
    Sku,
    StockCount,
    StockCountLine,
    StockMovement,
    StockOperation,
    StockPosition,
    TillDiscrepancy,
    Transfer,
    TransferLine,
    TransferStatus,
)
from inventory.selectors import availability_changed
from stores.models import Location


class Guard(IntEnum):
    """What a change that removes units must respect. Higher is stricter."""

    NONE = 0  # the goods already left (a till sale): record, flag, never refuse
    ON_HAND = 1  # on_hand may not go below zero
    TILL = 2  # on_hand − reserved − unsellable may not go below zero
    ONLINE = 3  # … nor eat into the safety stock


# Per-unit effect of each kind on (on_hand, reserved, unsellable, incoming).
KIND_EFFECTS: dict[str, tuple[int, int, int, int]] = {
    MovementKind.RECEIPT: (1, 0, 0, 0),
    MovementKind.SALE: (-1, 0, 0, 0),
    MovementKind.RETURN: (1, 0, 0, 0),
    MovementKind.UNSELLABLE_IN: (0, 0, 1, 0),
    MovementKind.UNSELLABLE_OUT: (0, 0, -1, 0),
    MovementKind.WRITE_OFF: (-1, 0, -1, 0),
    MovementKind.TRANSFER_OUT: (-1, 0, 0, 0),
    MovementKind.TRANSFER_INCOMING: (0, 0, 0, 1),
    MovementKind.TRANSFER_IN: (1, 0, 0, -1),
    MovementKind.TRANSFER_DISCREPANCY: (0, 0, 0, -1),
    MovementKind.RESERVE: (0, 1, 0, 0),
    MovementKind.RELEASE: (0, -1, 0, 0),
    MovementKind.COMMIT: (-1, -1, 0, 0),
}

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
    on_hand: int = 0
    reserved: int = 0
    unsellable: int = 0
    incoming: int = 0
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
    effects: tuple[int, int, int, int] | None = None,
    **extra,
) -> StockChange:
    """Build a StockChange from a kind's per-unit effects (or explicit `effects` per unit)."""
    on_hand, reserved, unsellable, incoming = effects or KIND_EFFECTS.get(kind, (sign, 0, 0, 0))
    return StockChange(
        sku_id=sku_id,
        location_id=location_id,
        kind=kind,
        quantity=quantity,
        on_hand=on_hand * quantity,
        reserved=reserved * quantity,
        unsellable=unsellable * quantity,
        incoming=incoming * quantity,
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
    before: tuple[int, int, int, int]
    after: tuple[int, int, int, int]
    safety_stock: int

    @staticmethod
    def _available(quantities: tuple[int, int, int, int], safety: int) -> int:
        on_hand, reserved, unsellable, _ = quantities
        return max(on_hand - reserved - unsellable - safety, 0)

    @property
    def available_before(self) -> int:
        return self._available(self.before, self.safety_stock)

    @property
    def available_after(self) -> int:
        return self._available(self.after, self.safety_stock)

    @property
    def available_at_till_after(self) -> int:
        return self._available(self.after, 0)


@dataclass
class ApplyResult:
    movements: list[StockMovement] = field(default_factory=list)
    outcomes: dict[int, PositionOutcome] = field(default_factory=dict)
    till_discrepancies: int = 0


# --------------------------------------------------------------------------------------------
# Validation helpers (shared by services, API and admin)
# --------------------------------------------------------------------------------------------


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


# Keys are stored in 255-character columns, some with a suffix ("<key>#<line>" per reservation).
MAX_IDEMPOTENCY_KEY_LENGTH = 240


def _check_idempotency_key(key: str) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput(
            "Every stock change needs an idempotency key.",
            details={"idempotency_key": ["required"]},
        )
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(
            f"The idempotency key is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters.",
            details={"idempotency_key": ["too long"]},
        )
    return key


def _fingerprint(kind: str, params: dict) -> str:
    canonical = json.dumps([kind, params], sort_keys=True, cls=JSONEncoder, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# The one entry point
# --------------------------------------------------------------------------------------------


def _run_operation(
    *,
    kind: str,
    idempotency_key: str,
    params: dict,
    channel: str,
    actor: str,
    reference: str,
    body: Callable[[StockOperation], None],
) -> tuple[StockOperation, bool]:
    """Run `body` once per idempotency key, in one transaction. Returns (operation, replayed)."""
    operation = StockOperation(
        idempotency_key=_check_idempotency_key(idempotency_key),
        kind=kind,
        request_hash=_fingerprint(kind, params),
        channel=channel,
        actor=actor[:150],
        reference=reference[:120],
    )
    with transaction.atomic():
        # The unique key is inserted first: a concurrent duplicate waits here for the first to
        # commit, then finds it and replays its result (or is refused if it asked otherwise).
        (operation,) = _operations_insert([operation])
        if not operation.replayed:
            body(operation)
    return operation, operation.replayed


def _apply_operation(
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
    """An idempotent operation whose whole effect is `changes` (receipts, sales, returns…)."""
    operation, replayed = _run_operation(
        kind=kind,
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        reference=reference,
        params=params,
        body=lambda op: setattr(
            op, "applied", stock_apply(operation=op, changes=changes, occurred_at=occurred_at)
        ),
    )
    operation.replayed = replayed  # a replay has no `applied`: nothing was applied this time
    return operation


@dataclass(frozen=True)
class OperationChanges:
    """One operation's share of a batched `stock_apply_many` call."""

    operation: StockOperation
    changes: Sequence[StockChange]
    occurred_at: datetime | None = None  # the till's clock, when it is not now


def stock_apply(
    *,
    operation: StockOperation,
    changes: Sequence[StockChange],
    occurred_at: datetime | None = None,
    positions: dict[tuple[int, int], dict] | None = None,
) -> ApplyResult:
    """Apply changes to positions and append their movements. The only writer of stock.

    Must run inside the operation's transaction (services call it from `_run_operation`). Either
    every change applies or, when one position lacks stock, InsufficientStock is raised and the
    caller's transaction rolls everything back. `positions` may be passed when the caller already
    looked them up with `_positions_for`.
    """
    return stock_apply_many(
        [OperationChanges(operation, changes, occurred_at)], positions=positions
    )[0]


def stock_apply_many(
    batch: Sequence[OperationChanges],
    *,
    positions: dict[tuple[int, int], dict] | None = None,
) -> list[ApplyResult]:
    """`stock_apply` for many operations in one transaction (a till's backlog, say).

    Each operation keeps its own movements; each position is updated once, by the sum of every
    operation's deltas, so a batch costs a few statements instead of a few per operation. All or
    nothing, like one operation. Several operations may only carry changes that are never
    refused (Guard.NONE, e.g. till sales): a sum under one guard would not refuse what the
    operations one after the other would. Each result's `outcomes` hold the touched positions
    before and after the whole batch.
    """
    if len(batch) > 1 and any(c.guard != Guard.NONE for item in batch for c in item.changes):
        # Summed deltas under one guard would not refuse what the operations one after the other
        # would (a sale then a receipt, an adjustment then a receipt): batches are for changes
        # that are never refused, such as till sales.
        raise ValueError("stock_apply_many batches only changes with Guard.NONE")
    batch = [
        dataclasses.replace(item, changes=[*item.changes, *absorbed])
        for item, absorbed in zip(batch, _absorbed_by_later_counts(batch), strict=True)
    ]
    all_changes = [c for item in batch for c in item.changes]
    if not all_changes:
        return [ApplyResult() for _ in batch]
    now = timezone.now()
    positions = positions or _positions_for(all_changes)

    # Movements first: inserting them takes no lock on the hot position row.
    movements = _movements_insert(
        [
            StockMovement(
                operation=item.operation,
                position_id=positions[(c.sku_id, c.location_id)]["id"],
                sku_id=c.sku_id,
                location_id=c.location_id,
                kind=c.kind,
                reason=c.reason,
                quantity=c.quantity,
                on_hand_delta=c.on_hand,
                reserved_delta=c.reserved,
                unsellable_delta=c.unsellable,
                incoming_delta=c.incoming,
                reservation_id=c.reservation_id,
                transfer_id=c.transfer_id,
                note=c.note[:255],
                occurred_at=c.occurred_at or item.occurred_at or now,
                created_at=now,
            )
            for item in batch
            for c in item.changes
        ]
    )

    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])  # 4 deltas + guard
    for c in all_changes:
        total = totals[positions[(c.sku_id, c.location_id)]["id"]]
        total[0] += c.on_hand
        total[1] += c.reserved
        total[2] += c.unsellable
        total[3] += c.incoming
        total[4] = max(total[4], c.guard)

    by_id = {info["id"]: info for info in positions.values()}
    outcomes: dict[int, PositionOutcome] = {}
    events_written = 0
    for position_id, row in _update_positions(by_id, totals):
        deltas = totals[position_id]
        info = by_id[position_id]
        after = tuple(row[:4])
        events_written += row[5]
        outcomes[position_id] = PositionOutcome(
            position_id=position_id,
            sku_id=info["sku_id"],
            location_id=info["location_id"],
            sku_code=info["sku__code"],
            location_code=info["location__code"],
            before=tuple(a - d for a, d in zip(after, deltas[:4], strict=True)),
            after=after,
            safety_stock=row[4],
        )
    if events_written:
        outbox_notify()
    # Any change of on hand, reserved or unsellable changes what some channel may sell.
    changed_skus = {
        outcome.sku_id for outcome in outcomes.values() if outcome.before[:3] != outcome.after[:3]
    }
    if changed_skus:
        transaction.on_commit(lambda: availability_changed(changed_skus))

    results = []
    movements_left = iter(movements)
    for item in batch:
        own_movements = [next(movements_left) for _ in item.changes]
        own_positions = {positions[(c.sku_id, c.location_id)]["id"] for c in item.changes}
        results.append(
            ApplyResult(
                movements=own_movements,
                outcomes={pid: outcomes[pid] for pid in own_positions},
            )
        )
    _flag_till_discrepancies(batch, results, positions)
    return results


# Rows per multi-row INSERT: SQLite builds commonly allow 32,766 parameters per statement.
_ROWS_PER_INSERT = 1000


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_MOVEMENT_COLUMNS = (
    "operation_id",
    "position_id",
    "sku_id",
    "location_id",
    "kind",
    "reason",
    "quantity",
    "on_hand_delta",
    "reserved_delta",
    "unsellable_delta",
    "incoming_delta",
    "reservation_id",
    "transfer_id",
    "note",
    "occurred_at",
    "created_at",
)


def _movements_insert(movements: list[StockMovement]) -> list[StockMovement]:
    """Append movements in one INSERT … RETURNING id (what `bulk_create` does, without
    compiling the ORM statement: the ledger's hottest write)."""
    adapt = connection.ops.adapt_datetimefield_value
    row = "(" + ", ".join(["%s"] * len(_MOVEMENT_COLUMNS)) + ")"
    ids = []
    with connection.cursor() as cursor:
        for chunk in _chunks(movements, _ROWS_PER_INSERT):
            params = []
            for movement in chunk:
                params.extend(getattr(movement, column) for column in _MOVEMENT_COLUMNS[:-2])
                params.extend((adapt(movement.occurred_at), adapt(movement.created_at)))
            cursor.execute(
                f"INSERT INTO {StockMovement._meta.db_table} ({', '.join(_MOVEMENT_COLUMNS)}) "  # noqa: S608
                f"VALUES {', '.join([row] * len(chunk))} RETURNING id",
                params,
            )
            ids.extend(pk for (pk,) in cursor.fetchall())
    for movement, pk in zip(movements, ids, strict=True):
        movement.pk = pk
        movement._state.adding = False
    return movements


def _absorbed_by_later_counts(batch: Sequence[OperationChanges]) -> list[list[StockChange]]:
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
        if c.on_hand
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
    if not count_times:
        return compensations
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
                quantity=abs(c.on_hand),
                sign=-1 if c.on_hand > 0 else 1,
                reason=AdjustmentReason.COUNT,
                guard=Guard.NONE,
                note=f"absorbed by the count of {counted_at.isoformat()}",
                occurred_at=counted_at,
            )
        )
    return compensations


_POSITION_INFO = (
    "id",
    "sku_id",
    "location_id",
    "sku__code",
    "location__code",
    "location__low_stock_threshold",
    "location__is_active",
)
_POSITIONS_SQL = (
    "SELECT p.id, p.sku_id, p.location_id, s.code, l.code, l.low_stock_threshold, l.is_active "  # noqa: S608
    f"FROM {StockPosition._meta.db_table} p "
    f"JOIN {Sku._meta.db_table} s ON s.id = p.sku_id "
    f"JOIN {Location._meta.db_table} l ON l.id = p.location_id "
    "WHERE p.sku_id IN ({skus}) AND p.location_id IN ({locations})"
)


def _positions_for(changes: Iterable[StockChange]) -> dict[tuple[int, int], dict]:
    """Position ids (created when missing) with what events and checks need, in one query."""
    pairs = {(c.sku_id, c.location_id) for c in changes}
    wanted_skus = {sku for sku, _ in pairs}
    wanted_locations = {loc for _, loc in pairs}

    def fetch() -> dict[tuple[int, int], dict]:
        # Raw SQL: every stock change runs this, and compiling the ORM query cost several times
        # what PostgreSQL takes to answer it.
        skus, locations = sorted(wanted_skus), sorted(wanted_locations)
        with connection.cursor() as cursor:
            cursor.execute(
                _POSITIONS_SQL.format(
                    skus=", ".join(["%s"] * len(skus)), locations=", ".join(["%s"] * len(locations))
                ),
                [*skus, *locations],
            )
            rows = cursor.fetchall()
        return {
            (row[1], row[2]): dict(zip(_POSITION_INFO, row, strict=True))
            for row in rows
            if (row[1], row[2]) in pairs
        }

    found = fetch()
    missing = pairs - found.keys()
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
        found = fetch()
    return found


_POSITION_TABLE = StockPosition._meta.db_table
_OUTBOX_TABLE = OutboxEvent._meta.db_table

# The stock event rules, in SQL so that on PostgreSQL the position UPDATE and its outbox INSERT
# are ONE statement: the hot row's lock is then held for that statement and the COMMIT only.
# `calc` exposes the position after the change and `available_before`; `sku`, `location` and
# `threshold` are SQL expressions (parameters for one position, columns for a set).
_EVENT_TOPICS_SQL = (
    "(SELECT 'stock.available_changed' AS topic UNION ALL SELECT 'stock.low' "
    "UNION ALL SELECT 'stock.back_in_stock')"
)


def _event_insert_sql(json_object: str, *, sku: str, location: str, threshold: str) -> str:
    payload = (
        f"{json_object}('sku', {sku}, 'location', {location}, "
        "'available', calc.available, "
        "'available_before', calc.available_before, 'available_at_till', calc.available_at_till, "
        "'on_hand', calc.on_hand, 'reserved', calc.reserved, 'unsellable', calc.unsellable, "
        f"'incoming', calc.incoming, 'low_stock_threshold', {threshold})"
    )
    condition = (
        "CASE topics.topic "
        "WHEN 'stock.available_changed' THEN calc.available_before <> calc.available "
        f"WHEN 'stock.low' THEN calc.available_before > {threshold} "
        f"AND calc.available <= {threshold} "
        "ELSE calc.available_before = 0 AND calc.available > 0 END"
    )
    return (
        f"INSERT INTO {_OUTBOX_TABLE} (topic, payload, occurred_at) "  # noqa: S608
        f"SELECT topics.topic, {payload}, %(now)s FROM calc CROSS JOIN {_EVENT_TOPICS_SQL} topics "
        f"WHERE {condition}"
    )


_ONE_POSITION_EVENTS = {
    "sku": "CAST(%(sku)s AS TEXT)",
    "location": "CAST(%(location)s AS TEXT)",
    "threshold": "CAST(%(threshold)s AS INTEGER)",
}


def _calc_sql(source: str, greatest: str, *, extra: str = "") -> str:
    return (
        f"SELECT {extra}on_hand, reserved, unsellable, incoming, safety_stock, "  # noqa: S608
        f"{greatest}(on_hand - reserved - unsellable - safety_stock, 0) AS available, "
        f"{greatest}(on_hand - reserved - unsellable, 0) AS available_at_till, "
        f"{greatest}((on_hand - %(d_on_hand)s) - (reserved - %(d_reserved)s) "
        f"- (unsellable - %(d_unsellable)s) - safety_stock, 0) AS available_before FROM {source}"
    )


# Many positions in one statement (PostgreSQL): the deltas arrive as arrays, one element per
# position; the WHERE repeats `_update_position`'s guards row by row, so a position whose guard
# refuses is simply not returned.
_SET_UPDATE_SQL = (
    "WITH d AS (SELECT * FROM unnest(CAST(%(ids)s AS bigint[]), "  # noqa: S608
    "CAST(%(d_on_hand)s AS integer[]), CAST(%(d_reserved)s AS integer[]), "
    "CAST(%(d_unsellable)s AS integer[]), CAST(%(d_incoming)s AS integer[]), "
    "CAST(%(guard)s AS integer[]), CAST(%(sku)s AS text[]), CAST(%(location)s AS text[]), "
    "CAST(%(threshold)s AS integer[])) "
    "AS d(id, d_on_hand, d_reserved, d_unsellable, d_incoming, guard, sku, location, threshold)), "
    f"updated AS (UPDATE {_POSITION_TABLE} AS p SET on_hand = p.on_hand + d.d_on_hand, "
    "reserved = p.reserved + d.d_reserved, unsellable = p.unsellable + d.d_unsellable, "
    "incoming = p.incoming + d.d_incoming, updated_at = %(now)s FROM d WHERE p.id = d.id "
    "AND (d.d_reserved >= 0 OR p.reserved + d.d_reserved >= 0) "
    "AND (d.d_unsellable >= 0 OR p.unsellable + d.d_unsellable >= 0) "
    "AND (d.d_incoming >= 0 OR p.incoming + d.d_incoming >= 0) "
    f"AND (d.guard < {int(Guard.ON_HAND)} OR d.d_on_hand >= 0 OR p.on_hand + d.d_on_hand >= 0) "
    f"AND (d.guard < {int(Guard.TILL)} OR d.d_on_hand - d.d_reserved - d.d_unsellable >= 0 "
    "OR p.on_hand - p.reserved - p.unsellable "
    f"- CASE WHEN d.guard = {int(Guard.ONLINE)} THEN p.safety_stock ELSE 0 END "
    "+ d.d_on_hand - d.d_reserved - d.d_unsellable >= 0) "
    "RETURNING p.id, p.on_hand, p.reserved, p.unsellable, p.incoming, p.safety_stock, "
    "d.d_on_hand, d.d_reserved, d.d_unsellable, d.sku, d.location, d.threshold), "
    "calc AS (SELECT id, sku, location, threshold, on_hand, reserved, unsellable, incoming, "
    "safety_stock, GREATEST(on_hand - reserved - unsellable - safety_stock, 0) AS available, "
    "GREATEST(on_hand - reserved - unsellable, 0) AS available_at_till, "
    "GREATEST((on_hand - d_on_hand) - (reserved - d_reserved) - (unsellable - d_unsellable) "
    "- safety_stock, 0) AS available_before FROM updated), "
    "events AS ("
    + _event_insert_sql(
        "jsonb_build_object", sku="calc.sku", location="calc.location", threshold="calc.threshold"
    )
    + " RETURNING 1) SELECT id, on_hand, reserved, unsellable, incoming, safety_stock, "
    "(SELECT count(*) FROM events) FROM calc"
)


def _update_positions(
    by_id: dict[int, dict], totals: dict[int, list[int]]
) -> Iterable[tuple[int, tuple]]:
    """Apply each position's summed deltas (4 deltas + guard), in primary-key order.

    Yields (position id, row) as `_update_position` returns it; raises InsufficientStock for the
    first position whose guard refused (the caller's transaction then rolls back the others).
    On PostgreSQL, several positions are locked in primary-key order by one SELECT … FOR UPDATE,
    then changed, with their stock events, by one set-based statement.
    """
    ordered = sorted(totals)
    if connection.vendor != "postgresql" or len(ordered) == 1:
        for position_id in ordered:
            deltas = totals[position_id]
            row = _update_position(by_id[position_id], deltas[:4], Guard(deltas[4]))
            if row is None:
                _raise_insufficient(by_id[position_id], deltas)
            yield position_id, row
        return
    columns = list(zip(*([pid, *totals[pid]] for pid in ordered), strict=True))
    params = {
        "ids": list(columns[0]),
        "d_on_hand": list(columns[1]),
        "d_reserved": list(columns[2]),
        "d_unsellable": list(columns[3]),
        "d_incoming": list(columns[4]),
        "guard": list(columns[5]),
        "sku": [by_id[pid]["sku__code"] for pid in ordered],
        "location": [by_id[pid]["location__code"] for pid in ordered],
        "threshold": [by_id[pid]["location__low_stock_threshold"] for pid in ordered],
        "now": timezone.now(),
    }
    with connection.cursor() as cursor:
        # Locks first, in key order (the lock an UPDATE takes): two batches (or a batch and
        # single-row updates, which go in key order too) never wait on each other in a cycle.
        cursor.execute(
            f"SELECT id FROM {_POSITION_TABLE} WHERE id = ANY(%(ids)s) "  # noqa: S608
            "ORDER BY id FOR NO KEY UPDATE",
            params,
        )
        cursor.execute(_SET_UPDATE_SQL, params)
        rows = {row[0]: row[1:] for row in cursor.fetchall()}
    for position_id in ordered:
        if position_id not in rows:
            _raise_insufficient(by_id[position_id], totals[position_id])
    events_written = next(iter(rows.values()))[5] if rows else 0
    for index, position_id in enumerate(ordered):
        # The events count is the statement's total: report it once.
        yield position_id, (*rows[position_id][:5], events_written if index == 0 else 0)


def _update_position(info: dict, deltas: Sequence[int], guard: Guard) -> tuple | None:
    """Conditionally apply deltas to one position and record its stock events.

    Returns (on_hand, reserved, unsellable, incoming, safety_stock, events_written), or None when
    the guard refused (not enough stock): then nothing was written.
    """
    d_on_hand, d_reserved, d_unsellable, d_incoming = deltas
    params = {
        "id": info["id"],
        "d_on_hand": d_on_hand,
        "d_reserved": d_reserved,
        "d_unsellable": d_unsellable,
        "d_incoming": d_incoming,
        "now": connection.ops.adapt_datetimefield_value(timezone.now()),
        "sku": info["sku__code"],
        "location": info["location__code"],
        "threshold": info["location__low_stock_threshold"],
    }
    conditions = ["id = %(id)s"]
    # Buckets never go negative (the table's CHECKs would fail too, with a worse message).
    for column, delta in (
        ("reserved", d_reserved),
        ("unsellable", d_unsellable),
        ("incoming", d_incoming),
    ):
        if delta < 0:
            conditions.append(f"{column} + %(d_{column})s >= 0")
    sellable_delta = d_on_hand - d_reserved - d_unsellable
    if guard >= Guard.ON_HAND and d_on_hand < 0:
        conditions.append("on_hand + %(d_on_hand)s >= 0")
    if guard >= Guard.TILL and sellable_delta < 0:
        params["d_sellable"] = sellable_delta
        safety = " - safety_stock" if guard == Guard.ONLINE else ""
        conditions.append(f"on_hand - reserved - unsellable{safety} + %(d_sellable)s >= 0")
    update = (
        f"UPDATE {_POSITION_TABLE} SET on_hand = on_hand + %(d_on_hand)s, "  # noqa: S608
        "reserved = reserved + %(d_reserved)s, unsellable = unsellable + %(d_unsellable)s, "
        "incoming = incoming + %(d_incoming)s, updated_at = %(now)s "
        f"WHERE {' AND '.join(conditions)} "
        "RETURNING on_hand, reserved, unsellable, incoming, safety_stock"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"WITH updated AS ({update}), calc AS ({_calc_sql('updated', 'GREATEST')}), "  # noqa: S608
                f"events AS ({_event_insert_sql('jsonb_build_object', **_ONE_POSITION_EVENTS)} "
                "RETURNING 1) "
                "SELECT on_hand, reserved, unsellable, incoming, safety_stock, "
                "(SELECT count(*) FROM events) FROM calc",
                params,
            )
            return cursor.fetchone()
        # SQLite has no data-modifying CTEs; writers are serialised anyway, so two statements.
        cursor.execute(update, params)
        row = cursor.fetchone()
        if row is None:
            return None
        cursor.execute(
            f"WITH calc AS ({_calc_sql(_POSITION_TABLE + ' WHERE id = %(id)s', 'MAX')}) "
            + _event_insert_sql("json_object", **_ONE_POSITION_EVENTS),
            params,
        )
        return (*row, cursor.rowcount)


def _raise_insufficient(info: dict, deltas: Sequence[int]) -> None:
    position = StockPosition.objects.get(pk=info["id"])
    wanted = max(-(deltas[0] - deltas[1] - deltas[2]), -deltas[0], 0)
    raise InsufficientStock(
        f"Not enough stock of {info['sku__code']} at {info['location__code']}: "
        f"{wanted} wanted, {position.available} available online, "
        f"{position.available_at_till} at the till.",
        details={
            "lines": [
                {
                    "sku": info["sku__code"],
                    "location": info["location__code"],
                    "requested": wanted,
                    "available": position.available,
                    "available_at_till": position.available_at_till,
                    "on_hand": position.on_hand,
                    "reserved": position.reserved,
                }
            ]
        },
    )


def _flag_till_discrepancies(
    batch: Sequence[OperationChanges], results: list[ApplyResult], positions
) -> None:
    """Flag till sales the ledger thinks impossible: on hand, or what is sellable, below zero
    once the sale's operation applied (operation by operation, in batch order)."""
    running = {
        position_id: list(outcome.before)
        for result in results
        for position_id, outcome in result.outcomes.items()
    }
    flagged = []
    for item, result in zip(batch, results, strict=True):
        for c in item.changes:
            quantities = running[positions[(c.sku_id, c.location_id)]["id"]]
            quantities[0] += c.on_hand
            quantities[1] += c.reserved
            quantities[2] += c.unsellable
            quantities[3] += c.incoming
        for c, movement in zip(item.changes, result.movements, strict=True):
            if c.kind != MovementKind.SALE:
                continue
            position_id = positions[(c.sku_id, c.location_id)]["id"]
            on_hand, reserved, unsellable, _ = running[position_id]
            sellable = on_hand - reserved - unsellable
            if on_hand < 0 or sellable < 0:
                result.till_discrepancies += 1
                flagged.append(
                    (
                        result.outcomes[position_id],
                        TillDiscrepancy(
                            movement=movement, on_hand_after=on_hand, sellable_after=sellable
                        ),
                    )
                )
    if flagged:
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


# --------------------------------------------------------------------------------------------
# Receipts, adjustments, unsellable, sales and returns
# --------------------------------------------------------------------------------------------


def _lines(lines: Iterable[tuple[int, int]], *, allow_zero: bool = False) -> list[tuple[int, int]]:
    merged: dict[int, int] = defaultdict(int)
    for sku_id, quantity in lines:
        merged[sku_id] += validate_quantity(quantity, allow_zero=allow_zero)
    if not merged:
        raise InvalidInput("At least one line is needed.", details={"lines": ["empty"]})
    return list(merged.items())


def stock_receive(
    *,
    location_id: int,
    lines: Sequence[tuple[int, int]],
    idempotency_key: str,
    reference: str = "",
    actor: str = "",
    channel: str = SalesChannel.BACKOFFICE,
) -> StockOperation:
    """Goods arrive from a supplier (on hand increases)."""
    merged = _lines(lines)
    return _apply_operation(
        kind="receipt",
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        reference=reference,
        params={"location": location_id, "lines": sorted(merged)},
        changes=[
            change(MovementKind.RECEIPT, sku_id=sku_id, location_id=location_id, quantity=quantity)
            for sku_id, quantity in merged
        ],
    )


def stock_adjust(
    *,
    location_id: int,
    sku_id: int,
    delta: int,
    reason: str,
    idempotency_key: str,
    note: str = "",
    actor: str = "",
    channel: str = SalesChannel.BACKOFFICE,
) -> StockOperation:
    """Correct on hand by `delta` units (signed), with a reason. On hand never goes below 0."""
    if reason not in AdjustmentReason.values:
        raise InvalidInput(
            f"Unknown adjustment reason {reason!r}.",
            details={"reason": [f"one of {AdjustmentReason.values}"]},
        )
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise InvalidQuantity(
            "delta must be a non-zero whole number.", details={"delta": ["invalid"]}
        )
    quantity = validate_quantity(abs(delta), field_name="delta")
    return _apply_operation(
        kind="adjustment",
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        params={"location": location_id, "sku": sku_id, "delta": delta, "reason": reason},
        changes=[
            change(
                MovementKind.ADJUSTMENT,
                sku_id=sku_id,
                location_id=location_id,
                quantity=quantity,
                sign=1 if delta > 0 else -1,
                reason=reason,
                note=note,
            )
        ],
    )


def stock_set_aside(
    *,
    location_id: int,
    sku_id: int,
    quantity: int,
    reason: str,
    idempotency_key: str,
    restore: bool = False,
    write_off: bool = False,
    note: str = "",
    actor: str = "",
) -> StockOperation:
    """Move sellable units to unsellable (damage, quality control), back (`restore`), or destroy
    unsellable units (`write_off`)."""
    quantity = validate_quantity(quantity)
    kind = (
        MovementKind.WRITE_OFF
        if write_off
        else MovementKind.UNSELLABLE_OUT
        if restore
        else MovementKind.UNSELLABLE_IN
    )
    return _apply_operation(
        kind=str(kind),
        idempotency_key=idempotency_key,
        channel=SalesChannel.BACKOFFICE,
        actor=actor,
        params={"location": location_id, "sku": sku_id, "quantity": quantity, "reason": reason},
        changes=[
            change(
                kind,
                sku_id=sku_id,
                location_id=location_id,
                quantity=quantity,
                reason=reason,
                note=note,
            )
        ],
    )


def stock_sell_at_till(
    *,
    location_id: int,
    lines: Sequence[tuple[int, int]],
    idempotency_key: str,
    occurred_at: datetime | None = None,
    reference: str = "",
    actor: str = "",
) -> StockOperation:
    """Units sold at a store till. Never refused: the goods already left the shop. A sale the
    ledger thinks impossible is recorded and flagged (TillDiscrepancy + stock.till_discrepancy)."""
    sale = TillSale(location_id, lines, idempotency_key, occurred_at, reference, actor)
    return stock_sell_at_till_many([sale])[0]


@dataclass(frozen=True)
class TillSale:
    """One receipt's sale lines, for `stock_sell_at_till_many`."""

    location_id: int
    lines: Sequence[tuple[int, int]]
    idempotency_key: str
    occurred_at: datetime | None = None
    reference: str = ""
    actor: str = ""


def stock_sell_at_till_many(sales: Sequence[TillSale]) -> list[StockOperation]:
    """Many till sales in one transaction: `stock_sell_at_till` for a till's backlog.

    Each sale stays its own idempotent operation, with the same key and fingerprint as one call
    of `stock_sell_at_till` (either may replay the other). A sale whose key was already applied
    comes back with `replayed` set and applies nothing; a key already used for something else
    refuses the whole batch (IdempotencyKeyReused), like one call would.
    """
    prepared = []
    for sale in sales:
        merged = _lines(sale.lines)
        params = {"location": sale.location_id, "lines": sorted(merged)}
        prepared.append((sale, merged, _check_idempotency_key(sale.idempotency_key), params))
    if not prepared:
        return []
    keys = [key for _, _, key, _ in prepared]
    if len(set(keys)) != len(keys):
        raise InvalidInput(
            "The same idempotency key appears twice in one batch.",
            details={"idempotency_key": ["duplicate in batch"]},
        )
    with transaction.atomic():
        operations = _operations_insert(
            [
                StockOperation(
                    idempotency_key=key,
                    kind="sale",
                    request_hash=_fingerprint("sale", params),
                    channel=SalesChannel.STORE,
                    actor=sale.actor[:150],
                    reference=sale.reference[:120],
                )
                for sale, _, key, params in prepared
            ]
        )
        fresh = [
            (operation, sale, merged)
            for operation, (sale, merged, _, _) in zip(operations, prepared, strict=True)
            if not operation.replayed
        ]
        results = stock_apply_many(
            [
                OperationChanges(
                    operation,
                    [
                        change(
                            MovementKind.SALE,
                            sku_id=sku_id,
                            location_id=sale.location_id,
                            quantity=quantity,
                        )
                        for sku_id, quantity in merged
                    ],
                    sale.occurred_at,
                )
                for operation, sale, merged in fresh
            ]
        )
        for (operation, _, _), result in zip(fresh, results, strict=True):
            operation.applied = result
    return operations


def _operations_insert(operations: list[StockOperation]) -> list[StockOperation]:
    """Insert many operations at once, each under its unique key (the batched form of
    `_run_operation`'s first step). Returns them in order; one whose key exists already is the
    stored one, marked `replayed`, provided it was the same request (else IdempotencyKeyReused).
    A concurrent batch with the same key waits for the first to commit, as `_run_operation` does.
    """
    if not operations:
        return []
    now = timezone.now()
    columns = ("idempotency_key", "kind", "request_hash", "channel", "actor", "reference")
    table = StockOperation._meta.db_table
    inserted = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(operations, _ROWS_PER_INSERT):
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}, created_at) VALUES "  # noqa: S608
                + ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
                + " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key",
                [
                    value
                    for op in chunk
                    for value in (
                        *(getattr(op, column) for column in columns),
                        connection.ops.adapt_datetimefield_value(now),
                    )
                ],
            )
            inserted.update({key: pk for pk, key in cursor.fetchall()})
    existing = {
        op.idempotency_key: op
        for op in StockOperation.objects.filter(
            idempotency_key__in=[
                op.idempotency_key for op in operations if op.idempotency_key not in inserted
            ]
        )
    }
    result = []
    for op in operations:
        if op.idempotency_key in inserted:
            op.pk = inserted[op.idempotency_key]
            op.created_at = now
            op.replayed = False
            result.append(op)
            continue
        stored = existing[op.idempotency_key]
        if stored.kind != op.kind or stored.request_hash != op.request_hash:
            raise IdempotencyKeyReused(
                f"The idempotency key {op.idempotency_key} was already used for a different "
                "stock change."
            )
        stored.replayed = True
        result.append(stored)
    return result


def stock_return(
    *,
    location_id: int,
    lines: Sequence[tuple[int, int]],
    idempotency_key: str,
    unsellable: bool = False,
    reason: str = "",
    occurred_at: datetime | None = None,
    reference: str = "",
    actor: str = "",
    channel: str = SalesChannel.STORE,
) -> StockOperation:
    """Units come back into a location's stock, sellable or (damaged) unsellable."""
    merged = _lines(lines)
    effects = (1, 0, 1, 0) if unsellable else (1, 0, 0, 0)
    return _apply_operation(
        kind="return",
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        reference=reference,
        params={"location": location_id, "lines": sorted(merged), "unsellable": unsellable},
        occurred_at=occurred_at,
        changes=[
            change(
                MovementKind.RETURN,
                sku_id=sku_id,
                location_id=location_id,
                quantity=quantity,
                effects=effects,
                reason=reason,
            )
            for sku_id, quantity in merged
        ],
    )


def stock_count_apply(
    *,
    location_id: int,
    counts: Sequence[tuple[int, int]],
    idempotency_key: str,
    counted_at: datetime | None = None,
    actor: str = "",
    channel: str = SalesChannel.BACKOFFICE,
) -> StockCount:
    """A counted quantity becomes an adjustment for the difference.

    The difference is taken against the ledger *at the time of the count*: movements that
    happened after `counted_at` (a sale rung up while the count was keyed in) are not counted
    twice. Counts are physical truth: they are never refused.
    """
    merged: dict[int, int] = {}
    for sku_id, counted in counts:
        if sku_id in merged:
            raise InvalidInput(
                "A SKU appears twice in the count.", details={"counts": ["duplicate sku"]}
            )
        merged[sku_id] = validate_quantity(counted, field_name="counted", allow_zero=True)
    if not merged:
        raise InvalidInput("At least one counted SKU is needed.", details={"counts": ["empty"]})
    now = timezone.now()
    counted_at = counted_at or now
    if counted_at > now + timedelta(minutes=5):
        raise InvalidInput(
            "A count cannot be dated in the future.", details={"counted_at": ["future"]}
        )

    def body(op: StockOperation) -> None:
        location = Location.objects.get(pk=location_id)
        positions = _positions_for(
            [
                change(MovementKind.RECEIPT, sku_id=s, location_id=location_id, quantity=1)
                for s in merged
            ]
        )
        ids = [positions[(sku_id, location_id)]["id"] for sku_id in merged]
        # Lock the counted positions before reading what the ledger expects of them.
        list(
            StockPosition.objects.select_for_update(no_key=True)
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        expected = dict(
            StockMovement.objects.filter(position_id__in=ids, occurred_at__lte=counted_at)
            .values("sku_id")
            .annotate(total=Sum("on_hand_delta"))
            .values_list("sku_id", "total")
        )
        count = StockCount.objects.create(location=location, operation=op, counted_at=counted_at)
        lines, changes = [], []
        for sku_id, counted in merged.items():
            was = expected.get(sku_id) or 0
            difference = counted - was
            lines.append(
                StockCountLine(
                    count=count, sku_id=sku_id, expected=was, counted=counted, difference=difference
                )
            )
            if difference:
                changes.append(
                    change(
                        MovementKind.ADJUSTMENT,
                        sku_id=sku_id,
                        location_id=location_id,
                        quantity=abs(difference),
                        sign=1 if difference > 0 else -1,
                        reason=AdjustmentReason.COUNT,
                        guard=Guard.NONE,
                    )
                )
        StockCountLine.objects.bulk_create(lines)
        # Dated at the count: the ledger's on hand at that time is what was counted.
        stock_apply(operation=op, changes=changes, occurred_at=counted_at)

    operation, _ = _run_operation(
        kind="count",
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        reference="",
        params={
            "location": location_id,
            "counts": sorted(merged.items()),
            "counted_at": counted_at if counted_at != now else None,
        },
        body=body,
    )
    return StockCount.objects.get(operation=operation)


# --------------------------------------------------------------------------------------------
# Reservations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReservationRequest:
    sku_id: int
    location_id: int
    quantity: int


def reservations_create(
    *,
    requests: Sequence[ReservationRequest],
    idempotency_key: str,
    channel: str,
    reference: str = "",
    expires_at: datetime | None = None,
    ttl_seconds: int | None = None,
    actor: str = "",
) -> list[Reservation]:
    """Hold stock for an order or a cart: every line or none (InsufficientStock names the lines).

    Online channels may not reserve into the safety stock; a store till may.
    `expires_at` (or `ttl_seconds`, default RESERVATION_DEFAULT_TTL_SECONDS) bounds the hold;
    pass neither and `ttl_seconds=0` to hold until explicitly released (an order in preparation).
    """
    if not requests:
        raise InvalidInput("At least one line is needed.", details={"lines": ["empty"]})
    for request in requests:
        validate_quantity(request.quantity)
    if expires_at is None:
        ttl = (
            settings.OMNISTOCK["RESERVATION_DEFAULT_TTL_SECONDS"]
            if ttl_seconds is None
            else ttl_seconds
        )
        if ttl < 0 or ttl > 90 * 24 * 3600:
            raise InvalidInput(
                "ttl_seconds must be between 0 and 90 days.", details={"ttl_seconds": ["range"]}
            )
        expires_at = timezone.now() + timedelta(seconds=ttl) if ttl else None
    elif expires_at <= timezone.now():
        raise InvalidInput("expires_at is in the past.", details={"expires_at": ["past"]})
    guard = Guard.ONLINE if is_online(channel) else Guard.TILL
    if connection.vendor == "postgresql" and settings.OMNISTOCK["RESERVE_FAST_PATH"]:
        fast = {
            "idempotency_key": _check_idempotency_key(idempotency_key),
            "channel": channel,
            "reference": reference,
            "expires_at": expires_at,
            "actor": actor,
            "guard": guard,
        }
        if len(requests) == 1:
            reservation = _reserve_in_one_statement(request=requests[0], **fast)
            if reservation is not None:
                return [reservation]
        elif len({(r.sku_id, r.location_id) for r in requests}) == len(requests):
            # (A position named twice takes the general path, which sums its lines.)
            reservations = _reserve_many_in_one_statement(requests=requests, **fast)
            if reservations is not None:
                return reservations
    created: list[Reservation] = []

    def body(op: StockOperation) -> None:
        changes = [
            change(
                MovementKind.RESERVE,
                sku_id=r.sku_id,
                location_id=r.location_id,
                quantity=r.quantity,
                guard=guard,
            )
            for r in requests
        ]
        positions = _positions_for(changes)
        inactive = sorted(
            {
                info["location__code"]
                for info in positions.values()
                if not info["location__is_active"]
            }
        )
        if inactive:
            raise LocationInactive(
                f"Location {', '.join(inactive)} is inactive.", details={"location": inactive}
            )
        created.extend(
            Reservation.objects.bulk_create(
                [
                    Reservation(
                        position_id=positions[(r.sku_id, r.location_id)]["id"],
                        sku_id=r.sku_id,
                        location_id=r.location_id,
                        quantity=r.quantity,
                        channel=channel,
                        reference=reference[:120],
                        expires_at=expires_at,
                        created_by_key=f"{idempotency_key}#{index}",
                    )
                    for index, r in enumerate(requests)
                ]
            )
        )
        stock_apply(
            operation=op,
            positions=positions,
            changes=[
                dataclasses.replace(c, reservation_id=reservation.pk)
                for c, reservation in zip(changes, created, strict=True)
            ],
        )

    _, replayed = _run_operation(
        kind="reserve",
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        reference=reference,
        params={
            "lines": [(r.sku_id, r.location_id, r.quantity) for r in requests],
            "reference": reference,
        },
        body=body,
    )
    if replayed:
        created = list(
            Reservation.objects.filter(
                created_by_key__in=[f"{idempotency_key}#{i}" for i in range(len(requests))]
            ).order_by("pk")
        )
    for reservation in created:
        reservation.replayed = replayed
    return created


# One reservation line in one statement (PostgreSQL): the position's conditional UPDATE, then —
# only if it matched — the operation, the reservation, the movement and the stock events, each
# row as the general path writes it. If the UPDATE matches nothing (no position yet, an inactive
# location, not enough stock) nothing is written; a known key fails the operation's unique index
# and the whole statement with it.
_RESERVE_ONE_SQL = (
    "WITH pos AS (SELECT p.id, s.code AS sku_code, l.code AS location_code, "  # noqa: S608
    "l.low_stock_threshold AS threshold "
    f"FROM {_POSITION_TABLE} p JOIN {Sku._meta.db_table} s ON s.id = p.sku_id "
    f"JOIN {Location._meta.db_table} l ON l.id = p.location_id "
    "WHERE p.sku_id = %(sku)s AND p.location_id = %(location)s AND l.is_active), "
    f"updated AS (UPDATE {_POSITION_TABLE} AS p SET reserved = p.reserved + %(quantity)s, "
    "updated_at = %(now)s FROM pos WHERE p.id = pos.id "
    "AND p.on_hand - p.reserved - p.unsellable "
    "- CASE WHEN %(online)s THEN p.safety_stock ELSE 0 END - %(quantity)s >= 0 "
    "RETURNING p.id, p.on_hand, p.reserved, p.unsellable, p.incoming, p.safety_stock, "
    "pos.sku_code, pos.location_code, pos.threshold), "
    f"op AS (INSERT INTO {StockOperation._meta.db_table} (idempotency_key, kind, request_hash, "
    "channel, actor, reference, created_at) SELECT %(key)s, 'reserve', %(hash)s, %(channel)s, "
    "%(actor)s, %(reference)s, %(now)s FROM updated RETURNING id), "
    f"res AS (INSERT INTO {Reservation._meta.db_table} (position_id, sku_id, location_id, "
    "quantity, committed_quantity, released_quantity, status, channel, reference, expires_at, "
    "created_by_key, created_at, updated_at) SELECT updated.id, %(sku)s, %(location)s, "
    "%(quantity)s, 0, 0, %(status)s, %(channel)s, %(reference)s, %(expires_at)s, "
    "%(reservation_key)s, %(now)s, %(now)s FROM updated RETURNING id), "
    f"mov AS (INSERT INTO {StockMovement._meta.db_table} ({', '.join(_MOVEMENT_COLUMNS)}) "
    "SELECT op.id, updated.id, %(sku)s, %(location)s, %(kind)s, '', %(quantity)s, 0, "
    "%(quantity)s, 0, 0, res.id, NULL, '', %(now)s, %(now)s FROM updated, op, res "
    "RETURNING id), "
    "calc AS (SELECT on_hand, reserved, unsellable, incoming, safety_stock, sku_code, "
    "location_code, threshold, "
    "GREATEST(on_hand - reserved - unsellable - safety_stock, 0) AS available, "
    "GREATEST(on_hand - reserved - unsellable, 0) AS available_at_till, "
    "GREATEST(on_hand - (reserved - %(quantity)s) - unsellable - safety_stock, 0) "
    "AS available_before FROM updated), "
    "events AS ("
    + _event_insert_sql(
        "jsonb_build_object",
        sku="calc.sku_code",
        location="calc.location_code",
        threshold="calc.threshold",
    )
    + " RETURNING 1) SELECT (SELECT id FROM res), updated.id, (SELECT count(*) FROM events) "
    "FROM updated"
)


# The parameters of `_fast_reservation_params`, with their SQL types.
_RESERVATION_PARAM_TYPES = {
    "online": "boolean",
    "now": "timestamptz",
    "key": "text",
    "hash": "text",
    "channel": "text",
    "actor": "text",
    "reference": "text",
    "status": "text",
    "expires_at": "timestamptz",
    "kind": "text",
}

_RESERVE_ONE = sql.Prepared(
    "omnistock_reserve_one",
    _RESERVE_ONE_SQL,
    params={
        "sku": "bigint",
        "location": "bigint",
        "quantity": "integer",
        "reservation_key": "text",
        **_RESERVATION_PARAM_TYPES,
    },
)
_RESERVE_ONE_NAME = _RESERVE_ONE.name


# Reservers of one hot position first queue on a transaction-level advisory lock named after the
# position, sent in the same round trip as the reservation and released when its transaction
# ends. Without it, every waiter sits in the row's lock and re-reads the row's growing chain of
# versions when its turn comes: measured with pgbench, 32 clients on one row cost PostgreSQL
# ~1 ms of CPU per transaction, against ~0.3 ms with the queue (bench/analysis.md).
#
# Only a reservation that is its own transaction (autocommit) waits in the queue: the lock is
# then the first thing its transaction takes, so it holds nothing anyone could be waiting for,
# and no deadlock can go through the queue. Inside a transaction, which may already hold rows
# (a transfer just received for an order, its idempotency record), waiting could close a cycle
# with a reserver that holds the queue and waits for such a row (a review found it): there the
# reservation takes the queue only when it is free (pg_try_advisory_xact_lock) and otherwise
# waits for the row, as before. The lock only orders reservers: the conditional UPDATE still
# decides, so two positions whose names hash alike only wait for each other.
_HOT_ROW_QUEUE_CLASS = 1397  # first key of pg_advisory_xact_lock(int, int): this project's space
_HOT_ROW_QUEUE_SQL = "SELECT {function}({cls}, hashtext({key})); "


def _in_transaction() -> bool:
    """Whether a statement sent now runs inside a wider transaction (not its own)."""
    return connection.in_atomic_block or not connection.get_autocommit()


def _hot_row_queue_sql(key_placeholder: str) -> str:
    return _HOT_ROW_QUEUE_SQL.format(
        function="pg_try_advisory_xact_lock" if _in_transaction() else "pg_advisory_xact_lock",
        cls=_HOT_ROW_QUEUE_CLASS,
        key=key_placeholder,
    )


def _hot_row_queue_key(params: dict) -> str:
    return f"position:{params['sku']}:{params['location']}"


def _execute_reserve_one(params: dict) -> tuple | None:
    """Queue on the position's advisory lock (waiting only outside a transaction, see above),
    run `_RESERVE_ONE_SQL` and return its row: two statements in one round trip (one implicit
    transaction outside an atomic block)."""
    with connection.cursor() as cursor:
        sql.execute_prepared(
            cursor,
            _RESERVE_ONE,
            params,
            prefix=_hot_row_queue_sql,
            prefix_value=_hot_row_queue_key(params),
        )
        cursor.nextset()  # the reservation's row, after the lock's empty one
        return cursor.fetchone()


def _fast_reservation_params(
    requests: Sequence[ReservationRequest],
    *,
    idempotency_key: str,
    channel: str,
    reference: str,
    expires_at: datetime | None,
    actor: str,
    guard: Guard,
) -> dict:
    """The parameters both one-statement reservations share, as the general path stores them
    (the same request hash: either path replays the other)."""
    return {
        "online": guard == Guard.ONLINE,
        "now": timezone.now(),
        "key": idempotency_key,
        "hash": _fingerprint(
            "reserve",
            {
                "lines": [(r.sku_id, r.location_id, r.quantity) for r in requests],
                "reference": reference,
            },
        ),
        "channel": channel,
        "actor": actor[:150],
        "reference": reference[:120],
        "status": ReservationStatus.ACTIVE,
        "expires_at": expires_at,
        "kind": MovementKind.RESERVE,
    }


def _reservation_written(
    request: ReservationRequest, *, index: int, pk: int, position_id: int, params: dict
) -> Reservation:
    """The reservation a one-statement path wrote, as the ORM would have returned it."""
    reservation = Reservation(
        pk=pk,
        position_id=position_id,
        sku_id=request.sku_id,
        location_id=request.location_id,
        quantity=request.quantity,
        status=ReservationStatus.ACTIVE,
        channel=params["channel"],
        reference=params["reference"],
        expires_at=params["expires_at"],
        created_by_key=f"{params['key']}#{index}",
        created_at=params["now"],
        updated_at=params["now"],
    )
    reservation._state.adding = False
    reservation.replayed = False
    return reservation


def _reserve_in_one_statement(
    *,
    request: ReservationRequest,
    idempotency_key: str,
    channel: str,
    reference: str,
    expires_at: datetime | None,
    actor: str,
    guard: Guard,
) -> Reservation | None:
    """The commonest stock change — one line reserved — in one round trip on PostgreSQL (and,
    outside a transaction, no BEGIN/COMMIT either): the hot row is locked for one statement.

    Returns None when it applied nothing — a key already used, no position yet, an inactive
    location, not enough stock — and the caller then takes the general path, which does what it
    always does there (replays, creates the position, names the short line). Both paths write
    the same rows (tests/inventory/test_reserve_fast_path.py compares them)."""
    params = {
        "sku": request.sku_id,
        "location": request.location_id,
        "quantity": request.quantity,
        "reservation_key": f"{idempotency_key}#0",
        **_fast_reservation_params(
            [request],
            idempotency_key=idempotency_key,
            channel=channel,
            reference=reference,
            expires_at=expires_at,
            actor=actor,
            guard=guard,
        ),
    }
    try:
        # Inside the caller's transaction a savepoint keeps a duplicate key from breaking it;
        # outside one, the statement is its own transaction.
        savepoint = transaction.atomic() if _in_transaction() else nullcontext()
        with savepoint:
            row = _execute_reserve_one(params)
            if row is None:
                # Rolled back, not released: the savepoint takes the queue's lock with it, or a
                # refused reservation would hold it until the caller's transaction ends.
                raise _NotApplied()
    except IntegrityError:
        return None  # the key exists (or is being written): the general path replays it
    except sql.PreparedStatementLost:
        return None  # prepared again by the next call; this one takes the general path
    except _NotApplied:
        return None  # no position, an inactive location, not enough stock: the general path
    reservation_id, position_id, events_written = row
    if events_written:
        outbox_notify()
    transaction.on_commit(lambda: availability_changed({request.sku_id}))
    return _reservation_written(
        request, index=0, pk=reservation_id, position_id=position_id, params=params
    )


# Several reservation lines in one statement (PostgreSQL), all or nothing. The positions are
# first locked in primary-key order (as `_update_positions` locks them: two multi-line
# reservations never wait on each other in a cycle), reading what each has to sell once locked;
# only if every line has its position, at an active location, with enough stock, are they
# updated and the operation, the reservations, the movements and the stock events written, each
# row as the general path writes it. Otherwise nothing is written and the caller takes the
# general path, which creates missing positions and names the short lines. The UPDATE repeats
# the guard row by row; the caller checks that every line came back.
_RESERVE_MANY_SQL = (
    "WITH d AS (SELECT * FROM unnest(%(skus)s, %(locations)s, %(quantities)s, %(lines)s) "  # noqa: S608
    "AS d(sku, location, quantity, n)), "
    "pos AS MATERIALIZED (SELECT p.id, d.sku, d.location, d.quantity, d.n, "
    "s.code AS sku_code, l.code AS location_code, l.low_stock_threshold AS threshold, "
    "p.on_hand - p.reserved - p.unsellable "
    "- CASE WHEN %(online)s THEN p.safety_stock ELSE 0 END AS sellable "
    f"FROM {_POSITION_TABLE} p JOIN d ON p.sku_id = d.sku AND p.location_id = d.location "
    f"JOIN {Sku._meta.db_table} s ON s.id = p.sku_id "
    f"JOIN {Location._meta.db_table} l ON l.id = p.location_id "
    "WHERE l.is_active ORDER BY p.id FOR NO KEY UPDATE OF p), "
    "ok AS (SELECT count(*) = cardinality(%(skus)s) AND bool_and(sellable >= quantity) AS ok "
    "FROM pos), "
    f"updated AS (UPDATE {_POSITION_TABLE} AS p SET reserved = p.reserved + pos.quantity, "
    "updated_at = %(now)s FROM pos, ok WHERE ok.ok AND p.id = pos.id "
    "AND p.on_hand - p.reserved - p.unsellable "
    "- CASE WHEN %(online)s THEN p.safety_stock ELSE 0 END - pos.quantity >= 0 "
    "RETURNING p.id, p.on_hand, p.reserved, p.unsellable, p.incoming, p.safety_stock, "
    "pos.sku, pos.location, pos.quantity, pos.n, pos.sku_code, pos.location_code, "
    "pos.threshold), "
    f"op AS (INSERT INTO {StockOperation._meta.db_table} (idempotency_key, kind, request_hash, "
    "channel, actor, reference, created_at) SELECT %(key)s, 'reserve', %(hash)s, %(channel)s, "
    "%(actor)s, %(reference)s, %(now)s FROM ok WHERE ok.ok RETURNING id), "
    f"res AS (INSERT INTO {Reservation._meta.db_table} (position_id, sku_id, location_id, "
    "quantity, committed_quantity, released_quantity, status, channel, reference, expires_at, "
    "created_by_key, created_at, updated_at) SELECT updated.id, updated.sku, updated.location, "
    "updated.quantity, 0, 0, %(status)s, %(channel)s, %(reference)s, %(expires_at)s, "
    "%(key)s || '#' || updated.n, %(now)s, %(now)s FROM updated ORDER BY updated.n "
    "RETURNING id, position_id), "
    f"mov AS (INSERT INTO {StockMovement._meta.db_table} ({', '.join(_MOVEMENT_COLUMNS)}) "
    "SELECT op.id, updated.id, updated.sku, updated.location, %(kind)s, '', updated.quantity, "
    "0, updated.quantity, 0, 0, res.id, NULL, '', %(now)s, %(now)s "
    "FROM updated JOIN res ON res.position_id = updated.id CROSS JOIN op "
    "ORDER BY updated.n RETURNING id), "
    "calc AS (SELECT on_hand, reserved, unsellable, incoming, safety_stock, sku_code, "
    "location_code, threshold, "
    "GREATEST(on_hand - reserved - unsellable - safety_stock, 0) AS available, "
    "GREATEST(on_hand - reserved - unsellable, 0) AS available_at_till, "
    "GREATEST(on_hand - (reserved - quantity) - unsellable - safety_stock, 0) "
    "AS available_before FROM updated), "
    "events AS ("
    + _event_insert_sql(
        "jsonb_build_object",
        sku="calc.sku_code",
        location="calc.location_code",
        threshold="calc.threshold",
    )
    + " RETURNING 1) SELECT updated.n, res.id, updated.id, (SELECT count(*) FROM events), "
    "(SELECT count(*) FROM mov) FROM updated JOIN res ON res.position_id = updated.id "
    "ORDER BY updated.n"
)
_RESERVE_MANY = sql.Prepared(
    "omnistock_reserve_many",
    _RESERVE_MANY_SQL,
    params={
        "skus": "bigint[]",
        "locations": "bigint[]",
        "quantities": "integer[]",
        "lines": "integer[]",
        **_RESERVATION_PARAM_TYPES,
    },
)


class _NotApplied(Exception):
    """A one-statement reservation that applied nothing (or, in theory, some lines only): its
    savepoint rolls back, releasing whatever it locked, and the general path decides."""


def _reserve_many_in_one_statement(
    *,
    requests: Sequence[ReservationRequest],
    idempotency_key: str,
    channel: str,
    reference: str,
    expires_at: datetime | None,
    actor: str,
    guard: Guard,
) -> list[Reservation] | None:
    """A multi-line reservation (an order's lines) in one round trip on PostgreSQL, inside a
    savepoint (or its own transaction). Returns None when it applied nothing — a key already
    used, a missing position, an inactive location, not enough stock for some line — and the
    caller then takes the general path. Both paths write the same rows
    (tests/inventory/test_reserve_fast_path.py compares them)."""
    params = {
        "skus": [r.sku_id for r in requests],
        "locations": [r.location_id for r in requests],
        "quantities": [r.quantity for r in requests],
        "lines": list(range(len(requests))),
        **_fast_reservation_params(
            requests,
            idempotency_key=idempotency_key,
            channel=channel,
            reference=reference,
            expires_at=expires_at,
            actor=actor,
            guard=guard,
        ),
    }
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                sql.execute_prepared(cursor, _RESERVE_MANY, params)
                rows = cursor.fetchall()
            if not rows or len(rows) != len(requests) or rows[0][4] != len(requests):
                # Nothing applied, and the positions it found are locked: rolling the savepoint
                # back (not releasing it) frees them, or a refused reservation would hold them
                # until the caller's transaction ends and lock out of key order on its retry.
                raise _NotApplied()
    except (IntegrityError, sql.PreparedStatementLost, _NotApplied):
        # A known key (the general path replays it), a lost prepared statement (prepared again
        # by the next call), or a line it could not serve: nothing is kept.
        return None
    if rows[0][3]:
        outbox_notify()
    sku_ids = {r.sku_id for r in requests}
    transaction.on_commit(lambda: availability_changed(sku_ids))
    return [
        _reservation_written(request, index=index, pk=pk, position_id=position_id, params=params)
        for (index, pk, position_id, _, _), request in zip(rows, requests, strict=True)
    ]


def reservation_create(
    *, sku_id: int, location_id: int, quantity: int, idempotency_key: str, channel: str, **options
) -> Reservation:
    return reservations_create(
        requests=[ReservationRequest(sku_id=sku_id, location_id=location_id, quantity=quantity)],
        idempotency_key=idempotency_key,
        channel=channel,
        **options,
    )[0]


def _settle_reservation(
    *,
    reservation_id: int,
    quantity: int | None,
    idempotency_key: str,
    actor: str,
    commit: bool,
    release_rest: bool = False,
    expired: bool = False,
    reason: str = "",
) -> Reservation:
    if quantity is not None:
        validate_quantity(quantity)
    kind = "commit" if commit else ("expire" if expired else "release")

    def body(op: StockOperation) -> None:
        reservation = Reservation.objects.select_for_update(no_key=True).get(pk=reservation_id)
        open_quantity = reservation.open_quantity
        if open_quantity == 0:
            raise ReservationNotOpen(
                f"Reservation {reservation_id} is already {reservation.status}."
            )
        amount = open_quantity if quantity is None else quantity
        if amount > open_quantity:
            raise InvalidQuantity(
                f"Only {open_quantity} units of this reservation are open.",
                details={"quantity": [f"must be ≤ {open_quantity}"]},
            )
        changes = []
        common = {
            "sku_id": reservation.sku_id,
            "location_id": reservation.location_id,
            "reservation_id": reservation.pk,
            "reason": reason,
        }
        if commit:
            reservation.committed_quantity += amount
            changes.append(change(MovementKind.COMMIT, quantity=amount, **common))
            rest = reservation.open_quantity if release_rest else 0
            if rest:
                reservation.released_quantity += rest
                changes.append(change(MovementKind.RELEASE, quantity=rest, **common))
        else:
            reservation.released_quantity += amount
            changes.append(change(MovementKind.RELEASE, quantity=amount, **common))
        if reservation.open_quantity == 0:
            reservation.status = (
                ReservationStatus.COMMITTED
                if reservation.committed_quantity
                else ReservationStatus.EXPIRED
                if expired
                else ReservationStatus.RELEASED
            )
        reservation.save(
            update_fields=["committed_quantity", "released_quantity", "status", "updated_at"]
        )
        stock_apply(operation=op, changes=changes)

    _run_operation(
        kind=kind,
        idempotency_key=idempotency_key,
        channel=SalesChannel.BACKOFFICE,
        actor=actor,
        reference=str(reservation_id),
        params={"reservation": reservation_id, "quantity": quantity, "release_rest": release_rest},
        body=body,
    )
    return Reservation.objects.get(pk=reservation_id)


def reservation_release(
    *,
    reservation_id: int,
    idempotency_key: str,
    quantity: int | None = None,
    actor: str = "",
    reason: str = "",
) -> Reservation:
    """Give held units back to sale (all open units, or `quantity` of them)."""
    return _settle_reservation(
        reservation_id=reservation_id,
        quantity=quantity,
        idempotency_key=idempotency_key,
        actor=actor,
        commit=False,
        reason=reason,
    )


def reservation_commit(
    *,
    reservation_id: int,
    idempotency_key: str,
    quantity: int | None = None,
    release_rest: bool = False,
    actor: str = "",
) -> Reservation:
    """The held units leave (collected, shipped): on hand and reserved both decrease."""
    return _settle_reservation(
        reservation_id=reservation_id,
        quantity=quantity,
        idempotency_key=idempotency_key,
        actor=actor,
        commit=True,
        release_rest=release_rest,
    )


def reservations_release_expired(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Release every active hold past its expiry. Safe to run twice (one key per reservation)."""
    now = now or timezone.now()
    expired_ids = list(
        Reservation.objects.filter(status=ReservationStatus.ACTIVE, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:limit]
    )
    released = 0
    for reservation_id in expired_ids:
        try:
            _settle_reservation(
                reservation_id=reservation_id,
                quantity=None,
                idempotency_key=f"reservation:{reservation_id}:expire",
                actor="system:expiry",
                commit=False,
                expired=True,
            )
            released += 1
        except ReservationNotOpen:
            continue  # settled meanwhile by its order
    return released


# --------------------------------------------------------------------------------------------
# Transfers
# --------------------------------------------------------------------------------------------


def transfer_request(
    *,
    source_id: int,
    destination_id: int,
    lines: Sequence[tuple[int, int]],
    idempotency_key: str,
    reference: str = "",
    actor: str = "",
) -> Transfer:
    """Ask for units to move from one location to another. No stock moves until it ships."""
    _check_idempotency_key(idempotency_key)
    _lines(lines)  # bad lines are refused even on a replay, as they always were
    existing = Transfer.objects.filter(created_by_key=idempotency_key).first()
    if existing:
        existing.replayed = True
        return existing
    ends = {loc.pk: loc for loc in Location.objects.filter(pk__in=[source_id, destination_id])}
    transfer = transfer_new(
        source=ends[source_id],
        destination=ends[destination_id],
        lines=lines,
        idempotency_key=idempotency_key,
        reference=reference,
        actor=actor,
    )
    try:
        with transaction.atomic():
            transfer.save(force_insert=True)
            TransferLine.objects.bulk_create(transfer.new_lines)
    except IntegrityError:
        transfer = Transfer.objects.get(created_by_key=idempotency_key)
        transfer.replayed = True
        return transfer
    transfer.replayed = False
    return transfer


def transfer_new(
    *,
    source: Location,
    destination: Location,
    lines: Sequence[tuple[int, int]],
    idempotency_key: str,
    reference: str = "",
    actor: str = "",
) -> Transfer:
    """A transfer request checked and built, not saved: `transfer_request` saves it, and an
    order placement writes it in the placement's own statement. Its lines are in `new_lines`.
    A new request moves no stock, so this is not a ledger change."""
    _check_idempotency_key(idempotency_key)
    merged = _lines(lines)
    if source.pk == destination.pk:
        raise InvalidInput(
            "A transfer needs two different locations.", details={"destination": ["same as source"]}
        )
    for end in (source, destination):
        if not end.is_active:
            raise LocationInactive(
                f"Location {end.code} is inactive.", details={"location": [end.code]}
            )
    if not destination.receives_transfers:
        raise InvalidInput(
            f"{destination.code} does not receive transfers.",
            details={"destination": ["does not receive transfers"]},
        )
    transfer = Transfer(
        source=source,
        destination=destination,
        reference=reference[:120],
        requested_by=actor[:150],
        created_by_key=idempotency_key,
    )
    transfer.new_lines = [
        TransferLine(transfer=transfer, sku_id=sku_id, quantity_requested=quantity)
        for sku_id, quantity in merged
    ]
    return transfer


def transfer_ship(
    *,
    transfer_id: int,
    idempotency_key: str,
    shipped: dict[int, int] | None = None,
    actor: str = "",
) -> Transfer:
    """Units leave the source (on hand −) and show as incoming at the destination.

    `shipped` maps SKU id → units actually shipped (default: as requested); never more than
    requested.
    """
    if shipped:
        for quantity in shipped.values():
            validate_quantity(quantity, allow_zero=True)

    def body(op: StockOperation) -> None:
        transfer = Transfer.objects.select_for_update(no_key=True).get(pk=transfer_id)
        if transfer.status != TransferStatus.REQUESTED:
            raise TransferStateError(
                f"Transfer {transfer_id} is {transfer.status}; only a requested transfer can ship."
            )
        lines = list(transfer.lines.all())
        unknown = set(shipped or {}) - {line.sku_id for line in lines}
        if unknown:
            raise InvalidInput(
                "Shipped SKUs must be lines of the transfer.", details={"shipped": ["unknown sku"]}
            )
        changes = []
        for line in lines:
            quantity = line.quantity_requested if shipped is None else shipped.get(line.sku_id, 0)
            if quantity > line.quantity_requested:
                raise InvalidQuantity(
                    "Cannot ship more than requested.",
                    details={"shipped": [f"sku {line.sku_id}: ≤ {line.quantity_requested}"]},
                )
            line.quantity_shipped = quantity
            if quantity:
                changes.append(
                    change(
                        MovementKind.TRANSFER_OUT,
                        sku_id=line.sku_id,
                        location_id=transfer.source_id,
                        quantity=quantity,
                        transfer_id=transfer.pk,
                    )
                )
                changes.append(
                    change(
                        MovementKind.TRANSFER_INCOMING,
                        sku_id=line.sku_id,
                        location_id=transfer.destination_id,
                        quantity=quantity,
                        transfer_id=transfer.pk,
                    )
                )
        if not changes:
            raise InvalidQuantity("Nothing to ship.", details={"shipped": ["all zero"]})
        TransferLine.objects.bulk_update(lines, ["quantity_shipped"])
        transfer.status = TransferStatus.SHIPPED
        transfer.shipped_at = timezone.now()
        transfer.save(update_fields=["status", "shipped_at"])
        stock_apply(operation=op, changes=changes)

    _run_operation(
        kind="transfer_ship",
        idempotency_key=idempotency_key,
        channel=SalesChannel.BACKOFFICE,
        actor=actor,
        reference=f"transfer:{transfer_id}",
        params={"transfer": transfer_id, "shipped": sorted((shipped or {}).items())},
        body=body,
    )
    return Transfer.objects.get(pk=transfer_id)


def transfer_receive(
    *,
    transfer_id: int,
    received: dict[int, int],
    idempotency_key: str,
    close: bool = False,
    actor: str = "",
) -> Transfer:
    """Units arrive at the destination (on hand +, incoming −), possibly in several receipts.

    The transfer closes when every shipped unit arrived, or when `close` is set: then what is
    still missing is recorded as a discrepancy and leaves `incoming`. Over-receipts add to on hand
    and are recorded as a positive discrepancy.
    """
    for quantity in received.values():
        validate_quantity(quantity, allow_zero=True)

    def body(op: StockOperation) -> None:
        transfer = Transfer.objects.select_for_update(no_key=True).get(pk=transfer_id)
        if transfer.status not in (TransferStatus.SHIPPED, TransferStatus.PARTIALLY_RECEIVED):
            raise TransferStateError(
                f"Transfer {transfer_id} is {transfer.status}; it cannot be received."
            )
        lines = {line.sku_id: line for line in transfer.lines.all()}
        if set(received) - set(lines):
            raise InvalidInput(
                "Received SKUs must be lines of the transfer.",
                details={"received": ["unknown sku"]},
            )
        changes = []
        destination = transfer.destination_id
        for sku_id, line in lines.items():
            quantity = received.get(sku_id, 0)
            outstanding = line.quantity_shipped - line.quantity_received
            if quantity:
                into_incoming = min(quantity, max(outstanding, 0))
                # Over-receipts (more than shipped) add to on hand but not below 0 incoming.
                changes.append(
                    dataclasses.replace(
                        change(
                            MovementKind.TRANSFER_IN,
                            sku_id=sku_id,
                            location_id=destination,
                            quantity=quantity,
                            transfer_id=transfer.pk,
                            guard=Guard.NONE,
                        ),
                        incoming=-into_incoming,
                    )
                )
                line.quantity_received += quantity
        complete = all(line.quantity_received >= line.quantity_shipped for line in lines.values())
        if close or complete:
            for sku_id, line in lines.items():
                missing = line.quantity_shipped - line.quantity_received
                if missing > 0:
                    changes.append(
                        change(
                            MovementKind.TRANSFER_DISCREPANCY,
                            sku_id=sku_id,
                            location_id=destination,
                            quantity=missing,
                            transfer_id=transfer.pk,
                            guard=Guard.NONE,
                            note="shipped but never received",
                        )
                    )
                line.discrepancy = line.quantity_received - line.quantity_shipped
            transfer.status = TransferStatus.RECEIVED
            transfer.received_at = timezone.now()
        else:
            transfer.status = TransferStatus.PARTIALLY_RECEIVED
        if not changes and not close:
            raise InvalidQuantity("Nothing received.", details={"received": ["all zero"]})
        TransferLine.objects.bulk_update(list(lines.values()), ["quantity_received", "discrepancy"])
        transfer.save(update_fields=["status", "received_at"])
        stock_apply(operation=op, changes=changes)

    _run_operation(
        kind="transfer_receive",
        idempotency_key=idempotency_key,
        channel=SalesChannel.BACKOFFICE,
        actor=actor,
        reference=f"transfer:{transfer_id}",
        params={"transfer": transfer_id, "received": sorted(received.items()), "close": close},
        body=body,
    )
    return Transfer.objects.get(pk=transfer_id)


def transfer_cancel(*, transfer_id: int, actor: str = "") -> Transfer:
    with transaction.atomic():
        transfer = Transfer.objects.select_for_update(no_key=True).get(pk=transfer_id)
        if transfer.status == TransferStatus.CANCELLED:
            return transfer
        if transfer.status != TransferStatus.REQUESTED:
            raise TransferStateError("Only a transfer that has not shipped can be cancelled.")
        transfer.status = TransferStatus.CANCELLED
        transfer.save(update_fields=["status"])
    return transfer


# --------------------------------------------------------------------------------------------
# Safety stock (configuration, not a movement; it changes what online channels see)
# --------------------------------------------------------------------------------------------


def safety_stock_set(*, location_id: int, quantity: int, sku_id: int | None = None) -> int:
    """Set a location's safety stock (for SKUs without an override) or one SKU's override
    (`quantity` None with a sku_id removes the override). Returns the positions changed."""
    with transaction.atomic():
        # FOR NO KEY UPDATE: a plain FOR UPDATE would block the foreign-key checks of every
        # stock write at this location at their commit, while this waits for their positions.
        location = Location.objects.select_for_update(no_key=True).get(pk=location_id)
        if sku_id is None:
            validate_quantity(quantity, field_name="safety_stock", allow_zero=True)
            location.safety_stock = quantity
            location.save(update_fields=["safety_stock", "updated_at"])
            positions = StockPosition.objects.filter(
                location_id=location_id, safety_stock_override__isnull=True
            )
            new_value = quantity
        else:
            if quantity is not None:
                validate_quantity(quantity, field_name="safety_stock", allow_zero=True)
            _positions_for(
                [change(MovementKind.RECEIPT, sku_id=sku_id, location_id=location_id, quantity=1)]
            )
            positions = StockPosition.objects.filter(location_id=location_id, sku_id=sku_id)
            positions.update(safety_stock_override=quantity)
            new_value = location.safety_stock if quantity is None else quantity
        changed = list(
            positions.select_for_update(no_key=True)
            .exclude(safety_stock=new_value)
            .select_related("sku", "location")
        )
        positions.filter(pk__in=[p.pk for p in changed]).update(safety_stock=new_value)
        events = []
        for position in changed:
            before = position.available
            after = max(position.on_hand - position.reserved - position.unsellable - new_value, 0)
            if before != after:
                events.append(
                    (
                        "stock.available_changed",
                        {
                            "sku": position.sku.code,
                            "location": position.location.code,
                            "available": after,
                            "available_before": before,
                            "available_at_till": position.available_at_till,
                            "on_hand": position.on_hand,
                            "reserved": position.reserved,
                            "unsellable": position.unsellable,
                            "incoming": position.incoming,
                            "low_stock_threshold": position.location.low_stock_threshold,
                        },
                    )
                )
        events_record(events)
        transaction.on_commit(lambda: availability_changed({p.sku_id for p in changed}))
    return len(changed)

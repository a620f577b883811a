"""The router: pure functions over candidate data, no database access.

`orders.selectors.routing_candidates` fetches every candidate location with its available units
for the order's SKUs in two queries; the functions here rank them and decide. Keeping this pure
keeps it fast (a 10-line order over 500 locations routes in well under 5 ms) and easy to test.

Ranking: each rule of the channel's ordered list gives a candidate a score (lower is better);
candidates are sorted by the tuple of scores, so the first rule decides and the next ones only
break its ties; the location code breaks the last ties (deterministic). Distances are rounded to
0.1 km so that the next rules have ties to break.

Delivery: among locations that ship, one that can serve every line wins if any can; otherwise
lines are split with a greedy set cover (each round takes the location covering the most whole
lines, then the most units, ties by rank), which gives the fewest shipments in practice.

Click & collect: lines the pickup store can serve entirely are prepared there; the others are
sourced, by the same rules measured from the pickup store, from locations that ship, and come by
transfer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from stores.selectors import distance_km  # pure: the one haversine of the project

# How many ranked candidates a decision records in full; the rest are counted by reason.
RECORDED_CANDIDATES = 15
WAREHOUSE = "warehouse"


@dataclass(slots=True)
class Candidate:
    id: int
    code: str
    kind: str
    can_ship: bool
    allows_pickup: bool
    receives_transfers: bool
    priority: int
    latitude: float
    longitude: float
    transfer_days: int = 2
    capacity_left: int | None = None  # None: no daily cap
    capacity_cap: int | None = None
    capacity_day: date | None = None  # the local day an order placed now counts on there
    timezone: str = "Europe/Paris"
    stock: dict[int, int] = field(default_factory=dict)  # sku_id -> available units


@dataclass(frozen=True, slots=True)
class Need:
    line: int  # the order line number
    sku_id: int
    quantity: int
    sku_code: str = ""


@dataclass(slots=True)
class Assignment:
    location: Candidate
    kind: str  # "ship", "pickup_local" or "transfer" (orders.models.AllocationKind)
    lines: list[tuple[Need, int]]  # (need, units taken here)


@dataclass(slots=True)
class RoutingPlan:
    assignments: list[Assignment]
    short: list[dict]  # lines nobody can serve: {"line", "sku", "requested", "available"}
    rules: list[str]
    candidates: list[dict]  # what the decision log records
    outcome: str  # "single", "split", "pickup_local", "pickup_transfer", "refused"
    note: str = ""
    trigger: str = "placement"  # set by the caller: placement, rejection, transfer_short

    @property
    def ok(self) -> bool:
        return not self.short


def _scores(
    candidate: Candidate,
    needs: Sequence[Need],
    rules: Sequence[str],
    origin: tuple[float, float] | None,
    protect_units: int,
) -> tuple:
    stock = candidate.stock
    values = []
    for rule in rules:
        if rule == "distance":
            values.append(
                round(distance_km(origin[0], origin[1], candidate.latitude, candidate.longitude), 1)
                if origin
                else 0.0
            )
        elif rule == "priority":
            values.append(candidate.priority)
        elif rule == "protect_last_units":
            if candidate.kind == WAREHOUSE:
                values.append(0)
            else:
                values.append(
                    sum(
                        1
                        for need in needs
                        if stock.get(need.sku_id, 0) > 0
                        and stock.get(need.sku_id, 0) - need.quantity < protect_units
                    )
                )
        elif rule == "stock_depth":
            held = [stock[n.sku_id] - n.quantity for n in needs if stock.get(n.sku_id, 0) > 0]
            values.append(-min(held) if held else 0)
        elif rule == "warehouse_first":
            values.append(0 if candidate.kind == WAREHOUSE else 1)
        else:  # validated on save; an unknown name must not break routing
            values.append(0)
    return tuple(values)


def rank(
    candidates: Sequence[Candidate],
    needs: Sequence[Need],
    *,
    rules: Sequence[str],
    origin: tuple[float, float] | None,
    protect_units: int = 2,
) -> list[tuple[Candidate, tuple]]:
    """Candidates with their scores, best first."""
    scored = [(c, _scores(c, needs, rules, origin, protect_units)) for c in candidates]
    scored.sort(key=lambda pair: (pair[1], pair[0].code))
    return scored


def _missing(candidate: Candidate, needs: Sequence[Need]) -> list[str]:
    stock = candidate.stock
    return [
        f"{n.sku_code or n.sku_id}: {stock.get(n.sku_id, 0)} of {n.quantity}"
        for n in needs
        if stock.get(n.sku_id, 0) < n.quantity
    ]


def _serves_all(candidate: Candidate, needs: Sequence[Need]) -> bool:
    stock = candidate.stock
    return all(stock.get(n.sku_id, 0) >= n.quantity for n in needs)


def _record(
    ranked: list[tuple[Candidate, tuple]],
    rules: Sequence[str],
    chosen_ids: set[int],
    reasons: dict[int, str],
    skipped: dict[str, int],
) -> list[dict]:
    recorded = []
    for position, (candidate, scores) in enumerate(ranked[:RECORDED_CANDIDATES], start=1):
        recorded.append(
            {
                "location": candidate.code,
                "rank": position,
                "scores": dict(zip(rules, scores, strict=True)),
                "chosen": candidate.id in chosen_ids,
                "rejected": None if candidate.id in chosen_ids else reasons.get(candidate.id),
            }
        )
    if len(ranked) > RECORDED_CANDIDATES:
        skipped["ranked lower (not recorded in full)"] = len(ranked) - RECORDED_CANDIDATES
    if skipped:
        recorded.append({"others": dict(skipped)})
    return recorded


def _unusable_reason(candidate: Candidate, skus: set[int], exclude: set[int]) -> str | None:
    """Why a location cannot ship these lines (None: it can)."""
    if candidate.id in exclude:
        return "excluded (rejected the line, or the pickup store itself)"
    if not candidate.can_ship:
        return "does not ship"
    if candidate.capacity_left is not None and candidate.capacity_left <= 0:
        return "daily capacity reached"
    if not any(candidate.stock.get(sku, 0) > 0 for sku in skus):
        return "no stock for any line"
    return None


def _eligible_shippers(
    candidates: Sequence[Candidate], needs: Sequence[Need], exclude: set[int]
) -> tuple[list[Candidate], dict[str, int]]:
    skus = {n.sku_id for n in needs}
    eligible, skipped = [], {}
    for candidate in candidates:
        reason = _unusable_reason(candidate, skus, exclude)
        if reason is None:
            eligible.append(candidate)
        else:
            skipped[reason] = skipped.get(reason, 0) + 1
    return eligible, skipped


def _cover(
    ranked: list[tuple[Candidate, tuple]], needs: Sequence[Need], kind: str
) -> tuple[list[Assignment], list[Need]]:
    """Greedy set cover: fewest locations, splitting a line only when no location has it all."""
    remaining = {n.line: n.quantity for n in needs}
    by_line = {n.line: n for n in needs}
    order = [c for c, _ in ranked]
    used: dict[int, dict[int, int]] = {}  # location -> sku -> units already taken from it
    assignments: list[Assignment] = []
    while remaining:
        best, best_key = None, (0, 0)
        for candidate in order:
            taken = used.get(candidate.id, {})
            whole = units = 0
            for line, quantity in remaining.items():
                sku = by_line[line].sku_id
                free = candidate.stock.get(sku, 0) - taken.get(sku, 0)
                if free >= quantity:
                    whole += 1
                if free > 0:
                    units += min(free, quantity)
            key = (whole, units)
            if key > best_key:  # strict: ties keep the better-ranked candidate
                best, best_key = candidate, key
        if best is None:
            break
        taken = used.setdefault(best.id, {})
        picked = []
        for line in list(remaining):
            need = by_line[line]
            free = best.stock.get(need.sku_id, 0) - taken.get(need.sku_id, 0)
            units = min(free, remaining[line])
            if units <= 0:
                continue
            picked.append((need, units))
            taken[need.sku_id] = taken.get(need.sku_id, 0) + units
            remaining[line] -= units
            if remaining[line] == 0:
                del remaining[line]
        existing = next((a for a in assignments if a.location.id == best.id), None)
        if existing:
            existing.lines.extend(picked)
        else:
            assignments.append(Assignment(location=best, kind=kind, lines=picked))
    short = [
        Need(line=line, sku_id=by_line[line].sku_id, quantity=qty, sku_code=by_line[line].sku_code)
        for line, qty in remaining.items()
    ]
    return assignments, short


def _short_details(
    short: Sequence[Need],
    needs: Sequence[Need],
    usable: Sequence[Candidate],
    unusable: Sequence[tuple[Candidate, str]] = (),
) -> list[dict]:
    """Each short line with what was asked, what the usable locations hold in total, and the
    units that exist elsewhere with why they cannot be used (a store that does not ship…), so
    the answer says what exists, not only "0"."""
    requested = {n.line: n.quantity for n in needs}
    return [
        {
            "line": n.line,
            "sku": n.sku_code,
            "requested": requested.get(n.line, n.quantity),
            "available": sum(c.stock.get(n.sku_id, 0) for c in usable),
            "elsewhere": [
                {"location": c.code, "units": c.stock[n.sku_id], "why": why}
                for c, why in unusable
                if c.stock.get(n.sku_id, 0) > 0
            ],
        }
        for n in short
    ]


def _unusable(
    candidates: Sequence[Candidate], usable: Sequence[Candidate], needs, exclude: set[int]
) -> list[tuple[Candidate, str]]:
    usable_ids = {c.id for c in usable}
    skus = {n.sku_id for n in needs}
    return [
        (c, _unusable_reason(c, skus, exclude) or "already counted")
        for c in candidates
        if c.id not in usable_ids
    ]


def route_delivery(
    needs: Sequence[Need],
    candidates: Sequence[Candidate],
    *,
    rules: Sequence[str],
    origin: tuple[float, float] | None,
    protect_units: int = 2,
    exclude: frozenset[int] | set[int] = frozenset(),
) -> RoutingPlan:
    eligible, skipped = _eligible_shippers(candidates, needs, set(exclude))
    ranked = rank(eligible, needs, rules=rules, origin=origin, protect_units=protect_units)
    full = [(c, s) for c, s in ranked if _serves_all(c, needs)]
    reasons: dict[int, str] = {}
    if full:
        winner = full[0][0]
        for candidate, _ in ranked:
            missing = _missing(candidate, needs)
            reasons[candidate.id] = (
                "missing " + ", ".join(missing) if missing else "ranked lower by the rules"
            )
        plan = RoutingPlan(
            assignments=[Assignment(winner, "ship", [(n, n.quantity) for n in needs])],
            short=[],
            rules=list(rules),
            candidates=_record(ranked, rules, {winner.id}, reasons, skipped),
            outcome="single",
        )
        return plan
    assignments, short = _cover(ranked, needs, "ship")
    chosen = {a.location.id for a in assignments}
    for candidate, _ in ranked:
        reasons[candidate.id] = "missing " + ", ".join(_missing(candidate, needs))
    return RoutingPlan(
        assignments=assignments if not short else [],
        short=_short_details(
            short, needs, eligible, _unusable(candidates, eligible, needs, set(exclude))
        ),
        rules=list(rules),
        candidates=_record(ranked, rules, chosen if not short else set(), reasons, skipped),
        outcome="split" if not short else "refused",
        note="no single location can serve every line" if not short else "not enough stock",
    )


def route_pickup(
    needs: Sequence[Need],
    pickup: Candidate,
    candidates: Sequence[Candidate],
    *,
    rules: Sequence[str],
    protect_units: int = 2,
    exclude: frozenset[int] | set[int] = frozenset(),
    local_allowed: bool = True,
) -> RoutingPlan:
    """`local_allowed=False` when the pickup store itself is excluded (it rejected the line)."""
    local = [n for n in needs if local_allowed and pickup.stock.get(n.sku_id, 0) >= n.quantity]
    missing = [n for n in needs if n not in local]
    assignments = [Assignment(pickup, "pickup_local", [(n, n.quantity) for n in local])]
    if not missing:
        return RoutingPlan(
            assignments=assignments,
            short=[],
            rules=list(rules),
            candidates=[
                {"location": pickup.code, "rank": 1, "scores": {}, "chosen": True, "rejected": None}
            ],
            outcome="pickup_local",
        )
    if not local:
        assignments = []
    if not pickup.receives_transfers:
        return RoutingPlan(
            assignments=[],
            short=_short_details(
                missing,
                needs,
                [pickup],
                [
                    (c, f"{pickup.code} does not receive transfers")
                    for c in candidates
                    if c.id != pickup.id
                ],
            ),
            rules=list(rules),
            candidates=[],
            outcome="refused",
            note=f"{pickup.code} lacks some lines and does not receive transfers",
        )
    origin = (pickup.latitude, pickup.longitude)
    eligible, skipped = _eligible_shippers(candidates, missing, set(exclude) | {pickup.id})
    ranked = rank(eligible, missing, rules=rules, origin=origin, protect_units=protect_units)
    full = [c for c, _ in ranked if _serves_all(c, missing)]
    if full:
        sources = [Assignment(full[0], "transfer", [(n, n.quantity) for n in missing])]
        short: list[Need] = []
    else:
        sources, short = _cover(ranked, missing, "transfer")
        if short and local_allowed and any(pickup.stock.get(n.sku_id, 0) for n in missing):
            # Last resort: the store's own partial units, the rest by transfer.
            covered, short = _cover([(pickup, ()), *ranked], missing, "transfer")
            sources = []
            for assignment in covered:
                if assignment.location.id != pickup.id:
                    sources.append(assignment)
                elif assignments:
                    assignments[0].lines.extend(assignment.lines)
                else:
                    assignments = [Assignment(pickup, "pickup_local", assignment.lines)]
    reasons = {}
    for candidate, _ in ranked:
        lacking = _missing(candidate, missing)
        reasons[candidate.id] = (
            "missing " + ", ".join(lacking) if lacking else "ranked lower by the rules"
        )
    chosen = {a.location.id for a in sources} if not short else set()
    recorded = _record(ranked, rules, chosen, reasons, skipped)
    pickup_row = {
        "location": pickup.code,
        "rank": 0,
        "scores": {},
        "chosen": bool(assignments) and not short,
        "role": "pickup store",
        "rejected": None,
        "lacks": ", ".join(_missing(pickup, missing)) if local_allowed else "rejected the line",
    }
    if short:
        return RoutingPlan(
            assignments=[],
            short=_short_details(
                short,
                needs,
                usable := [pickup, *eligible] if local_allowed else eligible,
                _unusable(candidates, usable, missing, set(exclude) | {pickup.id}),
            ),
            rules=list(rules),
            candidates=[pickup_row, *recorded],
            outcome="refused",
            note="not enough stock in the network",
        )
    return RoutingPlan(
        assignments=assignments + sources,
        short=[],
        rules=list(rules),
        candidates=[pickup_row, *recorded],
        outcome="pickup_transfer",
        note=f"{len(missing)} line(s) come by transfer",
    )

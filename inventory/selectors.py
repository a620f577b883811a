"""Stock reads with rules in them: availability per channel, near me, the ledger."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from common.channels import is_online
from inventory.exceptions import UnknownLocation, UnknownSku
from inventory.models import Sku, StockMovement, StockPosition
from stores.models import Location, LocationKind
from stores.selectors import location_ready_by, locations_by_distance, locations_with_calendar

MAX_SKUS_PER_AVAILABILITY_CALL = 500


def sku_ids_by_code(codes: list[str]) -> dict[str, int]:
    """Map SKU codes to ids; UnknownSku names every code that does not exist."""
    found = dict(Sku.objects.filter(code__in=codes).values_list("code", "pk"))
    missing = [code for code in codes if code not in found]
    if missing:
        raise UnknownSku(f"Unknown SKU code(s): {', '.join(missing[:20])}.", details={"sku": missing})
    return found


def sku_get(*, code: str) -> Sku:
    sku = Sku.objects.filter(code=code).first()
    if sku is None:
        raise UnknownSku(f"No SKU with code {code!r}.", details={"sku": [code]})
    return sku


def location_ids_by_code(codes: list[str]) -> dict[str, int]:
    found = dict(Location.objects.filter(code__in=codes).values_list("code", "pk"))
    missing = [code for code in codes if code not in found]
    if missing:
        raise UnknownLocation(f"Unknown location code(s): {', '.join(missing)}.",
                              details={"location": missing})
    return found


def location_for_stock(*, code: str) -> Location:
    location = Location.objects.filter(code=code).first()
    if location is None:
        raise UnknownLocation(f"No location with code {code!r}.", details={"location": [code]})
    return location


def _serves_online(location: Location | dict) -> bool:
    if isinstance(location, dict):
        return location["kind"] == LocationKind.WAREHOUSE or location["allows_pickup"] or \
            location["ships_from_location"]
    return location.kind == LocationKind.WAREHOUSE or location.allows_pickup or location.ships_from_location


def availability_for_skus(
    *, sku_codes: list[str], channel: str, location_codes: list[str] | None = None,
    include_empty: bool = False,
) -> list[dict]:
    """Available units per location and across the network, for the caller's channel.

    Online channels see `available` (safety stock kept back) at active locations that serve
    online orders (the warehouse, stores with pickup or ship-from-store); the till channel sees
    `available_at_till` at every active location. One query for all SKUs and locations.
    """
    sku_ids = sku_ids_by_code(sku_codes)
    code_by_sku_id = {pk: code for code, pk in sku_ids.items()}
    online = is_online(channel)
    locations = Location.objects.filter(is_active=True)
    if location_codes:
        location_ids_by_code(location_codes)
        locations = locations.filter(code__in=location_codes)
    location_rows = {
        row["pk"]: row for row in locations.values("pk", "code", "kind", "allows_pickup",
                                                    "ships_from_location")
        if not online or _serves_online(row)
    }
    quantity_column = "available" if online else "available_at_till"
    filters = Q(sku_id__in=sku_ids.values(), location_id__in=location_rows.keys())
    if not include_empty:
        filters &= Q(**{f"{quantity_column}__gt": 0})
    per_sku: dict[int, list[dict]] = defaultdict(list)
    totals: dict[int, int] = defaultdict(int)
    rows = StockPosition.objects.filter(filters).values_list("sku_id", "location_id", quantity_column)
    for sku_id, location_id, quantity in rows:
        per_sku[sku_id].append({"location": location_rows[location_id]["code"], "available": quantity})
        totals[sku_id] += quantity
    result = []
    for code in sku_codes:
        sku_id = sku_ids[code]
        locations_for_sku = sorted(per_sku.get(sku_id, []), key=lambda entry: entry["location"])
        result.append({"sku": code_by_sku_id[sku_id], "available": totals.get(sku_id, 0),
                       "locations": locations_for_sku})
    return result


@dataclass(frozen=True)
class NearbyOffer:
    location: Location
    distance_km: float
    available: int
    ready_by: datetime | None


def availability_near(
    *, sku_code: str, latitude: float, longitude: float, channel: str, quantity: int = 1,
    radius_km: float | None = None, limit: int = 10, pickup_only: bool = True,
    at: datetime | None = None,
) -> list[NearbyOffer]:
    """The nearest locations that have `quantity` units of the SKU, with their pickup promise.

    `pickup_only` keeps click & collect stores (what a shopper asking "where can I get this
    today?" wants); otherwise every location serving the channel is listed. `ready_by` is when an
    order placed `at` (default now) would be ready, in the location's own time zone.
    """
    sku = sku_get(code=sku_code)
    online = is_online(channel)
    column = "available" if online else "available_at_till"
    stocked = dict(
        StockPosition.objects.filter(sku=sku, location__is_active=True, **{f"{column}__gte": quantity})
        .values_list("location_id", column)
    )
    candidates = Location.objects.filter(pk__in=stocked.keys())
    if pickup_only:
        candidates = candidates.filter(allows_pickup=True)
    ranked = locations_by_distance(
        locations_with_calendar(candidates), latitude=latitude, longitude=longitude,
        radius_km=radius_km,
    )
    if online and not pickup_only:
        ranked = [(loc, km) for loc, km in ranked if _serves_online(loc)]
    at = at or timezone.now()
    return [
        NearbyOffer(location=location, distance_km=round(km, 2), available=stocked[location.pk],
                    ready_by=location_ready_by(location, at=at))
        for location, km in ranked[:limit]
    ]


def movements_list(*, filters: dict | None = None) -> QuerySet[StockMovement]:
    return StockMovement.objects.select_related("sku", "location", "operation").filter(**(filters or {}))


def ledger_mismatches(*, position_ids: list[int] | None = None) -> list[dict]:
    """Positions whose quantities differ from the sum of their movements (should be none)."""
    sums = StockMovement.objects.values("position_id").annotate(
        on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta"),
        unsellable=Sum("unsellable_delta"), incoming=Sum("incoming_delta"),
    )
    positions = StockPosition.objects.all()
    if position_ids is not None:
        sums = sums.filter(position_id__in=position_ids)
        positions = positions.filter(pk__in=position_ids)
    expected = {row["position_id"]: row for row in sums}
    mismatches = []
    for position in positions.values("pk", "on_hand", "reserved", "unsellable", "incoming"):
        row = expected.get(position["pk"], {})
        for bucket in ("on_hand", "reserved", "unsellable", "incoming"):
            if position[bucket] != (row.get(bucket) or 0):
                mismatches.append({"position": position["pk"], "bucket": bucket,
                                   "projection": position[bucket], "ledger": row.get(bucket) or 0})
    return mismatches

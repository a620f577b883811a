"""Stock reads with rules in them: availability per channel, near me, the ledger."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db.models import QuerySet, Sum
from django.utils import timezone

from common.cache import REDIS_DOWN
from common.channels import is_online
from inventory.exceptions import UnknownLocation, UnknownSku
from inventory.models import Sku, StockMovement, StockPosition
from stores.models import Location, LocationKind
from stores.selectors import location_ready_by, locations_by_distance, locations_with_calendar

logger = logging.getLogger(__name__)

MAX_SKUS_PER_AVAILABILITY_CALL = 500


def _ids_by_code(model, codes: list[str]) -> dict[str, int]:
    if not codes:
        return {}
    return dict(model.objects.filter(code__in=codes).values_list("code", "pk"))


def sku_ids_by_code(codes: list[str]) -> dict[str, int]:
    """Map SKU codes to ids; UnknownSku names every code that does not exist."""
    found = _ids_by_code(Sku, codes)
    missing = [code for code in codes if code not in found]
    if missing:
        raise UnknownSku(
            f"Unknown SKU code(s): {', '.join(missing[:20])}.", details={"sku": missing}
        )
    return found


def sku_get(*, code: str) -> Sku:
    sku = Sku.objects.filter(code=code).first()
    if sku is None:
        raise UnknownSku(f"No SKU with code {code!r}.", details={"sku": [code]})
    return sku


def location_ids_by_code(codes: list[str]) -> dict[str, int]:
    found = _ids_by_code(Location, codes)
    missing = [code for code in codes if code not in found]
    if missing:
        raise UnknownLocation(
            f"Unknown location code(s): {', '.join(missing)}.", details={"location": missing}
        )
    return found


def location_for_stock(*, code: str) -> Location:
    location = Location.objects.filter(code=code).first()
    if location is None:
        raise UnknownLocation(f"No location with code {code!r}.", details={"location": [code]})
    return location


def _serves_online(location: Location | dict) -> bool:
    if isinstance(location, dict):
        return (
            location["kind"] == LocationKind.WAREHOUSE
            or location["allows_pickup"]
            or location["ships_from_location"]
        )
    return (
        location.kind == LocationKind.WAREHOUSE
        or location.allows_pickup
        or location.ships_from_location
    )


@dataclass(frozen=True)
class SkuAvailability:
    sku: str
    available: int
    locations_json: str  # '[{"location":"PARIS-RIVOLI","available":3},...]', by location code

    def as_dict(self) -> dict:
        return {
            "sku": self.sku,
            "available": self.available,
            "locations": json.loads(self.locations_json),
        }


# Availability cache. Each SKU has a version number, bumped after every commit that changes its
# stock (`availability_changed`); cached answers are stored under the version they were computed
# at, so an answer computed from an older snapshot is never read again once the version moved.
# With a shared cache (Redis) answers are therefore as fresh as the database; with the embedded
# per-process cache, another process's change is seen after AVAILABILITY_CACHE_SECONDS at most.
_VERSION_KEY = "avail:v:{}"
local_cache = caches["local"]
_LOCATIONS_VERSION_KEY = "avail:locations:v"


# Versions whose bump was lost because Redis did not answer: bumped with this process's next
# change. Until then (or AVAILABILITY_CACHE_SECONDS) an answer cached before the outage may be
# read again: availability is advice, placements and reservations are decided by the ledger.
_unbumped: set[str] = set()


def availability_changed(sku_ids) -> None:
    """After commit: bump the SKUs' versions. Never raises: the change is committed whatever
    happens to the cache."""
    keys = {_VERSION_KEY.format(sku_id) for sku_id in set(sku_ids)} | _unbumped
    backend = caches["default"]
    try:
        if isinstance(backend, RedisCache):  # one round trip (Django's incr() makes two)
            _bump_many_on_redis(backend, list(keys))
        else:
            for key in keys:
                _bump(key)
    except REDIS_DOWN:
        _unbumped.update(keys)
        logger.warning("Availability versions not bumped (Redis down): %d kept", len(keys))
        return
    _unbumped.difference_update(keys)


def _bump_many_on_redis(backend: RedisCache, keys: list[str]) -> None:
    """Every key bumped in one round trip (a till's batch changes hundreds of SKUs, and even one
    key costs Django's incr() two): SET NX to a fresh value where absent, as `_bump` does, then
    INCR. Django's Redis cache stores
    integers unpickled, so its own get() reads these."""
    fresh = int(time.time() * 1000)
    pipeline = backend._cache.get_client(write=True).pipeline(transaction=False)
    for key in keys:
        cache_key = backend.make_and_validate_key(key)
        pipeline.set(cache_key, fresh, nx=True)
        pipeline.incr(cache_key)
    pipeline.execute()


def availability_locations_changed() -> None:
    _bump(_LOCATIONS_VERSION_KEY)


def _bump(key: str) -> None:
    try:
        cache.incr(key)
    except ValueError:  # never bumped yet (or evicted): any new value differs from "absent"
        cache.set(key, int(time.time() * 1000), None)


def _serving_locations(online: bool, locations_version) -> dict[int, str]:
    key = f"avail:locations:{'online' if online else 'till'}:{locations_version}"
    serving = cache.get(key)
    if serving is None:
        serving = {
            row["pk"]: row["code"]
            for row in Location.objects.filter(is_active=True).values(
                "pk", "code", "kind", "allows_pickup", "ships_from_location"
            )
            if not online or _serves_online(row)
        }
        cache.set(key, serving, settings.OMNISTOCK["AVAILABILITY_CACHE_SECONDS"])
    return serving


def availability_for_skus(
    *,
    sku_codes: list[str],
    channel: str,
    location_codes: list[str] | None = None,
    include_empty: bool = False,
) -> list[SkuAvailability]:
    """Available units per location and across the network, for the caller's channel.

    Online channels see `available` (safety stock kept back) at active locations that serve
    online orders (the warehouse, stores with pickup or ship-from-store); the till channel sees
    `available_at_till` at every active location. Per-SKU answers come from the versioned cache
    above; misses are computed in one query and cached.
    """
    sku_ids = sku_ids_by_code(sku_codes)
    online = is_online(channel)
    column = "available" if online else "available_at_till"
    versions = cache.get_many(
        [_VERSION_KEY.format(pk) for pk in sku_ids.values()] + [_LOCATIONS_VERSION_KEY]
    )
    locations_version = versions.get(_LOCATIONS_VERSION_KEY, 0)
    serving = _serving_locations(online, locations_version)
    if location_codes:
        wanted = set(location_ids_by_code(location_codes).values())
        serving = {pk: code for pk, code in serving.items() if pk in wanted}
        entries = _availability_entries(list(sku_ids.values()), serving, column)
    else:
        data_keys = {
            pk: f"avail:{column}:{pk}:{versions.get(_VERSION_KEY.format(pk), 0)}:"
            f"{locations_version}"
            for pk in sku_ids.values()
        }
        entries = _cached_entries(data_keys)
        missing = [pk for pk in sku_ids.values() if pk not in entries]
        if missing:
            computed = _availability_entries(missing, serving, column)
            fresh = {data_keys[pk]: computed[pk] for pk in missing}
            timeout = settings.OMNISTOCK["AVAILABILITY_CACHE_SECONDS"]
            local_cache.set_many(fresh, timeout)
            if cache is not local_cache:
                cache.set_many(fresh, timeout)
            entries.update(computed)
    result = []
    for code in sku_codes:
        total, with_zeros, without_zeros = entries[sku_ids[code]]
        result.append(
            SkuAvailability(
                sku=code,
                available=total,
                locations_json=with_zeros if include_empty else without_zeros,
            )
        )
    return result


def _cached_entries(data_keys: dict[int, str]) -> dict[int, tuple]:
    """Versioned entries: first from this process's memory, then from the shared cache."""
    found = local_cache.get_many(list(data_keys.values()))
    remaining = [key for key in data_keys.values() if key not in found]
    if remaining and cache is not local_cache:
        shared = cache.get_many(remaining)
        if shared:
            local_cache.set_many(shared, settings.OMNISTOCK["AVAILABILITY_CACHE_SECONDS"])
            found.update(shared)
    return {pk: found[key] for pk, key in data_keys.items() if key in found}


def _availability_entries(
    sku_ids: list[int], serving: dict[int, str], column: str
) -> dict[int, tuple[int, str, str]]:
    """(total, locations JSON with zeros, locations JSON without) per SKU, in one query."""
    per_sku: dict[int, list[tuple[str, int]]] = {pk: [] for pk in sku_ids}
    rows = StockPosition.objects.filter(
        sku_id__in=sku_ids, location_id__in=serving.keys()
    ).values_list("sku_id", "location_id", column)
    for sku_id, location_id, quantity in rows:
        per_sku[sku_id].append((serving[location_id], quantity))
    entries = {}
    for sku_id, pairs in per_sku.items():
        pairs.sort()
        rendered = [
            (f'{{"location":{json.dumps(code)},"available":{quantity}}}', quantity)
            for code, quantity in pairs
        ]
        entries[sku_id] = (
            sum(quantity for _, quantity in pairs),
            "[" + ",".join(text for text, _ in rendered) + "]",
            "[" + ",".join(text for text, quantity in rendered if quantity > 0) + "]",
        )
    return entries


@dataclass(frozen=True)
class NearbyOffer:
    location: Location
    distance_km: float
    available: int
    ready_by: datetime | None


def availability_near(
    *,
    sku_code: str,
    latitude: float,
    longitude: float,
    channel: str,
    quantity: int = 1,
    radius_km: float | None = None,
    limit: int = 10,
    pickup_only: bool = True,
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
        StockPosition.objects.filter(
            sku=sku, location__is_active=True, **{f"{column}__gte": quantity}
        ).values_list("location_id", column)
    )
    candidates = Location.objects.filter(pk__in=stocked.keys())
    if pickup_only:
        candidates = candidates.filter(allows_pickup=True)
    ranked = locations_by_distance(
        locations_with_calendar(candidates),
        latitude=latitude,
        longitude=longitude,
        radius_km=radius_km,
    )
    if online and not pickup_only:
        ranked = [(loc, km) for loc, km in ranked if _serves_online(loc)]
    at = at or timezone.now()
    return [
        NearbyOffer(
            location=location,
            distance_km=round(km, 2),
            available=stocked[location.pk],
            ready_by=location_ready_by(location, at=at),
        )
        for location, km in ranked[:limit]
    ]


def movements_list(*, filters: dict | None = None) -> QuerySet[StockMovement]:
    return StockMovement.objects.select_related("sku", "location", "operation").filter(
        **(filters or {})
    )


def ledger_mismatches(*, position_ids: list[int] | None = None) -> list[dict]:
    """Positions whose quantities differ from the sum of their movements (should be none)."""
    sums = StockMovement.objects.values("position_id").annotate(
        on_hand=Sum("on_hand_delta"),
        reserved=Sum("reserved_delta"),
        unsellable=Sum("unsellable_delta"),
        incoming=Sum("incoming_delta"),
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
                mismatches.append(
                    {
                        "position": position["pk"],
                        "bucket": bucket,
                        "projection": position[bucket],
                        "ledger": row.get(bucket) or 0,
                    }
                )
    return mismatches

"""The stores' side of the omnichannel promise, per location: how often a store says "no" to a
line it was given (and why), how often an order had to be routed again, how much of its daily
click & collect capacity it used, and its share of home deliveries (ship-from-store)."""

from __future__ import annotations

from django.db.models import Avg, Count, F, Max, Q
from django.utils.translation import gettext_lazy as _

from analytics.kpis.table import Table
from analytics.periods import Period
from analytics.stats import share
from orders.models import (
    Allocation,
    AllocationKind,
    AllocationLine,
    LocationDayLoad,
    OrderEvent,
    RoutingDecision,
)
from stores.models import Location, LocationKind

COLUMNS = [
    ("location", _("location")),
    ("lines_given", _("lines given to prepare")),
    ("lines_rejected", _("lines rejected")),
    ("rejection_rate", _("rejection rate")),
    ("not_on_shelf", _("not on the shelf")),
    ("damaged", _("damaged")),
    ("orders_served", _("orders served")),
    ("orders_rerouted", _("orders routed again")),
    ("reroute_rate", _("re-routing rate")),
    ("capacity_use_average", _("capacity used (daily average)")),
    ("capacity_use_max", _("capacity used (busiest day)")),
    ("deliveries_shipped", _("home deliveries shipped")),
    ("ship_from_store_share", _("share of all home deliveries")),
]


def stores(period: Period) -> Table:
    locations = Location.objects.filter(is_active=True).order_by("kind", "code")
    if period.location_ids is not None:
        locations = locations.filter(pk__in=period.location_ids)
    every_allocation = Allocation.objects.filter(**period.within("created_at"))
    lines = AllocationLine.objects.filter(**period.within("allocation__created_at"))
    if period.channel:
        every_allocation = every_allocation.filter(order__channel=period.channel)
        lines = lines.filter(allocation__order__channel=period.channel)
    allocations = every_allocation  # the locations shown: a manager's, or all
    if period.location_ids is not None:
        allocations = allocations.filter(location_id__in=period.location_ids)
        lines = lines.filter(allocation__location_id__in=period.location_ids)

    lines_given = dict(lines.values_list("allocation__location").annotate(n=Count("pk")))
    rejections = {
        row["location"]: row
        for row in OrderEvent.objects.filter(kind="line_rejected", **period.within("occurred_at"))
        .filter(**({"order__channel": period.channel} if period.channel else {}))
        .annotate(location=F("data__location"))
        .values("location")
        .annotate(
            total=Count("pk"),
            not_on_shelf=Count("pk", filter=Q(data__reason="not_on_shelf")),
            damaged=Count("pk", filter=Q(data__reason="damaged")),
        )
    }
    served = dict(allocations.values_list("location").annotate(n=Count("order", distinct=True)))
    # routed again: a decision after placement, never older than the allocation it made
    rerouted_orders = (
        RoutingDecision.objects.filter(created_at__gte=period.start)
        .exclude(trigger="placement")
        .values("order")
    )
    rerouted = dict(
        allocations.filter(order__in=rerouted_orders)
        .values_list("location")
        .annotate(n=Count("order", distinct=True))
    )
    loads = {
        row["location"]: row
        for row in LocationDayLoad.objects.filter(
            day__gte=period.first_day,
            day__lte=period.last_day,
            location__daily_order_capacity__gt=0,
        )  # fmt: skip
        .annotate(use=F("orders") * 1.0 / F("location__daily_order_capacity"))
        .values("location")
        .annotate(average=Avg("use"), busiest=Max("use"))
    }
    shipped = allocations.filter(kind=AllocationKind.SHIP)
    shipped_by = dict(shipped.values_list("location").annotate(n=Count("pk")))
    all_shipped = every_allocation.filter(kind=AllocationKind.SHIP).count()  # the chain's

    rows = []
    for location in locations:
        rejected = rejections.get(location.pk, {})
        load = loads.get(location.pk, {})
        given = lines_given.get(location.pk, 0)
        rows.append(
            {
                "location": location.code,
                "kind": location.kind,
                "lines_given": given,
                "lines_rejected": rejected.get("total", 0),
                "rejection_rate": share(rejected.get("total", 0), given),
                "not_on_shelf": rejected.get("not_on_shelf", 0),
                "damaged": rejected.get("damaged", 0),
                "orders_served": served.get(location.pk, 0),
                "orders_rerouted": rerouted.get(location.pk, 0),
                "reroute_rate": share(rerouted.get(location.pk, 0), served.get(location.pk)),
                "capacity_use_average": _rounded(load.get("average")),
                "capacity_use_max": _rounded(load.get("busiest")),
                "deliveries_shipped": shipped_by.get(location.pk, 0),
                "ship_from_store_share": share(shipped_by.get(location.pk, 0), all_shipped)
                if location.kind == LocationKind.STORE
                else None,
            }
        )
    return Table(
        name="stores",
        title=_("Stores: rejections, re-routing, capacity, ship-from-store"),
        columns=COLUMNS,
        rows=rows,
        notes=_(
            "Lines given: order lines allocated to the location in the period. Routed again: "
            "orders of the location with a routing decision after placement (a rejection, a "
            "short transfer). Capacity: click & collect orders per day over the daily capacity."
        ),
    )


def _rounded(value) -> float | None:
    return None if value is None else round(float(value), 4)

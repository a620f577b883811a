"""Stock availability from the nightly rollups: the stock-out rate per location (share of
SKU-days with nothing to sell) and the unified stock gain (SKUs sellable online counting every
location versus the warehouses alone — the case this project started from: × 4)."""

from __future__ import annotations

from django.db.models import Count, Sum
from django.utils.translation import gettext_lazy as _

from analytics.kpis.table import Table
from analytics.models import CatalogueDay, StockDay
from analytics.periods import Period
from analytics.stats import share


def stock_outs(period: Period) -> Table:
    days = StockDay.objects.filter(day__gte=period.first_day, day__lte=period.last_day)
    if period.location_ids is not None:
        days = days.filter(location_id__in=period.location_ids)
    rows = [
        {
            "location": row["location__code"],
            "days": row["days"],
            "sku_days": row["listed"],
            "sku_days_out": row["listed"] - row["sellable"],
            "stock_out_rate": share(row["listed"] - row["sellable"], row["listed"]),
        }
        for row in days.values("location__code")
        .annotate(days=Count("day"), listed=Sum("skus_listed"), sellable=Sum("skus_sellable"))
        .order_by("location__code")
    ]
    return Table(
        name="stock_outs",
        title=_("Stock-out rate per location"),
        columns=[
            ("location", _("location")),
            ("days", _("days")),
            ("sku_days", _("SKU-days listed")),
            ("sku_days_out", _("SKU-days with nothing to sell")),
            ("stock_out_rate", _("stock-out rate")),
        ],
        rows=rows,
        notes=_("From the nightly stock rollup (end of each day, report clock)."),
    )


def unified_stock(period: Period) -> Table:
    rows = [
        {
            "day": day.day.isoformat(),
            "skus_active": day.skus_active,
            "sellable_warehouse_only": day.sellable_warehouse_only,
            "sellable_anywhere": day.sellable_anywhere,
            "warehouse_only_share": share(day.sellable_warehouse_only, day.skus_active),
            "anywhere_share": share(day.sellable_anywhere, day.skus_active),
            "gain": share(day.sellable_anywhere, day.sellable_warehouse_only),
        }
        for day in CatalogueDay.objects.filter(
            day__gte=period.first_day, day__lte=period.last_day
        ).order_by("day")
    ]
    return Table(
        name="unified_stock",
        title=_("Unified stock gain"),
        columns=[
            ("day", _("day")),
            ("skus_active", _("active SKUs")),
            ("sellable_warehouse_only", _("sellable online, warehouses only")),
            ("sellable_anywhere", _("sellable online, every location")),
            ("warehouse_only_share", _("share sellable, warehouses only")),
            ("anywhere_share", _("share sellable, every location")),
            ("gain", _("gain (× availability)")),
        ],
        rows=rows,
        notes=_(
            "A SKU is sellable online where a location serving online orders (the warehouses, "
            "click & collect and ship-from-store stores) holds more units than its safety stock."
        ),
    )

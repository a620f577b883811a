"""The KPI dashboard in the back office: charts (Chart.js, vendored) and the tables of the
reports API for a period. Staff need the KPI permission; store staff see their stores only
(analytics.access), head office every location."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext as _

from analytics.access import report_location_ids
from analytics.kpis import TABLES
from analytics.models import CatalogueDay, StockDay
from analytics.periods import GRANULARITIES, period_parse
from analytics.stats import share
from common.admin_utils import ReadOnlyAdminMixin
from common.exceptions import DomainError

DASHBOARD_TABLES = [
    "sales", "click-and-collect", "stores", "stock-outs", "unified-stock", "customers",
    "campaigns", "points", "tender-mix", "liabilities",
]  # fmt: skip


@admin.register(StockDay)
class StockDayAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["day", "location", "skus_listed", "skus_sellable"]
    list_filter = ["location"]
    date_hierarchy = "day"


@admin.register(CatalogueDay)
class CatalogueDayAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["day", "skus_active", "sellable_warehouse_only", "sellable_anywhere"]
    date_hierarchy = "day"

    def get_urls(self):
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard),
                name="analytics_dashboard",
            ),
            *super().get_urls(),
        ]

    def dashboard(self, request):
        allowed = report_location_ids(request.user)
        if allowed is False:
            raise PermissionDenied
        error = ""
        try:
            period = period_parse(
                first_day=_day(request.GET.get("from")),
                last_day=_day(request.GET.get("to")),
                granularity=request.GET.get("granularity") or "week",
                location_ids=allowed,
            )
        except DomainError as exc:
            error = exc.message
            period = period_parse(first_day=None, last_day=None, granularity="week",
                                  location_ids=allowed)  # fmt: skip
        tables = {name: TABLES[name](period) for name in DASHBOARD_TABLES}
        return TemplateResponse(
            request,
            "analytics/dashboard.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Omnichannel KPIs"),
                "period": period,
                "granularities": list(GRANULARITIES),
                "error": error,
                # each table with its API name (the CSV link) and its cells in column order
                "tables": [
                    (
                        name,
                        tables[name],
                        [
                            [row.get(key) for key, _label in tables[name].columns]
                            for row in tables[name].rows
                        ],
                    )
                    for name in DASHBOARD_TABLES
                ],  # fmt: skip
                "charts": _charts(tables),  # json_script in the template
                "scoped": allowed is not None,
            },
        )


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _charts(tables) -> dict:
    """What each chart draws, from the tables (a few dozen rows: the SQL did the work)."""
    revenue: dict[str, dict[str, float]] = defaultdict(dict)
    for row in tables["sales"].rows:
        per_bucket = revenue[row["channel"]]
        per_bucket[row["bucket"]] = per_bucket.get(row["bucket"], 0) + float(row["revenue"])
    buckets = sorted({row["bucket"] for row in tables["sales"].rows})

    funnel = defaultdict(int)
    per_store = defaultdict(lambda: {"ready": 0, "on_time": 0})
    for row in tables["click-and-collect"].rows:
        for step in ("orders", "ready", "collected", "expired"):
            funnel[step] += row[step]
        per_store[row["store"]]["ready"] += row["ready"]
        per_store[row["store"]]["on_time"] += row["on_time"]
    stores = sorted(per_store)
    unified = tables["unified-stock"].rows
    return {
        "sales": {
            "labels": buckets,
            "series": {
                channel: [values.get(b, 0) for b in buckets]
                for channel, values in sorted(revenue.items())
            },  # fmt: skip
        },
        "funnel": {
            "labels": [_("placed"), _("made ready"), _("collected"), _("never collected")],
            "values": [funnel["orders"], funnel["ready"], funnel["collected"], funnel["expired"]],
        },
        "on_time": {
            "labels": stores,
            "values": [share(per_store[s]["on_time"], per_store[s]["ready"]) for s in stores],
        },
        "stock_outs": {
            "labels": [row["location"] for row in tables["stock-outs"].rows],
            "values": [row["stock_out_rate"] for row in tables["stock-outs"].rows],
        },
        "unified": {
            "labels": [row["day"] for row in unified],
            "warehouse": [row["warehouse_only_share"] for row in unified],
            "anywhere": [row["anywhere_share"] for row in unified],
        },
        "o2o": {
            "labels": [row["campaign"] for row in tables["campaigns"].rows],
            "values": [row["o2o_conversion"] for row in tables["campaigns"].rows],
        },
        "titles": {
            "sales": _("Revenue per channel"),
            "funnel": _("Click & collect funnel"),
            "on_time": _("Ready on time, per store"),
            "stock_outs": _("Stock-out rate per location"),
            "unified": _("Share of SKUs sellable online"),
            "warehouse": _("warehouses only"),
            "anywhere": _("every location (unified stock)"),
            "o2o": _("O2O conversion per campaign"),
        },
    }

"""The KPI tables, by name: each is a function of a Period returning a Table, computed with
set-based ORM queries (aggregates, window functions), never a Python loop over orders. The
API (`/api/v1/kpis/<name>/`), its CSV export and the admin dashboard all read this registry."""

from analytics.kpis.click_collect import click_and_collect
from analytics.kpis.customers import customers
from analytics.kpis.loyalty import campaigns, points
from analytics.kpis.payments import liabilities, tender_mix
from analytics.kpis.sales import sales
from analytics.kpis.stock import stock_outs, unified_stock
from analytics.kpis.stores import stores
from analytics.kpis.table import Table

TABLES = {
    "sales": sales,
    "click-and-collect": click_and_collect,
    "stores": stores,
    "stock-outs": stock_outs,
    "unified-stock": unified_stock,
    "customers": customers,
    "points": points,
    "campaigns": campaigns,
    "tender-mix": tender_mix,
    "liabilities": liabilities,
}

__all__ = ["TABLES", "Table"]

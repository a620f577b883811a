"""Click & collect per pickup store: how many orders, their share of all orders, how long from
placed to ready (median, p90) against the promise, the share ready on time, collected and
never collected (expired), and how long customers take to come (ready → collected)."""

from __future__ import annotations

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q
from django.utils.translation import gettext_lazy as _

from analytics.kpis.scope import orders_placed
from analytics.kpis.table import Table
from analytics.periods import Period
from analytics.stats import hours, percentiles, share
from orders.models import FulfilmentType, OrderStatus

COLUMNS = [
    ("bucket", _("period")),
    ("store", _("pickup store")),
    ("orders", _("orders")),
    ("ready", _("made ready")),
    ("on_time", _("ready on time (orders)")),
    ("collected", _("collected (orders)")),
    ("expired", _("never collected (orders)")),
    ("share_of_orders", _("share of all orders")),
    ("promised_hours_median", _("promised hours (median)")),
    ("ready_hours_median", _("hours to ready (median)")),
    ("ready_hours_p90", _("hours to ready (p90)")),
    ("on_time_share", _("ready on time")),
    ("collected_share", _("collected")),
    ("expired_share", _("never collected")),
    ("collect_hours_median", _("hours ready → collected (median)")),
]


def click_and_collect(period: Period) -> Table:
    every_order = orders_placed(period).annotate(bucket=period.bucket("placed_at"))
    all_orders = dict(every_order.values_list("bucket").annotate(n=Count("pk")))
    orders = every_order.filter(fulfilment=FulfilmentType.PICKUP).annotate(
        store=F("pickup_location__code"),
        promised=_between("placed_at", "ready_by"),
        to_ready=_between("placed_at", "ready_at"),
        to_collect=_between("ready_at", "closed_at"),
    )
    group = ["bucket", "store"]
    promised = percentiles(orders, value="promised", group_by=group, fractions=[0.5])
    to_ready = percentiles(orders, value="to_ready", group_by=group, fractions=[0.5, 0.9])
    to_collect = percentiles(
        orders.filter(status=OrderStatus.COLLECTED), value="to_collect", group_by=group,
        fractions=[0.5],
    )  # fmt: skip
    rows = []
    for found in (
        orders.values(*group)
        .annotate(
            orders=Count("pk"),
            reached_ready=Count("pk", filter=Q(ready_at__isnull=False)),
            on_time=Count("pk", filter=Q(ready_at__lte=F("ready_by"))),
            collected=Count("pk", filter=Q(status=OrderStatus.COLLECTED)),
            expired=Count("pk", filter=Q(status=OrderStatus.EXPIRED)),
        )
        .order_by(*group)
    ):
        key = (found["bucket"], found["store"])
        rows.append(
            {
                "bucket": found["bucket"].isoformat(),
                "store": found["store"],
                "orders": found["orders"],
                "ready": found["reached_ready"],
                "on_time": found["on_time"],
                "collected": found["collected"],
                "expired": found["expired"],
                "share_of_orders": share(found["orders"], all_orders.get(found["bucket"])),
                "promised_hours_median": hours(promised.get(key, {}).get(0.5)),
                "ready_hours_median": hours(to_ready.get(key, {}).get(0.5)),
                "ready_hours_p90": hours(to_ready.get(key, {}).get(0.9)),
                "on_time_share": share(found["on_time"], found["reached_ready"]),
                "collected_share": share(found["collected"], found["reached_ready"]),
                "expired_share": share(found["expired"], found["reached_ready"]),
                "collect_hours_median": hours(to_collect.get(key, {}).get(0.5)),
            }
        )
    return Table(
        name="click_and_collect",
        title=_("Click & collect"),
        columns=COLUMNS,
        rows=rows,
        notes=_(
            "By the day the order was placed. On time: ready by the promised time. Collected "
            "and never collected are shares of the orders that were made ready."
        ),
    )


def _between(start: str, end: str):
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())

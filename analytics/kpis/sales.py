"""Sales per channel over time: orders, units, booked revenue (by currency), average basket,
returns and the refund rate. Online and click & collect orders come from the orders app; the
tills' own sales (POS receipts) are the `store` channel's, next to orders placed at a till."""

from __future__ import annotations

from django.db.models import Count, Q, Sum
from django.utils.translation import gettext_lazy as _

from analytics.kpis.scope import orders_placed, placed_in
from analytics.kpis.table import Table
from analytics.periods import Period
from analytics.stats import amount_text, share
from common.channels import SalesChannel
from integrations.models import PosEventType, StoreReceipt
from orders.models import OrderLine, OrderStatus, Return

# An order cancelled or not collected was never sold: it counts as placed, not as revenue.
NOT_SOLD = [OrderStatus.CANCELLED, OrderStatus.EXPIRED]

COLUMNS = [
    ("bucket", _("period")),
    ("channel", _("channel")),
    ("currency", _("currency")),
    ("placed", _("orders placed")),
    ("orders", _("orders sold")),
    ("units", _("units")),
    ("revenue", _("revenue")),
    ("average_basket", _("average basket")),
    ("returns", _("returns")),
    ("refunded", _("refunded")),
    ("refund_rate", _("refund rate")),
]


def sales(period: Period) -> Table:
    rows: dict[tuple, dict] = {}

    def row(bucket, channel, currency) -> dict:
        key = (bucket, channel, currency)
        if key not in rows:
            rows[key] = {
                "bucket": bucket.isoformat(), "channel": channel, "currency": currency,
                "placed": 0, "orders": 0, "units": 0, "revenue": 0, "returns": 0, "refunded": 0,
            }  # fmt: skip
        return rows[key]

    orders = orders_placed(period).annotate(bucket=period.bucket("placed_at"))
    for found in orders.values("bucket", "channel", "currency").annotate(
        placed=Count("pk"),
        orders=Count("pk", filter=~Q(status__in=NOT_SOLD)),
        revenue=Sum("total_amount", filter=~Q(status__in=NOT_SOLD)),
    ):
        line = row(found["bucket"], found["channel"], found["currency"])
        line["placed"] += found["placed"]
        line["orders"] += found["orders"]
        line["revenue"] += found["revenue"] or 0

    sold_lines = OrderLine.objects.filter(placed_in(period, via="order__")).exclude(
        order__status__in=NOT_SOLD
    )
    for found in (
        sold_lines.annotate(bucket=period.bucket("order__placed_at"))
        .values("bucket", "order__channel", "order__currency")
        .annotate(units=Sum("quantity"))
    ):
        row(found["bucket"], found["order__channel"], found["order__currency"])["units"] += (
            found["units"] or 0
        )

    for found in _returns(period):
        line = row(found["bucket"], found["order__channel"], found["currency"])
        line["returns"] += found["returns"]
        line["refunded"] += found["refunded"] or 0

    if period.channel in (None, SalesChannel.STORE):
        for found in _till_receipts(period):
            line = row(found["bucket"], SalesChannel.STORE, found["currency"])
            line["placed"] += found["sales"]
            line["orders"] += found["sales"]
            line["units"] += found["units"] or 0
            line["revenue"] += found["revenue"] or 0
            line["returns"] += found["returns"]
            line["refunded"] += found["refunded"] or 0

    for line in rows.values():
        basket = line["revenue"] / line["orders"] if line["orders"] else None
        line["average_basket"] = None if basket is None else amount_text(basket, line["currency"])
        line["refund_rate"] = share(line["refunded"], line["revenue"])
        line["revenue"] = amount_text(line["revenue"], line["currency"])
        line["refunded"] = amount_text(line["refunded"], line["currency"])
    return Table(
        name="sales",
        title=_("Sales per channel"),
        columns=COLUMNS,
        rows=[rows[key] for key in sorted(rows)],
        notes=_(
            "Orders by the day they were placed; revenue counts the orders not cancelled nor "
            "expired. Till receipts are store sales. Returns by the day they came back, in the "
            "channel of the order (till returns in store)."
        ),
    )


def _returns(period: Period):
    returns = Return.objects.filter(**period.within("created_at"))
    if period.channel:
        returns = returns.filter(order__channel=period.channel)
    if period.location_ids is not None:
        returns = returns.filter(location_id__in=period.location_ids)
    return (
        returns.annotate(bucket=period.bucket("created_at"))
        .values("bucket", "order__channel", "currency")
        .annotate(returns=Count("pk"), refunded=Sum("refund_amount"))
    )


def _till_receipts(period: Period):
    receipts = StoreReceipt.objects.filter(**period.within("occurred_at"))
    if period.location_ids is not None:
        receipts = receipts.filter(location_id__in=period.location_ids)
    sale, back = Q(kind=PosEventType.SALE), Q(kind=PosEventType.RETURN)
    return (
        receipts.annotate(bucket=period.bucket("occurred_at"))
        .values("bucket", "currency")
        .annotate(
            sales=Count("pk", filter=sale),
            units=Sum("units", filter=sale),
            revenue=Sum("total", filter=sale),
            returns=Count("pk", filter=back),
            refunded=Sum("total", filter=back),
        )
    )

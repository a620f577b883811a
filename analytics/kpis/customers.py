"""Customers across channels (the RCU makes one person one customer): who bought in each
channel, the share seen in two channels or more, lifetime value of cross-channel versus
single-channel customers, and how many come back."""

from __future__ import annotations

from django.db.models import Avg, Count, Q, Sum
from django.utils.translation import gettext_lazy as _

from analytics.kpis.sales import NOT_SOLD
from analytics.kpis.scope import orders_placed
from analytics.kpis.table import Table
from analytics.periods import Period
from analytics.stats import share
from common.channels import SalesChannel
from integrations.models import PosEventType, StoreReceipt
from orders.models import Order


def customers(period: Period) -> Table:
    orders = orders_placed(period).exclude(status__in=NOT_SOLD)
    active = orders.values("customer")
    per_channel = dict(orders.values_list("channel").annotate(n=Count("customer", distinct=True)))
    if period.channel in (None, SalesChannel.STORE):
        receipts = StoreReceipt.objects.filter(
            kind=PosEventType.SALE, customer__isnull=False, **period.within("occurred_at")
        )
        if period.location_ids is not None:
            receipts = receipts.filter(location_id__in=period.location_ids)
        per_channel[SalesChannel.STORE] = receipts.exclude(
            customer__in=active.filter(channel=SalesChannel.STORE)
        ).values("customer").distinct().count() + per_channel.get(SalesChannel.STORE, 0)
    # Every sold order of the period's active customers, whatever its date: lifetime value.
    history = (
        Order.objects.filter(customer__in=active)
        .exclude(status__in=NOT_SOLD)
        .values("customer", "currency")
        .annotate(
            revenue=Sum("total_amount"), channels=Count("channel", distinct=True), n=Count("pk")
        )
    )
    lifetime = history.aggregate(
        customers=Count("customer"),
        multichannel=Count("customer", filter=Q(channels__gte=2)),
        repeat=Count("customer", filter=Q(n__gte=2)),
        clv_multichannel=Avg("revenue", filter=Q(channels__gte=2)),
        clv_single=Avg("revenue", filter=Q(channels=1)),
    )
    rows = [
        {"measure": f"active_{channel}", "value": count}
        for channel, count in sorted(per_channel.items())
    ] + [
        {"measure": "active_customers", "value": lifetime["customers"]},
        {"measure": "multichannel_share",
         "value": share(lifetime["multichannel"], lifetime["customers"])},
        {"measure": "repeat_rate", "value": share(lifetime["repeat"], lifetime["customers"])},
        {"measure": "clv_multichannel", "value": _money(lifetime["clv_multichannel"])},
        {"measure": "clv_single_channel", "value": _money(lifetime["clv_single"])},
    ]  # fmt: skip
    return Table(
        name="customers",
        title=_("Customers across channels"),
        columns=[("measure", _("measure")), ("value", _("value"))],
        rows=rows,
        notes=_(
            "Active: customers with a sold order (or an identified till receipt) in the period. "
            "Multichannel, repeat rate and lifetime value (CLV: revenue over the customer's "
            "whole history) are about those customers; a customer is multichannel when her "
            "orders came through two channels or more."
        ),
    )


def _money(value) -> str | None:
    return None if value is None else f"{value:.2f}"

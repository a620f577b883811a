"""The rows a period covers, in one place: the orders of the channel and of the locations."""

from __future__ import annotations

from django.db.models import QuerySet

from analytics.periods import Period
from orders.models import Order
from orders.selectors import orders_for_locations


def orders_placed(period: Period) -> QuerySet[Order]:
    """Orders placed in the period, in its channel, picked up at or served from its locations."""
    orders = Order.objects.filter(**period.within("placed_at"))
    if period.channel:
        orders = orders.filter(channel=period.channel)
    if period.location_ids is not None:
        mine = orders_for_locations(period.location_ids, placed_since=period.start)
        orders = orders.filter(pk__in=mine.values("pk"))
    return orders

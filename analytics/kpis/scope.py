"""The rows a period covers, in one place: the orders of the channel and of the locations."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from analytics.periods import Period
from orders.models import Order
from orders.selectors import orders_for_locations


def placed_in(period: Period, *, via: str = "") -> Q:
    """The orders placed in the period, in its channel, picked up at or served from its
    locations — as a filter on Order (`via=""`) or on a model reaching it (`via="order__"`),
    so a KPI over order lines joins the orders instead of listing their ids in a subquery."""
    placed = Q(**period.within(f"{via}placed_at"))
    if period.channel:
        placed &= Q(**{f"{via}channel": period.channel})
    if period.location_ids is not None:
        mine = orders_for_locations(period.location_ids, placed_since=period.start)
        placed &= Q(**{f"{via}pk__in": mine.values("pk")})
    return placed


def orders_placed(period: Period) -> QuerySet[Order]:
    """Orders placed in the period, in its channel, picked up at or served from its locations."""
    return Order.objects.filter(placed_in(period))

"""The only place payments reads orders: what an order owes, in the order's currency.

Kept in one small function so that payments does not depend on the orders app's internals (and
its tests can build a PayableOrder directly).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from payments.exceptions import OrderNotPayable


@dataclass(frozen=True)
class PayableOrder:
    reference: str
    currency: str
    total: Decimal
    customer_id: int | None
    channel: str
    is_open: bool = True
    pickup_deadline: datetime | None = None


def payable_order(*, reference: str) -> PayableOrder:
    from orders.models import Order  # imported late: orders may import payments

    order = Order.objects.filter(reference=reference).first()
    if order is None:
        raise OrderNotPayable("No order has this reference.", details={"order": [reference]})
    return PayableOrder(
        reference=order.reference,
        currency=order.currency,
        total=order.total_amount,
        customer_id=order.customer_id,
        channel=order.channel,
        is_open=order.is_open,
        pickup_deadline=order.pickup_deadline,
    )

"""How payments reads an order (registered with `payments.orders_port` by orders/apps.py)."""

from __future__ import annotations

from orders import services
from orders.models import Order
from payments.exceptions import OrderNotPayable
from payments.orders_port import PayableOrder


def payable_order(*, reference: str) -> PayableOrder:
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


def order_lines_refund(**refund) -> list[dict]:
    """A per-line refund is an order's write (its lines' caps): `orders.services`."""
    return services.order_lines_refund(**refund)

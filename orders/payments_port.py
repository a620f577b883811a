"""How payments reads an order (registered with `payments.orders_port` by orders/apps.py)."""

from __future__ import annotations

from decimal import Decimal

from common.exceptions import InvalidInput
from orders.models import Order, OrderLine
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


def order_lines_value(*, reference: str, lines: list[tuple[int, int]]) -> Decimal:
    prices = {
        line_no: (unit_price, quantity)
        for line_no, unit_price, quantity in OrderLine.objects.filter(
            order__reference=reference
        ).values_list("line_no", "unit_price", "quantity")
    }
    if not prices:
        raise OrderNotPayable("No order has this reference.", details={"order": [reference]})
    total = Decimal(0)
    for line_no, quantity in lines:
        if line_no not in prices:
            raise InvalidInput(f"The order has no line {line_no}.", details={"lines": [line_no]})
        unit_price, bought = prices[line_no]
        if quantity > bought:
            raise InvalidInput(
                f"Line {line_no} has {bought} units, not {quantity}.", details={"lines": [line_no]}
            )
        total += unit_price * quantity
    return total

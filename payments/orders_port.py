"""The only place payments reads orders: what an order owes, in the order's currency.

Kept in one small function so that payments does not depend on the orders app's internals (and
its tests can build a PayableOrder directly).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from common.exceptions import InvalidInput
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


def order_lines_value(*, reference: str, lines: list[tuple[int, int]]) -> Decimal:
    """What `quantity` units of each order line (by line number) cost the shopper: the amount a
    per-line refund gives back. Raises OrderNotPayable for an unknown order, InvalidInput for an
    unknown line or a quantity above the line's."""
    from orders.models import OrderLine

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

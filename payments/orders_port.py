"""The only place payments reads orders: what an order owes, in the order's currency.

Payments sits below orders: the orders app registers the readers (`orders.payments_port`), so
payments never imports it, and its tests can build a PayableOrder directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class PayableOrder:
    reference: str
    currency: str
    total: Decimal
    customer_id: int | None
    channel: str
    is_open: bool = True
    pickup_deadline: datetime | None = None


# The orders app sits above payments and registers how to read an order (orders/apps.py).
_readers: dict[str, Callable] = {}


def register_order_reader(*, payable_order: Callable, order_lines_value: Callable) -> None:
    _readers["payable_order"] = payable_order
    _readers["order_lines_value"] = order_lines_value


def payable_order(*, reference: str) -> PayableOrder:
    """The order as payments sees it; OrderNotPayable when no order has this reference."""
    return _readers["payable_order"](reference=reference)


def order_lines_value(*, reference: str, lines: list[tuple[int, int]]) -> Decimal:
    """What `quantity` units of each order line (by line number) cost the shopper: the amount a
    per-line refund gives back. Raises OrderNotPayable for an unknown order, InvalidInput for an
    unknown line or a quantity above the line's."""
    return _readers["order_lines_value"](reference=reference, lines=lines)

"""The only place payments reaches orders: what an order owes, in the order's currency, and
per-line refunds (the order owns its lines' caps).

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


def register_order_reader(*, payable_order: Callable, order_lines_refund: Callable) -> None:
    _readers["payable_order"] = payable_order
    _readers["order_lines_refund"] = order_lines_refund


def payable_order(*, reference: str) -> PayableOrder:
    """The order as payments sees it; OrderNotPayable when no order has this reference."""
    return _readers["payable_order"](reference=reference)


def order_lines_refund(
    *,
    reference: str,
    lines: list[tuple[int, int]],
    idempotency_key: str,
    channel: str,
    actor: str,
    to_store_credit: bool = False,
    reason: str = "",
) -> list[dict]:
    """Refund `quantity` units of each order line (by line number) at the order's prices. The
    order owns its lines' caps (units not yet refunded, by refunds or returns), so the orders
    app performs it, calling back this app's `order_payment_refund_record` in its transaction.
    Raises OrderNotFound, InvalidInput (unknown line), LineRefundExceedsQuantity,
    RefundExceedsCaptured. Returns one line per tender refunded."""
    return _readers["order_lines_refund"](
        reference=reference,
        lines=lines,
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        to_store_credit=to_store_credit,
        reason=reason,
    )

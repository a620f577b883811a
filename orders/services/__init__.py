"""Every write to orders, by topic:

    placement      order_place: validate, route, reserve every line or nothing
    allocation     routing needs to locations (placement and re-routing share it)
    fulfilment     picking, ready, hand-over, shipping, delivery, cancellation, expiry
    transfers      the transfers that bring click & collect goods to the pickup store
    rejection      a store says no to a line; the line is routed again
    returns        returns in any store, and their refunds
    refunds        per-line refunds without a return, capped per line
    status         the state machine, its journal, and what follows a status change
    notifications  customer messages owed by a change, sent after commit

Each service runs in one transaction: it locks the order row first, then changes stock only
through `inventory.services` (positions locked in primary-key order), records an OrderEvent
(who, when, from which channel) and owes notifications in the same transaction. Every write
takes an idempotency key: a retried call with the same key returns the order unchanged.
"""

from orders.services.allocation import add_delivery_days
from orders.services.fulfilment import (
    order_cancel,
    order_collect,
    order_deliver,
    order_expire,
    order_handover,
    order_mark_ready,
    order_picking_start,
    order_ship,
    orders_expire_overdue,
    orders_remind_pickup,
)
from orders.services.notifications import order_notifications_send
from orders.services.placement import DeliveryAddress, OrderLineRequest, order_place
from orders.services.refunds import order_lines_refund
from orders.services.rejection import REJECTION_REASONS, order_line_reject
from orders.services.returns import ReturnLineRequest, order_return, order_return_refund
from orders.services.status import CLOSED_STATUSES, TRANSITIONS
from orders.services.transfers import order_transfer_receive, order_transfer_ship

__all__ = [
    "CLOSED_STATUSES",
    "REJECTION_REASONS",
    "TRANSITIONS",
    "DeliveryAddress",
    "OrderLineRequest",
    "ReturnLineRequest",
    "add_delivery_days",
    "order_cancel",
    "order_collect",
    "order_deliver",
    "order_expire",
    "order_handover",
    "order_line_reject",
    "order_lines_refund",
    "order_mark_ready",
    "order_notifications_send",
    "order_picking_start",
    "order_place",
    "order_return",
    "order_return_refund",
    "order_ship",
    "order_transfer_receive",
    "order_transfer_ship",
    "orders_expire_overdue",
    "orders_remind_pickup",
]

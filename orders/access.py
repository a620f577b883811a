"""What a staff member may do to an order — one rule for the admin (pickup board, actions) and
for the API called with a staff session: the action's model permission (given by the staff
groups) and the order's locations (`stores.access`: staff attached to their stores see and act
on the orders picked up there or served from there; customer service sees every location).

A return is the exception: it is taken *anywhere*, so it needs the permission and the store
where the units come back to be the staff member's, not the order's store.
"""

from __future__ import annotations

from orders import selectors
from orders.models import Order
from stores.access import may_act_at, staff_location_ids

ACTION_PERMISSIONS = {
    "view": "orders.view_order",
    "picking": "orders.prepare_order",
    "ready": "orders.prepare_order",
    "ship": "orders.prepare_order",
    "deliver": "orders.prepare_order",
    "reject": "orders.reject_order_line",
    "collect": "orders.handover_order",
    "transfer-ship": "orders.receive_order_transfer",
    "transfer-receive": "orders.receive_order_transfer",
    "cancel": "orders.cancel_order",
    "return": "orders.add_return",
}


def staff_sees_order(user, order: Order) -> bool:
    allowed = staff_location_ids(user)
    if allowed is None:
        return True
    return selectors.orders_for_locations(allowed).filter(pk=order.pk).exists()


def staff_may(user, action: str) -> bool:
    """The model permission of an order action (unknown actions are refused)."""
    permission = ACTION_PERMISSIONS.get(action)
    return permission is not None and user.has_perm(permission)


def staff_may_act_at(user, location_id: int | None) -> bool:
    return may_act_at(user, location_id)

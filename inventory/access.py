"""What a staff member may do to stock — one rule for the admin actions and for the stock API
called with a staff session: the write's model permission (given by the staff groups, see
orders 0010) and a location that is theirs (`stores.access`)."""

from __future__ import annotations

from collections.abc import Iterable

from stores.access import may_act_at

STOCK_ACTION_PERMISSIONS = {
    "receive": "inventory.receive_stock",
    "adjust": "inventory.adjust_stock",
    "set_aside": "inventory.adjust_stock",
    "count": "inventory.count_stock",
    "transfer": "inventory.move_stock",
    "reserve": "inventory.add_reservation",
    "settle_reservation": "inventory.change_reservation",
}


def staff_may(user, action: str) -> bool:
    permission = STOCK_ACTION_PERMISSIONS.get(action)
    return permission is not None and user.has_perm(permission)


def staff_may_at(user, action: str, location_ids: Iterable[int | None]) -> bool:
    """The permission of the stock write, at every location it touches."""
    return staff_may(user, action) and all(may_act_at(user, pk) for pk in location_ids)

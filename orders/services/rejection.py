"""A store says no to a line (not on the shelf, damaged): the ledger records why and the line
is routed again."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from common.exceptions import IllegalTransition, InvalidInput
from common.money import Money
from inventory import services as stock
from inventory.models import (
    AdjustmentReason,
    StockPosition,
)
from inventory.selectors import availability_near
from inventory.services import validate_quantity
from orders import routing, selectors
from orders.exceptions import (
    StoreAtCapacity,
)
from orders.models import (
    Allocation,
    AllocationLine,
    AllocationStatus,
    FulfilmentType,
    LineStatus,
    Order,
    OrderLine,
    OrderStatus,
)
from orders.services.allocation import allocate, capacity_return
from orders.services.fulfilment import open_lines, order_total_lower, reservations_release_all
from orders.services.notifications import order_notify
from orders.services.status import (
    order_event_record,
    order_lock,
    order_replayed_by,
    order_status_move,
    retry_on_deadlock,
)

REJECTION_REASONS = ("not_on_shelf", "damaged")


@retry_on_deadlock
def order_line_reject(
    *,
    order_id: int,
    line_no: int,
    location_id: int,
    reason: str,
    actor: str,
    channel: str,
    idempotency_key: str,
    found_quantity: int = 0,
) -> Order:
    """Staff at `location_id` cannot prepare a line.

    `found_quantity` counts the good units there: for not_on_shelf, those found on the shelf
    (the location's on hand drops to it, so the router does not send the line straight back);
    for damaged, those found undamaged — only the others are set aside as unsellable. Then the
    line is routed again (never to this location); when nothing is left, the line is
    unavailable and the customer is told, with nearby alternatives; when the promise moves
    later, the customer is told the new ready-by.

    Partial picking: in the pickup store itself, the good units stay held for the order (up
    to what it holds there) and only the missing ones are routed again, to come by transfer —
    the shopper collects here anyway. Elsewhere (a shipping location, or the source of a
    transfer) the whole line is routed again: one shipment beats two; the good units go back on
    sale there.
    """
    if reason not in REJECTION_REASONS:
        raise InvalidInput(
            f"reason is one of {list(REJECTION_REASONS)}.", details={"reason": [str(reason)]}
        )
    validate_quantity(found_quantity, field_name="found_quantity", allow_zero=True)
    if (replay := order_replayed_by(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = order_lock(order_id)
        order_line, held = _line_held_at(order, line_no, location_id)
        held_units = sum(line.quantity for line in held)
        keep = 0
        if order.fulfilment == FulfilmentType.PICKUP and location_id == order.pickup_location_id:
            keep = min(found_quantity, held_units)
        quantity = _release_all_but(
            held, keep, reason=reason, idempotency_key=idempotency_key, actor=actor
        )
        _record_rejection_in_ledger(
            location_id=location_id,
            sku_id=order_line.sku_id,
            reason=reason,
            damaged=max(held_units - found_quantity, 0),
            found=found_quantity,
            key=idempotency_key,
            actor=actor,
        )
        promised = order.ready_by
        order_event_record(
            order,
            "line_rejected",
            actor=actor,
            channel=channel,
            key=idempotency_key,
            data={
                "line": line_no,
                "sku": order_line.sku.code,
                "location": location_id,
                "reason": reason,
                "quantity": quantity,
                "found_quantity": found_quantity,
                "kept": keep,
                "set_aside": max(held_units - found_quantity, 0) if reason == "damaged" else 0,
            },
        )
        if quantity:
            reroute(
                order,
                order_line,
                quantity,
                actor=actor,
                channel=channel,
                exclude=frozenset({location_id}),
                trigger="rejection",
            )
            _tell_if_the_promise_moved(order, promised, line_no=line_no)
    return order


def _tell_if_the_promise_moved(order: Order, promised, *, line_no: int) -> None:
    """A re-routed line that comes later moves the order's ready-by: the customer is told the
    new one (a cancelled order or an unavailable line has its own message)."""
    order.refresh_from_db(fields=["ready_by", "status"])
    if order.status in (OrderStatus.CANCELLED,) or not promised or not order.ready_by:
        return
    if order.ready_by > promised:
        order_notify(order, "ready_by_changed", line=line_no)


def _line_held_at(
    order: Order, line_no: int, location_id: int
) -> tuple[OrderLine, list[AllocationLine]]:
    """The order line and what `location_id` holds of it, or why it cannot be rejected there."""
    if order.status not in (OrderStatus.ALLOCATED, OrderStatus.PICKING):
        raise IllegalTransition(
            _(
                "Order %(reference)s is %(status)s: lines are rejected while it is allocated or "
                "being picked."
            )
            % {"reference": order.reference, "status": order.get_status_display()},
            details={"status": [order.status]},
        )
    order_line = order.lines.filter(line_no=line_no).select_related("sku").first()
    if order_line is None:
        raise InvalidInput(
            _("No line %(line)s on this order.") % {"line": line_no}, details={"line": [line_no]}
        )
    held = [
        line
        for line in open_lines(order, location_id=location_id)
        if line.order_line_id == order_line.pk
        and line.allocation.status == AllocationStatus.RESERVED
    ]
    if not held:
        raise InvalidInput(
            _("This line is not held at this location."),
            details={"line": [line_no], "location": [location_id]},
        )
    return order_line, held


def _release_all_but(
    held: list[AllocationLine], keep: int, *, reason: str, idempotency_key: str, actor: str
) -> int:
    """Release what `held` holds but `keep` units (found while picking, kept for the order);
    allocations left empty are released. Returns the units released (to route again)."""
    kept, released = keep, 0
    for line in held:
        kept_here = min(kept, line.quantity)
        kept -= kept_here
        if kept_here == line.quantity:
            continue
        stock.reservation_release(
            reservation_id=line.reservation_id,
            quantity=line.quantity - kept_here if kept_here else None,
            idempotency_key=f"{idempotency_key}:release:{line.pk}",
            actor=actor,
            reason=AdjustmentReason.NOT_ON_SHELF
            if reason == "not_on_shelf"
            else AdjustmentReason.DAMAGE,
        )
        released += line.quantity - kept_here
        if kept_here:
            line.quantity = kept_here
            line.save(update_fields=["quantity"])
        else:
            line.is_active = False
            line.save(update_fields=["is_active"])
    allocation_ids = {line.allocation_id for line in held}
    still_held = AllocationLine.objects.filter(allocation_id__in=allocation_ids, is_active=True)
    emptied = allocation_ids - set(still_held.values_list("allocation_id", flat=True))
    Allocation.objects.filter(pk__in=emptied).update(status=AllocationStatus.RELEASED)
    return released


def _record_rejection_in_ledger(
    *, location_id: int, sku_id: int, reason: str, damaged: int, found: int, key: str, actor: str
) -> None:
    if reason == "damaged":
        if damaged:  # only the damaged units: the good ones stay sellable (or the order's)
            stock.stock_set_aside(
                location_id=location_id,
                sku_id=sku_id,
                quantity=damaged,
                reason=AdjustmentReason.DAMAGE,
                idempotency_key=f"{key}:damaged",
                actor=actor,
            )
        return
    on_hand = (
        StockPosition.objects.filter(location_id=location_id, sku_id=sku_id)
        .values_list("on_hand", flat=True)
        .first()
        or 0
    )
    if found < on_hand:
        stock.stock_adjust(
            location_id=location_id,
            sku_id=sku_id,
            delta=found - on_hand,
            reason=AdjustmentReason.NOT_ON_SHELF,
            idempotency_key=f"{key}:not-on-shelf",
            note="rejected while picking an order",
            actor=actor,
        )


def reroute(
    order: Order,
    order_line: OrderLine,
    quantity: int,
    *,
    actor: str,
    channel: str,
    exclude: frozenset[int],
    trigger: str,
) -> None:
    need = routing.Need(
        line=order_line.line_no,
        sku_id=order_line.sku_id,
        quantity=quantity,
        sku_code=order_line.sku.code,
    )
    pickup_store = None
    if order.fulfilment == FulfilmentType.PICKUP:
        pickup_store = selectors.location_with_calendar(order.pickup_location_id)
    try:
        allocated = allocate(
            order,
            [need],
            trigger=trigger,
            actor=actor,
            at=timezone.now(),
            pickup_store=pickup_store,
            exclude=exclude,
        )
    except StoreAtCapacity:  # pragma: no cover - only raised for placements
        allocated = None
    if allocated is not None:
        order_event_record(
            order,
            "line_rerouted",
            actor=actor,
            channel=channel,
            data={
                "line": order_line.line_no,
                "to": [a.location.code for a in allocated.plan.assignments],
            },
        )
        return
    _line_unavailable(order, order_line, quantity, actor=actor, channel=channel)


def _line_unavailable(
    order: Order, order_line: OrderLine, quantity: int, *, actor: str, channel: str
) -> None:
    """No location can serve `quantity` units of the line any more: the line shrinks to what is
    still held (or becomes unavailable), the shopper is not charged for the rest and is told,
    with nearby alternatives; an order left with nothing to serve is cancelled."""
    held = sum(line.quantity for line in open_lines(order) if line.order_line_id == order_line.pk)
    if held:  # some units are still held for it (found while picking, or received): it shrinks
        order_line.quantity = held
        order_line.save(update_fields=["quantity"])
    else:
        order_line.status = LineStatus.UNAVAILABLE
        order_line.save(update_fields=["status"])
    refund = Money(order_line.unit_price, order.currency) * quantity
    # The shopper is not charged for units that will not come: the total drops, and the payments
    # app takes the new total (nothing is captured before the goods leave).
    order_total_lower(order, refund.amount)
    alternatives = _alternatives(order, order_line)
    order_event_record(
        order,
        "line_unavailable",
        actor=actor,
        channel=channel,
        data={
            "line": order_line.line_no,
            "sku": order_line.sku.code,
            "quantity": quantity,
            "still_held": held,
            "refund_owed": refund.as_dict(),
            "alternatives": alternatives,
        },
    )
    if not order.lines.filter(status=LineStatus.OPEN).exists():
        reservations_release_all(order, actor=actor, reason="nothing left to serve")
        returned = capacity_return(order) if order.status == OrderStatus.ALLOCATED else 0
        order_status_move(
            order,
            OrderStatus.CANCELLED,
            actor=actor,
            channel=channel,
            data={"reason": "no line can be served any more", "capacity_returned": returned},
        )
        order_notify(order, "order_cancelled", reason="out_of_stock", alternatives=alternatives)
    else:
        order_notify(order, "line_unavailable", line=order_line.line_no, alternatives=alternatives)


def _alternatives(order: Order, order_line: OrderLine) -> list[dict]:

    if order.fulfilment == FulfilmentType.PICKUP:
        latitude, longitude = order.pickup_location.latitude, order.pickup_location.longitude
    else:
        latitude, longitude = order.ship_latitude, order.ship_longitude
    offers = availability_near(
        sku_code=order_line.sku.code,
        latitude=float(latitude),
        longitude=float(longitude),
        channel=order.channel,
        limit=3,
    )
    return [
        {
            "store": offer.location.code,
            "distance_km": offer.distance_km,
            "available": offer.available,
            "ready_by": offer.ready_by.isoformat() if offer.ready_by else None,
        }
        for offer in offers
    ]

"""The fulfilment life cycle: picking, ready, hand-over or collection, shipping, delivery,
cancellation and expiry."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from common.channels import SalesChannel
from common.exceptions import IllegalTransition, InvalidInput
from common.money import Money
from inventory import services as stock
from inventory.models import (
    Reservation,
    ReservationStatus,
)
from orders import pickup
from orders.exceptions import (
    PaymentDue,
    WaitingForTransfer,
    WrongPickupCode,
)
from orders.models import (
    Allocation,
    AllocationKind,
    AllocationLine,
    AllocationStatus,
    FulfilmentType,
    LineStatus,
    Order,
    OrderLine,
    OrderStatus,
)
from orders.services.allocation import capacity_return
from orders.services.notifications import order_notify
from orders.services.status import (
    TRANSITIONS,
    order_event_record,
    order_lock,
    order_replayed_by,
    order_status_move,
    retry_on_deadlock,
)
from payments.orders_port import payable_order
from payments.selectors import order_payment_summary
from payments.services.tenders import order_payment_sync, tender_add_till


def open_lines(order: Order, *, location_id: int | None = None) -> list[AllocationLine]:
    queryset = (
        AllocationLine.objects.filter(allocation__order=order, is_active=True)
        .exclude(allocation__status__in=[AllocationStatus.FULFILLED, AllocationStatus.RELEASED])
        .select_related("allocation", "order_line__sku", "reservation")
    )
    if location_id is not None:
        queryset = queryset.filter(allocation__location_id=location_id)
    # Stock positions are then settled in primary-key order, like every multi-row lock.
    return list(queryset.order_by("reservation__position_id", "pk"))


def order_picking_start(*, order_id: int, actor: str, channel: str, idempotency_key: str) -> Order:
    """Store or warehouse staff start preparing the order."""
    if (replay := order_replayed_by(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = order_lock(order_id)
        order_status_move(
            order, OrderStatus.PICKING, actor=actor, channel=channel, key=idempotency_key
        )
    return order


def order_mark_ready(*, order_id: int, actor: str, channel: str, idempotency_key: str) -> Order:
    """Click & collect: the parcel waits at the counter. Sets the pickup deadline (the store's
    hold period) and sends the customer the pickup code."""
    if (replay := order_replayed_by(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = order_lock(order_id)
        if order.fulfilment != FulfilmentType.PICKUP:
            raise IllegalTransition(
                _("Only a click & collect order becomes ready for pickup."),
                details={"fulfilment": [order.fulfilment]},
            )
        waiting = [
            line.allocation.location.code
            for line in open_lines(order)
            if line.allocation.kind == AllocationKind.TRANSFER
            and line.allocation.status != AllocationStatus.RECEIVED
        ]
        if waiting and order.status == OrderStatus.PICKING:
            raise WaitingForTransfer(
                _("Lines from %(locations)s have not arrived yet.")
                % {"locations": ", ".join(sorted(set(waiting)))},
                details={"from": sorted(set(waiting))},
            )
        now = timezone.now()
        store = order.pickup_location
        order.ready_at = now
        order.pickup_deadline = now + timedelta(days=store.pickup_hold_days)
        order_status_move(
            order,
            OrderStatus.READY_FOR_PICKUP,
            actor=actor,
            channel=channel,
            key=idempotency_key,
            data={"pickup_deadline": order.pickup_deadline.isoformat()},
            fields=["ready_at", "pickup_deadline"],
        )
        order_notify(order, "order_ready")
    return order


def reservations_commit_all(
    order: Order, *, actor: str, location_id: int | None = None
) -> list[int]:
    """Units leave: every open reservation of the order (at one location) is committed."""
    allocations = set()
    for line in open_lines(order, location_id=location_id):
        if line.reservation_id is None:
            continue
        stock.reservation_commit(
            reservation_id=line.reservation_id,
            idempotency_key=f"order:{order.reference}:commit:{line.pk}",
            release_rest=True,
            actor=actor,
        )
        allocations.add(line.allocation_id)
    Allocation.objects.filter(pk__in=allocations).update(status=AllocationStatus.FULFILLED)
    return sorted(allocations)


def reservations_release_all(order: Order, *, actor: str, reason: str) -> int:
    """Give every held unit of the order back to sale; cancel transfers that did not ship."""
    released = 0
    for line in open_lines(order):
        if line.reservation_id is None:
            continue
        reservation = Reservation.objects.filter(pk=line.reservation_id).first()
        if reservation and reservation.status == ReservationStatus.ACTIVE:
            stock.reservation_release(
                reservation_id=line.reservation_id,
                idempotency_key=f"order:{order.reference}:release:{line.pk}",
                actor=actor,
                reason="",
            )
            released += 1
        line.is_active = False
        line.save(update_fields=["is_active"])
    for allocation in order.allocations.exclude(status=AllocationStatus.FULFILLED):
        if allocation.transfer_id and allocation.status == AllocationStatus.RESERVED:
            stock.transfer_cancel(transfer_id=allocation.transfer_id, actor=actor)
        allocation.status = AllocationStatus.RELEASED
        allocation.save(update_fields=["status"])
    return released


@retry_on_deadlock
def order_collect(
    *,
    order_id: int,
    code: str,
    actor: str,
    channel: str,
    idempotency_key: str,
    taken: dict[int, int] | None = None,
) -> Order:
    """Hand the order over against its pickup code (or QR payload): the reserved units leave.

    Partial pickup: `taken` (line number → units) is what the shopper takes; the rest of each
    line goes back on sale, and only what is taken is paid and earns points."""
    if (replay := order_replayed_by(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = order_lock(order_id)
        if order.status != OrderStatus.READY_FOR_PICKUP:
            order_status_move(order, OrderStatus.COLLECTED, actor=actor, channel=channel)  # raises
        pickup.attempts_check(order.pk)
        if not pickup.code_matches(
            reference=order.reference, nonce=order.pickup_nonce, presented=code
        ):
            pickup.attempt_failed(order.pk)
            raise WrongPickupCode(details={"code": ["does not match"]})
        pickup.attempts_clear(order.pk)
        data = None
        if taken is None:
            reservations_commit_all(order, actor=actor)
        else:
            data = _commit_taken(order, taken, actor=actor)
        _nothing_due_check(order)
        order_status_move(
            order,
            OrderStatus.COLLECTED,
            actor=actor,
            channel=channel,
            key=idempotency_key,
            data=data,
            taken=taken,
        )
    return order


def _nothing_due_check(order: Order) -> None:
    """Goods leave only paid for: what the tenders cover (held, authorised or captured, and a
    till payment recorded with this hand-over) must reach the total of what is taken. Orders of
    a channel paid elsewhere (a marketplace) are not asked."""
    if order.channel in settings.ORDERS_PAID_ELSEWHERE_CHANNELS:
        return
    due = order_payment_summary(order_reference=order.reference).due
    if due > 0:
        raise PaymentDue(
            _(
                "%(amount)s %(currency)s is still due on order %(reference)s: take it at the "
                "till with the hand-over (paid at the till), then hand the order over."
            )
            % {"amount": due, "currency": order.currency, "reference": order.reference},
            details={"due": str(due), "currency": order.currency},
        )


def order_total_lower(order: Order, amount: Decimal) -> None:
    """The shopper will not pay `amount` of the order (refused at pickup, or units that will
    not come): the total drops and the payments app takes the new total."""

    order.total_amount -= amount
    order.save(update_fields=["total_amount", "updated_at"])
    order_payment_sync(order=payable_order(reference=order.reference))


def _commit_taken(order: Order, taken: dict[int, int], *, actor: str) -> dict:
    """Partial pickup: each line's reservations commit what is taken and release the rest."""
    lines = {line.line_no: line for line in order.lines.filter(status=LineStatus.OPEN)}
    for line_no, units in taken.items():
        if line_no not in lines:
            raise InvalidInput(
                _("Order %(reference)s has no open line %(line)s.")
                % {"reference": order.reference, "line": line_no},
                details={"lines": [line_no]},
            )
        if (
            isinstance(units, bool)
            or not isinstance(units, int)
            or units < 0
            or units > lines[line_no].quantity
        ):
            raise InvalidInput(
                _("Line %(line)s: 0 to %(most)s units.")
                % {"line": line_no, "most": lines[line_no].quantity},
                details={"lines": [line_no]},
            )
    if not any(taken.values()):
        raise InvalidInput(
            _("Nothing taken: cancel the order instead."), details={"lines": ["none"]}
        )
    left = {line_no: taken.get(line_no, 0) for line_no in lines}
    allocations = set()
    for allocation_line in open_lines(order):
        if allocation_line.reservation_id is None:
            continue
        line_no = allocation_line.order_line.line_no
        take = min(left[line_no], allocation_line.quantity)
        left[line_no] -= take
        key = f"order:{order.reference}:commit:{allocation_line.pk}"
        if take:
            stock.reservation_commit(
                reservation_id=allocation_line.reservation_id,
                quantity=take,
                release_rest=True,
                idempotency_key=key,
                actor=actor,
            )
        else:
            stock.reservation_release(
                reservation_id=allocation_line.reservation_id,
                idempotency_key=key,
                actor=actor,
                reason="refused at pickup",
            )
        allocations.add(allocation_line.allocation_id)
    Allocation.objects.filter(pk__in=allocations).update(status=AllocationStatus.FULFILLED)
    refused = {line_no: lines[line_no].quantity - taken.get(line_no, 0) for line_no in lines}
    # The shopper pays for what they take: the order's total drops by what was refused, and the
    # payments app takes the new total (so nothing refused stays "due").
    refused_value = sum((lines[n].unit_price * units for n, units in refused.items()), Decimal(0))
    if refused_value:
        order_total_lower(order, refused_value)
    OrderLine.objects.filter(
        order=order, line_no__in=[n for n in lines if not taken.get(n)]
    ).update(status=LineStatus.CANCELLED)
    return {
        "taken": {str(n): u for n, u in taken.items() if u},
        "refused": {str(n): u for n, u in refused.items() if u},
    }


def order_handover(
    *,
    order_id: int,
    code: str,
    actor: str,
    channel: str,
    idempotency_key: str,
    paid_at_till: Money | None = None,
    till_reference: str = "",
    taken: dict[int, int] | None = None,
) -> Order:
    """Hand-over at the store (the till or the admin pickup board): when the order was to be
    paid at pickup, the till's payment is recorded with the collection — in one transaction,
    paid and collected or neither (a wrong code records no payment)."""
    with transaction.atomic():
        if paid_at_till is not None:
            reference = Order.objects.values_list("reference", flat=True).get(pk=order_id)
            tender_add_till(
                order=payable_order(reference=reference),
                amount=paid_at_till.amount,
                currency=paid_at_till.currency,
                idempotency_key=f"{idempotency_key}:till",
                channel=channel,
                actor=actor,
                till_reference=till_reference,
            )
        return order_collect(
            order_id=order_id,
            code=code,
            actor=actor,
            channel=channel,
            idempotency_key=idempotency_key,
            taken=taken,
        )


def order_ship(
    *,
    order_id: int,
    actor: str,
    channel: str,
    idempotency_key: str,
    location_id: int | None = None,
    tracking: str = "",
) -> Order:
    """Home delivery: the parcel(s) leave. With `location_id`, only that location's shipment; the
    order becomes shipped when every shipment has left."""
    if (replay := order_replayed_by(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = order_lock(order_id)
        if order.fulfilment != FulfilmentType.DELIVERY:
            raise IllegalTransition(
                "A click & collect order is collected, not shipped.",
                details={"fulfilment": [order.fulfilment]},
            )
        if order.status != OrderStatus.PICKING:
            order_status_move(order, OrderStatus.SHIPPED, actor=actor, channel=channel)  # raises
        shipped = reservations_commit_all(order, actor=actor, location_id=location_id)
        if not shipped:
            raise IllegalTransition(
                "Nothing left to ship from there.", details={"location": [str(location_id)]}
            )
        if open_lines(order):
            order_event_record(
                order,
                "shipment_left",
                actor=actor,
                channel=channel,
                data={"allocations": shipped, "tracking": tracking},
                key=idempotency_key,
            )
        else:
            order_status_move(
                order,
                OrderStatus.SHIPPED,
                actor=actor,
                channel=channel,
                key=idempotency_key,
                data={"allocations": shipped, "tracking": tracking},
            )
    return order


def order_deliver(*, order_id: int, actor: str, channel: str, idempotency_key: str) -> Order:
    if (replay := order_replayed_by(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = order_lock(order_id)
        order_status_move(
            order, OrderStatus.DELIVERED, actor=actor, channel=channel, key=idempotency_key
        )
    return order


@retry_on_deadlock
def order_cancel(
    *, order_id: int, actor: str, channel: str, idempotency_key: str, reason: str = ""
) -> Order:
    """Cancel an open order: its reservations are released, unshipped transfers cancelled."""
    if (replay := order_replayed_by(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = order_lock(order_id)
        if OrderStatus.CANCELLED not in TRANSITIONS.get(order.status, ()):
            order_status_move(order, OrderStatus.CANCELLED, actor=actor, channel=channel)  # raises
        released = reservations_release_all(order, actor=actor, reason=reason)
        # Once picking has started the store did (some of) the work: the slot stays used.
        returned = capacity_return(order) if order.status == OrderStatus.ALLOCATED else 0
        order_status_move(
            order,
            OrderStatus.CANCELLED,
            actor=actor,
            channel=channel,
            key=idempotency_key,
            data={
                "reason": reason[:200],
                "reservations_released": released,
                "capacity_returned": returned,
            },
        )
        order_notify(order, "order_cancelled", reason=reason[:200])
    return order


@retry_on_deadlock
def order_expire(*, order_id: int, now: datetime | None = None) -> Order | None:
    """An order not collected by its deadline: cancelled, its units back on sale. Safe to run
    twice (an order no longer ready, or not overdue, is left alone)."""
    now = now or timezone.now()
    with transaction.atomic():
        order = order_lock(order_id)
        if (
            order.status != OrderStatus.READY_FOR_PICKUP
            or not order.pickup_deadline
            or (order.pickup_deadline > now)
        ):
            return None
        released = reservations_release_all(
            order, actor="system:pickup-expiry", reason="not collected"
        )
        order_status_move(
            order,
            OrderStatus.EXPIRED,
            actor="system:pickup-expiry",
            channel=SalesChannel.BACKOFFICE,
            data={"reservations_released": released},
        )
        order_notify(order, "order_expired")
    return order


def orders_expire_overdue(*, now: datetime | None = None, limit: int = 500) -> int:
    now = now or timezone.now()
    ids = list(
        Order.objects.filter(status=OrderStatus.READY_FOR_PICKUP, pickup_deadline__lte=now)
        .order_by("pickup_deadline")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for order_id in ids if order_expire(order_id=order_id, now=now) is not None)


def orders_remind_pickup(*, now: datetime | None = None, limit: int = 500) -> int:
    """Remind customers whose order waits, PICKUP_REMINDER_HOURS before the deadline; once."""
    now = now or timezone.now()
    hours = getattr(settings, "ORDERS_PICKUP_REMINDER_HOURS", 24)
    due = list(
        Order.objects.filter(
            status=OrderStatus.READY_FOR_PICKUP,
            reminder_sent_at__isnull=True,
            pickup_deadline__gt=now,
            pickup_deadline__lte=now + timedelta(hours=hours),
        ).values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for order_id in due:
        with transaction.atomic():
            updated = Order.objects.filter(
                pk=order_id, status=OrderStatus.READY_FOR_PICKUP, reminder_sent_at__isnull=True
            ).update(reminder_sent_at=now)
            if updated:
                order = Order.objects.get(pk=order_id)
                order_event_record(
                    order, "pickup_reminder", actor="system", channel=SalesChannel.BACKOFFICE
                )
                order_notify(order, "pickup_reminder")
                sent += 1
    return sent

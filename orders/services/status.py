"""The order state machine: the one place a status changes (`order_status_move`), its journal
(OrderEvent + outbox event), and what follows a change (payment capture or release, loyalty)."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from decimal import Decimal

from django.db import OperationalError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from common.exceptions import DomainError, IllegalTransition
from common.outbox import events_record
from common.tasks import task_after_commit
from loyalty.services import (
    PurchaseLine,
    ReturnedLine,
    points_earn_for_source,
    points_reverse_for_return,
)
from orders.exceptions import (
    OrderNotFound,
)
from orders.models import (
    LineStatus,
    Order,
    OrderEvent,
    OrderStatus,
    Return,
)

TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PLACED: frozenset({OrderStatus.ALLOCATED, OrderStatus.CANCELLED}),
    OrderStatus.ALLOCATED: frozenset({OrderStatus.PICKING, OrderStatus.CANCELLED}),
    OrderStatus.PICKING: frozenset(
        {OrderStatus.READY_FOR_PICKUP, OrderStatus.SHIPPED, OrderStatus.CANCELLED}
    ),
    OrderStatus.READY_FOR_PICKUP: frozenset(
        {OrderStatus.COLLECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
}


CLOSED_STATUSES = frozenset(
    {OrderStatus.COLLECTED, OrderStatus.DELIVERED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
)


DEADLOCK_ATTEMPTS = 3


_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


def retry_on_deadlock(service):
    """Run a service again when PostgreSQL aborted it for a deadlock. A service that settles an
    order's reservations and then routes a line again takes position locks in two rounds, so a
    concurrent placement can deadlock with it; PostgreSQL aborts one of the two and this replays
    it (its savepoint was rolled back, so the caller's transaction is intact)."""

    @functools.wraps(service)
    def wrapper(*args, **kwargs):
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                return service(*args, **kwargs)
            except OperationalError as exc:
                state = getattr(exc.__cause__, "sqlstate", None)
                if state not in _RETRYABLE_SQLSTATES or attempt == DEADLOCK_ATTEMPTS:
                    raise
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


def order_lock(order_id: int) -> Order:
    order = Order.objects.select_for_update(no_key=True).filter(pk=order_id).first()
    if order is None:
        raise OrderNotFound(_("No order with id %(id)s.") % {"id": order_id})
    return order


def order_replayed_by(key: str | None) -> Order | None:
    if not key:
        return None
    event = OrderEvent.objects.filter(idempotency_key=key).select_related("order").first()
    if event is None:
        return None
    event.order.replayed = True
    return event.order


def order_event_record(
    order: Order,
    kind: str,
    *,
    actor: str,
    channel: str,
    from_status: str = "",
    to_status: str = "",
    data: dict | None = None,
    key: str | None = None,
) -> OrderEvent:
    journal = OrderEvent.objects.create(
        order=order,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor=actor[:150],
        channel=channel,
        data=data or {},
        idempotency_key=key,
        occurred_at=timezone.now(),
    )
    # The same event for subscribers (storefront, marketplace connectors), in the same
    # transaction: signed, retried webhooks `order.<kind>` (integrations outbox).
    events_record(
        [
            (
                f"order.{kind}",
                {
                    "order": order.reference,
                    "channel": order.channel,
                    "status": order.status,
                    "from_status": from_status,
                    "fulfilment": order.fulfilment,
                    "pickup_location": order.pickup_location.code
                    if order.pickup_location_id
                    else None,
                    "data": data or {},
                },
            )
        ],
        occurred_at=journal.occurred_at,
    )
    return journal


def order_status_move(
    order: Order,
    to: str,
    *,
    actor: str,
    channel: str,
    kind: str | None = None,
    data: dict | None = None,
    key: str | None = None,
    fields: Sequence[str] = (),
    taken: dict[int, int] | None = None,
) -> OrderEvent:
    """The one place a status changes: refuses what TRANSITIONS does not allow. `taken` (line
    number → units) is what a partial pickup handed over: only that is paid and earns points."""
    allowed = TRANSITIONS.get(order.status, frozenset())
    if to not in allowed:
        raise IllegalTransition(
            _("Order %(reference)s is %(status)s; it cannot become %(to)s.")
            % {
                "reference": order.reference,
                "status": order.get_status_display(),
                "to": OrderStatus(to).label,
            },
            details={"status": [order.status], "to": [to], "allowed": sorted(allowed)},
        )
    from_status, order.status = order.status, to
    if to in CLOSED_STATUSES:
        order.closed_at = timezone.now()
        fields = [*fields, "closed_at"]
    order.save(update_fields=["status", "updated_at", *fields])
    capture_amount = _value_of(order, taken) if taken is not None else None
    _settle_payment_after_commit(order, to, actor=actor, channel=channel, amount=capture_amount)
    if to in _CAPTURE_ON:
        loyalty_points_earn(order, actor=actor, taken=taken)
    if to in _FULFILLED_ON:  # the lines still open are the ones the shopper got
        order.lines.filter(status=LineStatus.OPEN).update(status=LineStatus.FULFILLED)
    elif to in _RELEASE_ON:  # the order ends without its goods
        order.lines.filter(status=LineStatus.OPEN).update(status=LineStatus.CANCELLED)
    return order_event_record(
        order,
        kind or to,
        actor=actor,
        channel=channel,
        from_status=from_status,
        to_status=to,
        data=data,
        key=key,
    )


# Money follows the goods: captured when they leave (collected, shipped), released when the
# order ends without them (cancelled, expired). Provider calls never run inside our transaction:
# the intent commits with the status, a task calls the payments app afterwards.
_CAPTURE_ON = {OrderStatus.COLLECTED, OrderStatus.SHIPPED}


_RELEASE_ON = {OrderStatus.CANCELLED, OrderStatus.EXPIRED}
_FULFILLED_ON = {OrderStatus.COLLECTED, OrderStatus.DELIVERED}


def _value_of(order: Order, taken: dict[int, int]) -> str:
    prices = dict(order.lines.values_list("line_no", "unit_price"))
    return str(sum((prices[line_no] * units for line_no, units in taken.items()), Decimal(0)))


def _settle_payment_after_commit(
    order: Order, to: str, *, actor: str, channel: str, amount: str | None = None
) -> None:
    if to in _CAPTURE_ON:
        task_after_commit(
            "orders.tasks.order_payment_capture_task", order.reference, actor, channel, amount
        )
    elif to in _RELEASE_ON:
        task_after_commit("orders.tasks.order_payment_release_task", order.reference, actor)


def loyalty_points_earn(order: Order, *, actor: str, taken: dict[int, int] | None = None) -> None:
    """The goods were truly bought (collected, shipped): the customer earns the points of the
    lines taken, once per order (the loyalty app keys the earning by the order reference)."""

    lines = [
        PurchaseLine(
            line_ref=str(line.line_no),
            sku=line.sku.code,
            quantity=units,
            amount=line.unit_price * units,
            category=line.sku.category,
        )
        for line in order.lines.select_related("sku").filter(status=LineStatus.OPEN)
        if (units := line.quantity if taken is None else taken.get(line.line_no, 0)) > 0
    ]
    if not lines:
        return
    try:
        with transaction.atomic():  # a refusal (e.g. another currency) never blocks the goods
            points_earn_for_source(
                customer=order.customer,
                source_type="order",
                source_ref=order.reference,
                lines=lines,
                currency=order.currency,
                channel=order.channel,
                store=order.pickup_location,
                actor=actor,
            )
    except DomainError as exc:
        order_event_record(
            order,
            "loyalty_not_earned",
            actor=actor,
            channel=order.channel,
            data={"code": exc.code, "reason": exc.message},
        )


def loyalty_points_reverse(order: Order, record: Return, *, actor: str, channel: str) -> None:
    """Points earned on the returned lines go back, pro rata (the loyalty app keys it by the
    return); like earning, a refusal never blocks the return: the journal says why."""

    lines = [
        ReturnedLine(line_ref=str(line.order_line.line_no), quantity=line.quantity)
        for line in record.lines.select_related("order_line")
    ]
    if not lines:
        return
    try:
        with transaction.atomic():
            points_reverse_for_return(
                source_type="order",
                source_ref=order.reference,
                return_ref=f"order-return:{record.pk}",
                lines=lines,
                channel=channel,
                actor=actor,
            )
    except DomainError as exc:
        order_event_record(
            order,
            "loyalty_not_reversed",
            actor=actor,
            channel=channel,
            data={"return": record.pk, "code": exc.code, "reason": exc.message},
        )

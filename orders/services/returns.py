"""Returns, in any store, of what an order handed over, and their refunds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import F
from django.utils.translation import gettext as _

from common.exceptions import DomainError, IllegalTransition, InvalidInput
from common.idempotency import run_once
from common.money import Money
from common.tasks import task_after_commit
from inventory import services as stock
from inventory.exceptions import UnknownLocation
from inventory.models import (
    AdjustmentReason,
)
from inventory.services import validate_quantity
from orders.models import (
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    Return,
    ReturnLine,
)
from orders.services.status import (
    loyalty_points_reverse,
    order_event_record,
    order_lock,
    retry_on_deadlock,
)
from payments.services.tenders import order_payment_refund
from stores.models import Location


@dataclass(frozen=True)
class ReturnLineRequest:
    line_no: int
    quantity: int
    unsellable: bool = False
    reason: str = ""


@retry_on_deadlock
def order_return(
    *,
    order_id: int,
    location_id: int,
    lines: Sequence[ReturnLineRequest],
    actor: str,
    channel: str,
    idempotency_key: str,
) -> Return:
    """Units of a collected or delivered order come back at any active location: into its
    sellable stock, or unsellable with a reason. The refund owed is recorded."""
    if not lines:
        raise InvalidInput(_("A return needs at least one line."), details={"lines": ["empty"]})

    def perform() -> Return:
        order = order_lock(order_id)
        if order.status not in (OrderStatus.COLLECTED, OrderStatus.DELIVERED):
            raise IllegalTransition(
                _("Only a collected or delivered order can be returned."),
                details={"status": [order.status]},
            )
        location = _return_location(location_id)
        record = Return.objects.create(
            order=order,
            customer_id=order.customer_id,
            location=location,
            refund_amount=0,
            currency=order.currency,
            actor=actor[:150],
            channel=channel,
            idempotency_key=idempotency_key,
        )
        by_no = {line.line_no: line for line in order.lines.select_for_update().order_by("pk")}
        refund = _return_lines(record, order, by_no, lines)
        _restock(order, location, by_no, lines, key=idempotency_key, actor=actor, channel=channel)
        record.refund_amount = refund.amount
        record.save(update_fields=["refund_amount"])
        order_event_record(
            order,
            "returned",
            actor=actor,
            channel=channel,
            data={"return": record.pk, "location": location.code, "refund_owed": refund.as_dict()},
        )
        loyalty_points_reverse(order, record, actor=actor, channel=channel)
        if record.refund_amount > 0:  # back to the original tenders (the payments app's rule)
            task_after_commit("orders.tasks.order_refund_task", record.pk, actor, channel)
        return record

    record, replayed = run_once(
        find=lambda: Return.objects.filter(idempotency_key=idempotency_key).first(),
        same_request=lambda earlier: earlier.order_id == order_id,
        perform=perform,
        reused_message="This idempotency key recorded a return of another order.",
    )
    record.replayed = replayed
    return record


def _return_location(location_id: int) -> Location:
    location = Location.objects.filter(pk=location_id).first()
    if location is None:
        raise UnknownLocation(details={"location": [str(location_id)]})
    if not location.is_active:
        raise InvalidInput(
            _("%(location)s is inactive.") % {"location": location.code},
            details={"location": ["inactive"]},
        )
    return location


def _return_lines(
    record: Return, order: Order, by_no: dict[int, OrderLine], lines: Sequence[ReturnLineRequest]
) -> Money:
    """Check and record each returned line (never more than was bought and not yet returned);
    returns the refund owed."""
    refund = Money.zero(order.currency)
    seen = set()
    for request in lines:
        line = by_no.get(request.line_no)
        if line is None or request.line_no in seen:
            raise InvalidInput(
                _("Line %(line)s is not on the order (or is given twice).")
                % {"line": request.line_no},
                details={"lines": [request.line_no]},
            )
        seen.add(request.line_no)
        validate_quantity(request.quantity, field_name=f"line {request.line_no} quantity")
        if line.quantity_returned + request.quantity > line.quantity:
            raise InvalidInput(
                _("Line %(line)s: at most %(most)s more units can be returned.")
                % {"line": request.line_no, "most": line.quantity - line.quantity_returned},
                details={"lines": [request.line_no]},
            )
        if request.unsellable and not request.reason:
            raise InvalidInput(
                _("An unsellable return needs a reason."), details={"reason": ["required"]}
            )
        # Units already refunded without coming back (a per-line refund) are not paid twice.
        units_owed = min(request.quantity, line.quantity - line.quantity_refunded)
        amount = (Money(line.unit_price, order.currency) * units_owed).rounded()
        refund = refund + amount
        OrderLine.objects.filter(pk=line.pk).update(
            quantity_returned=F("quantity_returned") + request.quantity,
            quantity_refunded=F("quantity_refunded") + units_owed,
        )
        line.quantity_returned += request.quantity
        line.quantity_refunded += units_owed
        ReturnLine.objects.create(
            order_return=record,
            order_line=line,
            quantity=request.quantity,
            unsellable=request.unsellable,
            reason=request.reason[:120],
            refund_amount=amount.amount,
        )
    return refund


def _restock(order, location, by_no, lines, *, key: str, actor: str, channel: str) -> None:
    """The returned units back into the location's stock: sellable, or unsellable (damaged)."""
    for unsellable in (False, True):
        group = [(by_no[r.line_no].sku_id, r.quantity) for r in lines if r.unsellable == unsellable]
        if group:
            stock.stock_return(
                location_id=location.pk,
                lines=group,
                unsellable=unsellable,
                reason=AdjustmentReason.DAMAGE if unsellable else "",
                idempotency_key=f"{key}:{'unsellable' if unsellable else 'ok'}",
                reference=order.reference,
                actor=actor,
                channel=channel,
            )


def order_return_refund(*, return_id: int, actor: str, channel: str) -> str:
    """Refund a return to the order's tenders (the payments app decides the split). Keyed by the
    return, so it refunds once. When the payments app cannot (nothing captured through it, or
    less than owed), the refund stays owed and the journal says why, for customer service.
    Returns "refunded", "already_refunded" or "manual"."""

    record = Return.objects.select_related("order", "order__customer").get(pk=return_id)
    order = record.order
    key = f"order-return:{record.pk}"
    if OrderEvent.objects.filter(idempotency_key=key).exists():
        return "already_refunded"
    try:
        lines = order_payment_refund(
            order_reference=order.reference,
            amount=record.refund_amount,
            currency=order.currency,
            idempotency_key=key,
            channel=channel,
            actor=actor,
            customer=order.customer,
            reason=f"return {record.pk}",
        )
    except DomainError as exc:
        order_event_record(
            order,
            "refund_manual",
            actor=actor,
            channel=channel,
            data={
                "return": record.pk,
                "amount": str(record.refund_amount),
                "reason": exc.message,
                "code": exc.code,
            },
        )
        return "manual"
    order_event_record(
        order,
        "refunded",
        actor=actor,
        channel=channel,
        key=key,
        data={"return": record.pk, "amount": str(record.refund_amount), "tenders": lines},
    )
    return "refunded"

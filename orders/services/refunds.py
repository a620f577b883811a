"""Refunds of order lines without a return: the shopper keeps (or never got) some units and is
given their price back. Each line refunds at most the units not refunded yet, whether they were
refunded by an earlier per-line refund or by a return (`OrderLine.quantity_refunded`)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import F

from common.exceptions import IdempotencyKeyReused, InvalidInput
from common.idempotency import idempotency_key_check, run_once
from common.money import Money
from inventory.services import validate_quantity
from orders.exceptions import LineRefundExceedsQuantity, OrderNotFound
from orders.models import Order, OrderEvent, OrderLine
from orders.services.status import order_event_record, order_lock, retry_on_deadlock
from payments.services import tenders

REFUND_EVENT = "lines_refunded"


@retry_on_deadlock
def order_lines_refund(
    *,
    reference: str,
    lines: Sequence[tuple[int, int]],
    idempotency_key: str,
    channel: str,
    actor: str,
    to_store_credit: bool = False,
    reason: str = "",
) -> list[dict]:
    """Refund `quantity` units of each `(line number, quantity)`, at the order's own prices, to
    the order's tenders (or as store credit). The lines' refunded units and the money move in one
    transaction under the order's lock, so two concurrent refunds of one line cannot both pass
    its cap. Refused as a whole (LineRefundExceedsQuantity, RefundExceedsCaptured) otherwise.
    Returns one line per tender refunded; a retry with the same key returns the first result."""
    idempotency_key_check(idempotency_key)
    order_id = Order.objects.filter(reference=reference).values_list("pk", flat=True).first()
    if order_id is None:
        raise OrderNotFound.of_reference(reference)
    asked = _requested(lines)
    recorded: list[tenders.RecordedRefund] = []

    def perform() -> OrderEvent:
        order = order_lock(order_id)  # serialises this order's refunds: the caps below hold
        amount = _units_refunded(order, asked)
        refund = tenders.order_payment_refund_record(
            order_reference=order.reference,
            amount=amount.amount,
            currency=order.currency,
            idempotency_key=idempotency_key,
            channel=channel,
            actor=actor,
            customer=order.customer if to_store_credit else None,
            to_store_credit=to_store_credit,
            reason=reason,
        )
        if refund.replayed:  # the key refunded an amount earlier, not these lines
            raise IdempotencyKeyReused("This idempotency key made another refund of this order.")
        recorded.append(refund)
        return order_event_record(
            order,
            REFUND_EVENT,
            actor=actor,
            channel=channel,
            key=idempotency_key,
            data={"lines": asked, "amount": str(amount.amount), "reason": reason[:200]},
        )

    run_once(
        find=lambda: OrderEvent.objects.filter(idempotency_key=idempotency_key).first(),
        same_request=lambda earlier: (
            earlier.order_id == order_id
            and earlier.kind == REFUND_EVENT
            and earlier.data.get("lines") == asked
        ),
        perform=perform,
        reused_message="This idempotency key made another refund.",
    )
    if recorded:
        tenders.refund_card_parts_send(recorded[0])  # committed: the provider may be called
    return tenders.refund_lines_of(order_reference=reference, key=idempotency_key)


def _requested(lines: Sequence[tuple[int, int]]) -> list[list[int]]:
    """The lines asked for, each once, in line order (the shape the journal keeps)."""
    if not lines:
        raise InvalidInput("Name at least one line to refund.", details={"lines": ["empty"]})
    by_no: dict[int, int] = {}
    for line_no, quantity in lines:
        validate_quantity(quantity, field_name=f"line {line_no} quantity")
        if line_no in by_no:
            raise InvalidInput(f"Line {line_no} is given twice.", details={"lines": [line_no]})
        by_no[line_no] = quantity
    return [[line_no, by_no[line_no]] for line_no in sorted(by_no)]


def _units_refunded(order: Order, asked: list[list[int]]) -> Money:
    """Count the units as refunded on their lines (locked), within each line's cap; returns
    what they cost the shopper."""
    by_no = {
        line.line_no: line
        for line in order.lines.select_for_update()
        .filter(line_no__in=[no for no, _ in asked])
        .order_by("pk")
    }
    total = Money.zero(order.currency)
    for line_no, quantity in asked:
        line = by_no.get(line_no)
        if line is None:
            raise InvalidInput(f"The order has no line {line_no}.", details={"lines": [line_no]})
        refundable = line.quantity - line.quantity_refunded
        if quantity > refundable:
            raise LineRefundExceedsQuantity(
                f"Line {line_no}: {refundable} of its {line.quantity} units can still be "
                f"refunded ({line.quantity_refunded} already were, by refunds or returns).",
                details={"line": line_no, "refundable": refundable, "requested": quantity},
            )
        OrderLine.objects.filter(pk=line.pk).update(
            quantity_refunded=F("quantity_refunded") + quantity
        )
        total = total + (Money(line.unit_price, order.currency) * quantity).rounded()
    return total

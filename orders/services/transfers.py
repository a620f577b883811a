"""The transfers that bring a click & collect order's units to its pickup store."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from common.channels import SalesChannel
from common.exceptions import IllegalTransition, InvalidInput
from inventory import services as stock
from inventory.services import ReservationRequest
from orders.models import (
    Allocation,
    AllocationKind,
    AllocationLine,
    AllocationStatus,
    Order,
    OrderStatus,
)
from orders.services.rejection import reroute
from orders.services.status import (
    order_event_record,
    order_lock,
    order_replayed_by,
    retry_on_deadlock,
)


def allocation_of(order: Order, allocation_id: int) -> Allocation:
    allocation = order.allocations.filter(pk=allocation_id).select_related("transfer").first()
    if allocation is None or allocation.kind != AllocationKind.TRANSFER:
        raise InvalidInput(
            _("No transfer allocation with this id on the order."),
            details={"allocation": [str(allocation_id)]},
        )
    return allocation


@retry_on_deadlock
def order_transfer_ship(
    *, order_id: int, allocation_id: int, actor: str, channel: str, idempotency_key: str
) -> Order:
    """The source sends the order's units to the pickup store. Their reservation at the source
    is released and the transfer ships in the same transaction, so the units are never free."""
    if (replay := order_replayed_by(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = order_lock(order_id)
        if order.status not in (OrderStatus.ALLOCATED, OrderStatus.PICKING):
            raise IllegalTransition(
                _("Order %(reference)s is %(status)s.")
                % {"reference": order.reference, "status": order.get_status_display()},
                details={"status": [order.status]},
            )
        allocation = allocation_of(order, allocation_id)
        if allocation.status != AllocationStatus.RESERVED:
            raise IllegalTransition(
                _("This transfer is %(status)s.") % {"status": allocation.get_status_display()},
                details={"allocation": [allocation.status]},
            )
        for line in allocation.lines.filter(is_active=True).order_by("pk"):
            stock.reservation_release(
                reservation_id=line.reservation_id,
                idempotency_key=f"order:{order.reference}:ship-transfer:{line.pk}",
                actor=actor,
                reason="",
            )
        stock.transfer_ship(
            transfer_id=allocation.transfer_id,
            idempotency_key=f"order:{order.reference}:transfer-ship:{allocation.pk}",
            actor=actor,
        )
        allocation.status = AllocationStatus.IN_TRANSIT
        allocation.save(update_fields=["status"])
        order_event_record(
            order,
            "transfer_shipped",
            actor=actor,
            channel=channel,
            key=idempotency_key,
            data={"allocation": allocation.pk, "transfer": allocation.transfer_id},
        )
    return order


@retry_on_deadlock
def order_transfer_receive(
    *,
    order_id: int,
    allocation_id: int,
    actor: str,
    channel: str,
    idempotency_key: str,
    received: dict[int, int] | None = None,
) -> Order:
    """The pickup store receives the order's transfer: the units enter its stock and are held
    for the order at once (same transaction). Units that did not arrive are routed again."""
    if (replay := order_replayed_by(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = order_lock(order_id)
        allocation = allocation_of(order, allocation_id)
        if allocation.status != AllocationStatus.IN_TRANSIT:
            raise IllegalTransition(
                _("This transfer is %(status)s; only a shipped one is received.")
                % {"status": allocation.get_status_display()},
                details={"allocation": [allocation.status]},
            )
        transfer_lines = {line.sku_id: line for line in allocation.transfer.lines.all()}
        arrived = received or {sku: line.quantity_shipped for sku, line in transfer_lines.items()}
        stock.transfer_receive(
            transfer_id=allocation.transfer_id,
            received=arrived,
            close=True,
            idempotency_key=f"order:{order.reference}:transfer-receive:{allocation.pk}",
            actor=actor,
        )
        short = _hold_arrived(order, allocation, arrived, actor=actor)
        allocation.status = AllocationStatus.RECEIVED
        allocation.save(update_fields=["status"])
        order_event_record(
            order,
            "transfer_received",
            actor=actor,
            channel=channel,
            key=idempotency_key,
            data={
                "allocation": allocation.pk,
                "short": [[ln.order_line.line_no, q] for ln, q in short],
            },
        )
        for line, quantity in short:
            reroute(
                order,
                line.order_line,
                quantity,
                actor=actor,
                channel=channel,
                exclude=frozenset({allocation.location_id}),
                trigger="transfer_short",
            )
    return order


def _hold_arrived(
    order: Order, allocation: Allocation, arrived: dict[int, int], *, actor: str
) -> list[tuple[AllocationLine, int]]:
    """Hold what arrived for the order's lines at the pickup store (new allocation lines with
    their reservations, in place of the transfer's); returns the (line, units) that did not
    come."""
    old_lines = list(allocation.lines.filter(is_active=True).select_related("order_line__sku"))
    left = dict(arrived)
    requests, kept, short = [], [], []
    for line in old_lines:
        sku_id = line.order_line.sku_id
        units = min(left.get(sku_id, 0), line.quantity)
        left[sku_id] = left.get(sku_id, 0) - units
        if units:
            requests.append(
                ReservationRequest(
                    sku_id=sku_id, location_id=order.pickup_location_id, quantity=units
                )
            )
            kept.append((line, units))
        if units < line.quantity:
            short.append((line, line.quantity - units))
    reservations = []
    if requests:
        # The units are in the store, and they are the order's: held whatever the shelf's count
        # says. A store whose tills sold below zero (a sale the ledger did not have, flagged as
        # a TillDiscrepancy to count) must not refuse the customer's goods that just came.
        reservations = stock.reservations_create(
            requests=requests,
            idempotency_key=f"order:{order.reference}:hold-received:{allocation.pk}",
            channel=SalesChannel.BACKOFFICE,
            reference=order.reference,
            ttl_seconds=0,
            actor=actor,
            guard=stock.Guard.NONE,
        )
    AllocationLine.objects.filter(pk__in=[line.pk for line in old_lines]).update(is_active=False)
    AllocationLine.objects.bulk_create(
        [
            AllocationLine(
                allocation=allocation,
                order_line=line.order_line,
                quantity=units,
                reservation=reservation,
            )
            for (line, units), reservation in zip(kept, reservations, strict=True)
        ]
    )
    return short


# ---- the order's transfers moved from the stock side (inventory.transfer_owners) --------------


def _order_allocation_of_transfer(transfer_id: int) -> Allocation | None:
    return (
        Allocation.objects.filter(transfer_id=transfer_id, kind=AllocationKind.TRANSFER)
        .select_related("order")
        .first()
    )


def order_of_transfer(transfer_id: int) -> str | None:
    allocation = _order_allocation_of_transfer(transfer_id)
    return f"order {allocation.order.reference}" if allocation else None


def order_transfer_ship_from_stock(
    *, transfer_id: int, shipped: dict[int, int] | None, actor: str, idempotency_key: str
) -> None:
    """Shipped from the Transfers page or API: the order's way (whole, source hold released)."""
    allocation = _order_allocation_of_transfer(transfer_id)
    order_transfer_ship(
        order_id=allocation.order_id,
        allocation_id=allocation.pk,
        actor=actor,
        channel=SalesChannel.BACKOFFICE,
        idempotency_key=idempotency_key,
    )


def order_transfer_receive_from_stock(
    *, transfer_id: int, received: dict[int, int], actor: str, idempotency_key: str
) -> None:
    """Received from the Transfers page or API: the units land on the order."""
    allocation = _order_allocation_of_transfer(transfer_id)
    order_transfer_receive(
        order_id=allocation.order_id,
        allocation_id=allocation.pk,
        actor=actor,
        channel=SalesChannel.BACKOFFICE,
        idempotency_key=idempotency_key,
        received=received or None,
    )

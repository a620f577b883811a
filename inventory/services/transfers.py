"""Transfers: units move from one location to another. A request moves nothing; shipping takes
the units off the source's stock and shows them as incoming at the destination; receiving puts
them on hand there (in one or several receipts); what never arrives is a discrepancy."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from common.channels import SalesChannel
from common.exceptions import InvalidInput
from common.idempotency import idempotency_key_check, run_once
from inventory.exceptions import InvalidQuantity, LocationInactive, TransferStateError
from inventory.models import MovementKind, StockOperation, Transfer, TransferLine, TransferStatus
from inventory.services.ledger import (
    Guard,
    change,
    merged_lines,
    operation_run,
    stock_apply,
    validate_quantity,
)
from inventory.transfer_owners import transfer_owner
from stores.models import Location


def transfer_request(
    *,
    source_id: int,
    destination_id: int,
    lines: Sequence[tuple[int, int]],
    idempotency_key: str,
    reference: str = "",
    actor: str = "",
) -> Transfer:
    """Ask for units to move from one location to another. No stock moves until it ships."""
    key = idempotency_key_check(idempotency_key)
    merged = merged_lines(lines)  # bad lines are refused even on a replay

    def perform() -> Transfer:
        source, destination = _transfer_ends(source_id, destination_id)
        transfer = Transfer.objects.create(
            source=source,
            destination=destination,
            reference=reference[:120],
            requested_by=actor[:150],
            created_by_key=key,
        )
        TransferLine.objects.bulk_create(
            [
                TransferLine(transfer=transfer, sku_id=sku_id, quantity_requested=quantity)
                for sku_id, quantity in merged
            ]
        )
        return transfer

    transfer, replayed = run_once(
        find=lambda: Transfer.objects.filter(created_by_key=key).first(),
        same_request=lambda t: (t.source_id, t.destination_id) == (source_id, destination_id),
        perform=perform,
        reused_message=f"The idempotency key {key} requested a transfer between other locations.",
    )
    transfer.replayed = replayed
    return transfer


def _transfer_ends(source_id: int, destination_id: int) -> tuple[Location, Location]:
    if source_id == destination_id:
        raise InvalidInput(
            "A transfer needs two different locations.", details={"destination": ["same as source"]}
        )
    ends = {loc.pk: loc for loc in Location.objects.filter(pk__in=[source_id, destination_id])}
    for end_id in (source_id, destination_id):
        if end_id not in ends:
            raise InvalidInput(
                f"No location with id {end_id}.", details={"location": [str(end_id)]}
            )
        if not ends[end_id].is_active:
            raise LocationInactive(
                f"Location {ends[end_id].code} is inactive.",
                details={"location": [ends[end_id].code]},
            )
    destination = ends[destination_id]
    if not destination.receives_transfers:
        raise InvalidInput(
            f"{destination.code} does not receive transfers.",
            details={"destination": ["does not receive transfers"]},
        )
    return ends[source_id], destination


def transfer_ship(
    *,
    transfer_id: int,
    idempotency_key: str,
    shipped: dict[int, int] | None = None,
    actor: str = "",
) -> Transfer:
    """Units leave the source (on hand −) and show as incoming at the destination.

    `shipped` maps SKU id → units actually shipped (default: as requested); never more than
    requested.
    """
    if shipped:
        for quantity in shipped.values():
            validate_quantity(quantity, allow_zero=True)

    def body(operation: StockOperation) -> None:
        transfer = Transfer.objects.select_for_update(no_key=True).get(pk=transfer_id)
        if transfer.status != TransferStatus.REQUESTED:
            raise TransferStateError(
                _("Transfer %(id)s is %(status)s; only a requested transfer can ship.")
                % {"id": transfer_id, "status": transfer.get_status_display()}
            )
        lines = list(transfer.lines.all())
        if set(shipped or {}) - {line.sku_id for line in lines}:
            raise InvalidInput(
                "Shipped SKUs must be lines of the transfer.", details={"shipped": ["unknown sku"]}
            )
        changes = []
        for line in lines:
            quantity = line.quantity_requested if shipped is None else shipped.get(line.sku_id, 0)
            if quantity > line.quantity_requested:
                raise InvalidQuantity(
                    "Cannot ship more than requested.",
                    details={"shipped": [f"sku {line.sku_id}: ≤ {line.quantity_requested}"]},
                )
            line.quantity_shipped = quantity
            if quantity:
                of_it = {"sku_id": line.sku_id, "quantity": quantity, "transfer_id": transfer.pk}
                changes.append(
                    change(MovementKind.TRANSFER_OUT, location_id=transfer.source_id, **of_it)
                )
                changes.append(
                    change(
                        MovementKind.TRANSFER_INCOMING, location_id=transfer.destination_id, **of_it
                    )
                )
        if not changes:
            raise InvalidQuantity("Nothing to ship.", details={"shipped": ["all zero"]})
        TransferLine.objects.bulk_update(lines, ["quantity_shipped"])
        transfer.status = TransferStatus.SHIPPED
        transfer.shipped_at = timezone.now()
        transfer.save(update_fields=["status", "shipped_at"])
        stock_apply(operation=operation, changes=changes)

    operation_run(
        kind="transfer_ship",
        idempotency_key=idempotency_key,
        channel=SalesChannel.BACKOFFICE,
        actor=actor,
        reference=f"transfer:{transfer_id}",
        params={"transfer": transfer_id, "shipped": sorted((shipped or {}).items())},
        body=body,
    )
    return Transfer.objects.get(pk=transfer_id)


def transfer_receive(
    *,
    transfer_id: int,
    received: dict[int, int],
    idempotency_key: str,
    close: bool = False,
    actor: str = "",
) -> Transfer:
    """Units arrive at the destination (on hand +, incoming −), possibly in several receipts.

    The transfer closes when every shipped unit arrived, or when `close` is set: then what is
    still missing is recorded as a discrepancy and leaves `incoming`. Over-receipts add to on hand
    and are recorded as a positive discrepancy.
    """
    for quantity in received.values():
        validate_quantity(quantity, allow_zero=True)

    def body(operation: StockOperation) -> None:
        transfer = Transfer.objects.select_for_update(no_key=True).get(pk=transfer_id)
        if transfer.status not in (TransferStatus.SHIPPED, TransferStatus.PARTIALLY_RECEIVED):
            raise TransferStateError(
                _("Transfer %(id)s is %(status)s; it cannot be received.")
                % {"id": transfer_id, "status": transfer.get_status_display()}
            )
        lines = {line.sku_id: line for line in transfer.lines.all()}
        if set(received) - set(lines):
            raise InvalidInput(
                "Received SKUs must be lines of the transfer.",
                details={"received": ["unknown sku"]},
            )
        changes = _arrivals(transfer, lines, received)
        complete = all(line.quantity_received >= line.quantity_shipped for line in lines.values())
        if close or complete:
            changes += _missing(transfer, lines)
            transfer.status = TransferStatus.RECEIVED
            transfer.received_at = timezone.now()
        else:
            transfer.status = TransferStatus.PARTIALLY_RECEIVED
        if not changes and not close:
            raise InvalidQuantity("Nothing received.", details={"received": ["all zero"]})
        TransferLine.objects.bulk_update(list(lines.values()), ["quantity_received", "discrepancy"])
        transfer.save(update_fields=["status", "received_at"])
        stock_apply(operation=operation, changes=changes)

    operation_run(
        kind="transfer_receive",
        idempotency_key=idempotency_key,
        channel=SalesChannel.BACKOFFICE,
        actor=actor,
        reference=f"transfer:{transfer_id}",
        params={"transfer": transfer_id, "received": sorted(received.items()), "close": close},
        body=body,
    )
    return Transfer.objects.get(pk=transfer_id)


def _arrivals(transfer: Transfer, lines: dict[int, TransferLine], received: dict[int, int]):
    """The units received, off `incoming` (never more than was outstanding: an over-receipt
    adds to on hand only), each line's received count updated."""
    changes = []
    for sku_id, line in lines.items():
        quantity = received.get(sku_id, 0)
        if not quantity:
            continue
        outstanding = max(line.quantity_shipped - line.quantity_received, 0)
        arrival = change(
            MovementKind.TRANSFER_IN,
            sku_id=sku_id,
            location_id=transfer.destination_id,
            quantity=quantity,
            transfer_id=transfer.pk,
            guard=Guard.NONE,
        )
        changes.append(
            dataclasses.replace(
                arrival,
                delta=dataclasses.replace(arrival.delta, incoming=-min(quantity, outstanding)),
            )
        )
        line.quantity_received += quantity
    return changes


def _missing(transfer: Transfer, lines: dict[int, TransferLine]):
    """A closing transfer's shipped-but-never-received units leave `incoming`; every line's
    discrepancy is set (negative: missing, positive: over-received)."""
    changes = []
    for sku_id, line in lines.items():
        missing = line.quantity_shipped - line.quantity_received
        if missing > 0:
            changes.append(
                change(
                    MovementKind.TRANSFER_DISCREPANCY,
                    sku_id=sku_id,
                    location_id=transfer.destination_id,
                    quantity=missing,
                    transfer_id=transfer.pk,
                    guard=Guard.NONE,
                    note="shipped but never received",
                )
            )
        line.discrepancy = line.quantity_received - line.quantity_shipped
    return changes


def transfer_cancel(*, transfer_id: int, actor: str = "") -> Transfer:
    with transaction.atomic():
        transfer = Transfer.objects.select_for_update(no_key=True).get(pk=transfer_id)
        if transfer.status == TransferStatus.CANCELLED:
            return transfer
        if transfer.status != TransferStatus.REQUESTED:
            raise TransferStateError(_("Only a transfer that has not shipped can be cancelled."))
        transfer.status = TransferStatus.CANCELLED
        transfer.save(update_fields=["status"])
    return transfer


# ---- the entry points of people and systems (the Transfers page, the transfers API) ----------
# A transfer another app owns (an order's) moves through its owner, so its units land where it
# sends them (inventory.transfer_owners); any other transfer moves here.


class TransferOwnedElsewhere(TransferStateError):
    code = "transfer_owned_by_order"


def transfer_ship_with_owner(
    *,
    transfer_id: int,
    idempotency_key: str,
    shipped: dict[int, int] | None = None,
    actor: str = "",
) -> Transfer:
    owned = transfer_owner(transfer_id)
    if owned is None:
        return transfer_ship(
            transfer_id=transfer_id, idempotency_key=idempotency_key, shipped=shipped, actor=actor
        )
    owned[0].ship(
        transfer_id=transfer_id, shipped=shipped, actor=actor, idempotency_key=idempotency_key
    )
    return Transfer.objects.get(pk=transfer_id)


def transfer_receive_with_owner(
    *,
    transfer_id: int,
    received: dict[int, int],
    idempotency_key: str,
    close: bool = False,
    actor: str = "",
) -> Transfer:
    """An owned transfer is received whole by its owner (what did not come is routed again by
    it), whatever `close` says."""
    owned = transfer_owner(transfer_id)
    if owned is None:
        return transfer_receive(
            transfer_id=transfer_id,
            received=received,
            idempotency_key=idempotency_key,
            close=close,
            actor=actor,
        )
    owned[0].receive(
        transfer_id=transfer_id, received=received, actor=actor, idempotency_key=idempotency_key
    )
    return Transfer.objects.get(pk=transfer_id)


def transfer_cancel_with_owner(*, transfer_id: int, actor: str = "") -> Transfer:
    owned = transfer_owner(transfer_id)
    if owned is not None:
        raise TransferOwnedElsewhere(
            _(
                "Transfer %(id)s brings the goods of %(owner)s: cancel or re-route the order "
                "instead."
            )
            % {"id": transfer_id, "owner": owned[1]},
            details={"owner": [owned[1]]},
        )
    return transfer_cancel(transfer_id=transfer_id, actor=actor)

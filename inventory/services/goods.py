"""Goods in and out of a location's stock: supplier receipts, adjustments, units set aside as
unsellable (or back, or written off) and returns. Each call is one idempotent operation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from common.channels import SalesChannel
from common.exceptions import InvalidInput
from inventory.exceptions import InvalidQuantity
from inventory.models import AdjustmentReason, MovementKind, StockOperation
from inventory.services.ledger import (
    RETURN_UNSELLABLE,
    change,
    merged_lines,
    operation_apply,
    validate_quantity,
)


def stock_receive(
    *,
    location_id: int,
    lines: Sequence[tuple[int, int]],
    idempotency_key: str,
    reference: str = "",
    actor: str = "",
    channel: str = SalesChannel.BACKOFFICE,
) -> StockOperation:
    """Goods arrive from a supplier (on hand increases)."""
    merged = merged_lines(lines)
    return operation_apply(
        kind="receipt",
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        reference=reference,
        params={"location": location_id, "lines": sorted(merged)},
        changes=[
            change(MovementKind.RECEIPT, sku_id=sku_id, location_id=location_id, quantity=quantity)
            for sku_id, quantity in merged
        ],
    )


def stock_adjust(
    *,
    location_id: int,
    sku_id: int,
    delta: int,
    reason: str,
    idempotency_key: str,
    note: str = "",
    actor: str = "",
    channel: str = SalesChannel.BACKOFFICE,
) -> StockOperation:
    """Correct on hand by `delta` units (signed), with a reason. On hand never goes below 0."""
    if reason not in AdjustmentReason.values:
        raise InvalidInput(
            f"Unknown adjustment reason {reason!r}.",
            details={"reason": [f"one of {AdjustmentReason.values}"]},
        )
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise InvalidQuantity(
            "delta must be a non-zero whole number.", details={"delta": ["invalid"]}
        )
    quantity = validate_quantity(abs(delta), field_name="delta")
    return operation_apply(
        kind="adjustment",
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        params={"location": location_id, "sku": sku_id, "delta": delta, "reason": reason},
        changes=[
            change(
                MovementKind.ADJUSTMENT,
                sku_id=sku_id,
                location_id=location_id,
                quantity=quantity,
                sign=1 if delta > 0 else -1,
                reason=reason,
                note=note,
            )
        ],
    )


def stock_set_aside(
    *,
    location_id: int,
    sku_id: int,
    quantity: int,
    reason: str,
    idempotency_key: str,
    restore: bool = False,
    write_off: bool = False,
    note: str = "",
    actor: str = "",
) -> StockOperation:
    """Move sellable units to unsellable (damage, quality control), back (`restore`), or destroy
    unsellable units (`write_off`)."""
    quantity = validate_quantity(quantity)
    kind = (
        MovementKind.WRITE_OFF
        if write_off
        else MovementKind.UNSELLABLE_OUT
        if restore
        else MovementKind.UNSELLABLE_IN
    )
    return operation_apply(
        kind=str(kind),
        idempotency_key=idempotency_key,
        channel=SalesChannel.BACKOFFICE,
        actor=actor,
        params={"location": location_id, "sku": sku_id, "quantity": quantity, "reason": reason},
        changes=[
            change(
                kind,
                sku_id=sku_id,
                location_id=location_id,
                quantity=quantity,
                reason=reason,
                note=note,
            )
        ],
    )


def stock_return(
    *,
    location_id: int,
    lines: Sequence[tuple[int, int]],
    idempotency_key: str,
    unsellable: bool = False,
    reason: str = "",
    occurred_at: datetime | None = None,
    reference: str = "",
    actor: str = "",
    channel: str = SalesChannel.STORE,
) -> StockOperation:
    """Units come back into a location's stock, sellable or (damaged) unsellable."""
    merged = merged_lines(lines)
    return operation_apply(
        kind="return",
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        reference=reference,
        params={"location": location_id, "lines": sorted(merged), "unsellable": unsellable},
        occurred_at=occurred_at,
        changes=[
            change(
                MovementKind.RETURN,
                sku_id=sku_id,
                location_id=location_id,
                quantity=quantity,
                effects=RETURN_UNSELLABLE if unsellable else None,
                reason=reason,
            )
            for sku_id, quantity in merged
        ],
    )

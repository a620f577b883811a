"""Sales rung up at a store till: never refused (the goods already left the shop); a sale the
ledger thinks impossible is recorded and flagged (TillDiscrepancy + stock.till_discrepancy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction

from common.channels import SalesChannel
from common.exceptions import InvalidInput
from inventory.models import MovementKind, StockOperation
from inventory.services.ledger import (
    OperationChanges,
    change,
    merged_lines,
    operation_new,
    operations_claim,
    stock_apply_many,
)


@dataclass(frozen=True)
class TillSale:
    """One receipt's sale lines, for `stock_sell_at_till_many`."""

    location_id: int
    lines: Sequence[tuple[int, int]]
    idempotency_key: str
    occurred_at: datetime | None = None
    reference: str = ""
    actor: str = ""


def stock_sell_at_till(
    *,
    location_id: int,
    lines: Sequence[tuple[int, int]],
    idempotency_key: str,
    occurred_at: datetime | None = None,
    reference: str = "",
    actor: str = "",
) -> StockOperation:
    """Units sold at a store till, as one idempotent operation."""
    sale = TillSale(location_id, lines, idempotency_key, occurred_at, reference, actor)
    return stock_sell_at_till_many([sale])[0]


def stock_sell_at_till_many(sales: Sequence[TillSale]) -> list[StockOperation]:
    """Many till sales in one transaction: `stock_sell_at_till` for a till's backlog.

    Each sale stays its own idempotent operation, with the same key and fingerprint as one call
    of `stock_sell_at_till` (either may replay the other). A sale whose key was already applied
    comes back with `replayed` set and applies nothing; a key already used for something else
    refuses the whole batch (IdempotencyKeyReused), like one call would.
    """
    asked = [(sale, merged_lines(sale.lines)) for sale in sales]
    if not asked:
        return []
    keys = [sale.idempotency_key for sale in sales]
    if len(set(keys)) != len(keys):
        raise InvalidInput(
            "The same idempotency key appears twice in one batch.",
            details={"idempotency_key": ["duplicate in batch"]},
        )
    try:
        return _sell(asked)
    except IntegrityError:
        # A concurrent batch claimed one of these keys first: this attempt rolled back whole;
        # the second one finds those keys and replays them.
        return _sell(asked)


def _sell(asked: list[tuple[TillSale, list[tuple[int, int]]]]) -> list[StockOperation]:
    with transaction.atomic():
        operations = operations_claim(
            [
                operation_new(
                    kind="sale",
                    idempotency_key=sale.idempotency_key,
                    params={"location": sale.location_id, "lines": sorted(merged)},
                    channel=SalesChannel.STORE,
                    actor=sale.actor,
                    reference=sale.reference,
                )
                for sale, merged in asked
            ]
        )
        fresh = [
            (operation, sale, merged)
            for operation, (sale, merged) in zip(operations, asked, strict=True)
            if not operation.replayed
        ]
        results = stock_apply_many(
            [
                OperationChanges(
                    operation,
                    [
                        change(
                            MovementKind.SALE,
                            sku_id=sku_id,
                            location_id=sale.location_id,
                            quantity=quantity,
                        )
                        for sku_id, quantity in merged
                    ],
                    sale.occurred_at,
                )
                for operation, sale, merged in fresh
            ]
        )
        for (operation, _, _), result in zip(fresh, results, strict=True):
            operation.applied = result
    return operations

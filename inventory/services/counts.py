"""Physical stock counts: each counted quantity becomes an adjustment for the difference."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db.models import Sum
from django.utils import timezone

from common.channels import SalesChannel
from common.exceptions import InvalidInput
from inventory.models import (
    AdjustmentReason,
    MovementKind,
    StockCount,
    StockCountLine,
    StockMovement,
    StockOperation,
)
from inventory.services.ledger import (
    Guard,
    change,
    operation_run,
    positions_lock,
    positions_of,
    stock_apply,
    validate_quantity,
)
from stores.models import Location


def stock_count_apply(
    *,
    location_id: int,
    counts: Sequence[tuple[int, int]],
    idempotency_key: str,
    counted_at: datetime | None = None,
    actor: str = "",
    channel: str = SalesChannel.BACKOFFICE,
) -> StockCount:
    """A counted quantity becomes an adjustment for the difference.

    The difference is taken against the ledger *at the time of the count*: movements that
    happened after `counted_at` (a sale rung up while the count was keyed in) are not counted
    twice. Counts are physical truth: they are never refused.
    """
    counted = _counted_quantities(counts)
    now = timezone.now()
    counted_at = counted_at or now
    if counted_at > now + timedelta(minutes=5):
        raise InvalidInput(
            "A count cannot be dated in the future.", details={"counted_at": ["future"]}
        )

    def body(operation: StockOperation) -> None:
        location = Location.objects.get(pk=location_id)
        # Locked before reading what the ledger expects of them.
        positions = positions_of((sku_id, location_id) for sku_id in counted)
        positions_lock(positions.values())
        expected = dict(
            StockMovement.objects.filter(
                position_id__in=[p.pk for p in positions.values()], occurred_at__lte=counted_at
            )
            .values("sku_id")
            .annotate(total=Sum("on_hand_delta"))
            .values_list("sku_id", "total")
        )
        count = StockCount.objects.create(
            location=location, operation=operation, counted_at=counted_at
        )
        lines, changes = _differences(count, counted, expected)
        StockCountLine.objects.bulk_create(lines)
        # Dated at the count: the ledger's on hand at that time is what was counted.
        stock_apply(
            operation=operation, changes=changes, occurred_at=counted_at, positions=positions
        )

    operation, _ = operation_run(
        kind="count",
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        params={
            "location": location_id,
            "counts": sorted(counted.items()),
            "counted_at": counted_at if counted_at != now else None,
        },
        body=body,
    )
    return StockCount.objects.get(operation=operation)


def _differences(
    count: StockCount, counted: dict[int, int], expected: dict[int, int]
) -> tuple[list[StockCountLine], list]:
    """Each counted SKU's line (expected, counted, difference) and the adjustment of each
    difference; counts are physical truth, so the adjustments are never refused."""
    lines, changes = [], []
    for sku_id, quantity in counted.items():
        was = expected.get(sku_id) or 0
        difference = quantity - was
        lines.append(
            StockCountLine(
                count=count, sku_id=sku_id, expected=was, counted=quantity, difference=difference
            )
        )
        if difference:
            changes.append(
                change(
                    MovementKind.ADJUSTMENT,
                    sku_id=sku_id,
                    location_id=count.location_id,
                    quantity=abs(difference),
                    sign=1 if difference > 0 else -1,
                    reason=AdjustmentReason.COUNT,
                    guard=Guard.NONE,
                )
            )
    return lines, changes


def _counted_quantities(counts: Sequence[tuple[int, int]]) -> dict[int, int]:
    counted: dict[int, int] = {}
    for sku_id, quantity in counts:
        if sku_id in counted:
            raise InvalidInput(
                "A SKU appears twice in the count.", details={"counts": ["duplicate sku"]}
            )
        counted[sku_id] = validate_quantity(quantity, field_name="counted", allow_zero=True)
    if not counted:
        raise InvalidInput("At least one counted SKU is needed.", details={"counts": ["empty"]})
    return counted

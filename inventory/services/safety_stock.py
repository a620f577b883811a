"""Safety stock: units kept back from online channels. Configuration, not a movement: it moves
no unit, but it changes what online channels may sell, so subscribers hear of it."""

from __future__ import annotations

from django.db import transaction

from common.outbox import events_record
from inventory.models import StockPosition
from inventory.selectors import availability_changed
from inventory.services.ledger import (
    PositionOutcome,
    positions_of,
    stock_events,
    validate_quantity,
)
from stores.models import Location


def safety_stock_set(*, location_id: int, quantity: int | None, sku_id: int | None = None) -> int:
    """Set a location's safety stock (for SKUs without an override) or one SKU's override
    (`quantity` None with a sku_id removes the override). Returns the positions changed."""
    if quantity is not None or sku_id is None:
        validate_quantity(quantity, field_name="safety_stock", allow_zero=True)
    with transaction.atomic():
        # FOR NO KEY UPDATE: a plain FOR UPDATE would block the foreign-key checks of every
        # stock write at this location at their commit, while this waits for their positions.
        location = Location.objects.select_for_update(no_key=True).get(pk=location_id)
        if sku_id is None:
            location.safety_stock = quantity
            location.save(update_fields=["safety_stock", "updated_at"])
            positions = StockPosition.objects.filter(
                location_id=location_id, safety_stock_override__isnull=True
            )
            new_value = quantity
        else:
            positions_of([(sku_id, location_id)])  # created when missing
            positions = StockPosition.objects.filter(location_id=location_id, sku_id=sku_id)
            positions.update(safety_stock_override=quantity)
            new_value = location.safety_stock if quantity is None else quantity
        changed = list(
            positions.select_for_update(of=("self",), no_key=True)
            .exclude(safety_stock=new_value)
            .select_related("sku", "location")
            .order_by("pk")
        )
        positions.filter(pk__in=[p.pk for p in changed]).update(safety_stock=new_value)
        events_record(
            [
                event
                for event in stock_events(
                    PositionOutcome(
                        position_id=p.pk,
                        sku_id=p.sku_id,
                        location_id=p.location_id,
                        sku_code=p.sku.code,
                        location_code=p.location.code,
                        before=p.quantities,
                        after=p.quantities,
                        safety_stock=new_value,
                        safety_stock_before=p.safety_stock,
                        low_stock_threshold=p.location.low_stock_threshold,
                    )
                    for p in changed
                )
                if event[0] == "stock.available_changed"
            ]
        )
        transaction.on_commit(lambda: availability_changed({p.sku_id for p in changed}))
    return len(changed)

"""The batched form of the one stock writer: many operations, one transaction, a few statements,
with exactly the effects those operations would have had one at a time."""

import pytest

from common.exceptions import IdempotencyKeyReused
from integrations.models import OutboxEvent
from inventory import services
from inventory.exceptions import InsufficientStock
from inventory.models import StockMovement, StockOperation, StockPosition, TillDiscrepancy
from inventory.selectors import ledger_mismatches
from tests.factories import LocationFactory, SkuFactory
from tests.inventory.conftest import position, receive

pytestmark = pytest.mark.django_db


def till_sale(location, lines, key):
    return services.TillSale(
        location_id=location.pk, lines=[(sku.pk, qty) for sku, qty in lines], idempotency_key=key
    )


def test_many_sales_in_one_call_are_each_their_own_idempotent_operation(store, sku):
    other = SkuFactory()
    receive(store, sku, 10)
    receive(store, other, 10)

    operations = services.stock_sell_at_till_many(
        [
            till_sale(store, [(sku, 2), (other, 1)], "s-1"),
            till_sale(store, [(sku, 3)], "s-2"),
        ]
    )

    assert [op.idempotency_key for op in operations] == ["s-1", "s-2"]
    assert [len(op.applied.movements) for op in operations] == [2, 1]
    assert (position(store, sku).on_hand, position(store, other).on_hand) == (5, 9)
    per_operation = {
        op.idempotency_key: sorted(op.movements.values_list("on_hand_delta", flat=True))
        for op in StockOperation.objects.filter(kind="sale")
    }
    assert per_operation == {"s-1": [-2, -1], "s-2": [-3]}
    # One stock event per position for the whole batch: 10 → 5 and 10 → 9.
    changed = OutboxEvent.objects.filter(topic="stock.available_changed").order_by("-pk")[:2]
    assert sorted((e.payload["available_before"], e.payload["available"]) for e in changed) == [
        (10, 5),
        (10, 9),
    ]
    assert ledger_mismatches() == []


def test_a_sale_already_applied_one_at_a_time_is_replayed_not_applied_again(store, sku):
    receive(store, sku, 10)
    services.stock_sell_at_till(location_id=store.pk, lines=[(sku.pk, 2)], idempotency_key="s-1")

    operations = services.stock_sell_at_till_many(
        [till_sale(store, [(sku, 2)], "s-1"), till_sale(store, [(sku, 1)], "s-2")]
    )

    assert [op.replayed for op in operations] == [True, False]
    assert position(store, sku).on_hand == 7
    assert StockMovement.objects.filter(kind="sale").count() == 2


def test_a_key_used_for_another_change_refuses_the_whole_batch(store, sku):
    receive(store, sku, 10)
    services.stock_sell_at_till(location_id=store.pk, lines=[(sku.pk, 2)], idempotency_key="s-1")
    before = list(StockMovement.objects.values_list("pk", flat=True))

    with pytest.raises(IdempotencyKeyReused):
        services.stock_sell_at_till_many(
            [till_sale(store, [(sku, 1)], "s-2"), till_sale(store, [(sku, 5)], "s-1")]
        )

    assert list(StockMovement.objects.values_list("pk", flat=True)) == before
    assert position(store, sku).on_hand == 8


def test_flags_are_judged_sale_by_sale_in_batch_order(store, sku):
    receive(store, sku, 3)

    operations = services.stock_sell_at_till_many(
        [
            till_sale(store, [(sku, 2)], "s-1"),  # 3 → 1: fine
            till_sale(store, [(sku, 2)], "s-2"),  # 1 → −1: flagged
            till_sale(store, [(sku, 1)], "s-3"),  # −1 → −2: flagged
        ]
    )

    assert [op.applied.till_discrepancies for op in operations] == [0, 1, 1]
    assert sorted(TillDiscrepancy.objects.values_list("on_hand_after", flat=True)) == [-2, -1]


def test_a_guard_refusal_anywhere_rolls_the_whole_batch_back(store, sku):
    """Several positions in one call (set-based on PostgreSQL): the short one is named, and
    nothing at all is applied."""
    skus = [sku, *SkuFactory.create_batch(3)]
    for item in skus:
        receive(store, item, 5)
    short = skus[2]
    services.reservation_create(
        sku_id=short.pk, location_id=store.pk, quantity=4, idempotency_key="hold", channel="web"
    )
    before = sorted(StockPosition.objects.values_list("pk", "on_hand", "reserved"))

    with pytest.raises(InsufficientStock) as refused:
        services.reservations_create(
            requests=[
                services.ReservationRequest(sku_id=item.pk, location_id=store.pk, quantity=2)
                for item in skus
            ],
            idempotency_key="all-four",
            channel="web",
        )

    assert [line["sku"] for line in refused.value.details["lines"]] == [short.code]
    assert sorted(StockPosition.objects.values_list("pk", "on_hand", "reserved")) == before
    assert not StockOperation.objects.filter(idempotency_key="all-four").exists()


def test_many_positions_across_locations_in_one_call(sku):
    stores = LocationFactory.create_batch(4)
    skus = [sku, *SkuFactory.create_batch(4)]
    for location in stores:
        for item in skus:
            receive(location, item, 20)

    services.stock_sell_at_till_many(
        [
            till_sale(location, [(item, n + 1) for n, item in enumerate(skus)], f"s-{location.pk}")
            for location in stores
        ]
    )

    for location in stores:
        assert [position(location, item).on_hand for item in skus] == [19, 18, 17, 16, 15]
    assert ledger_mismatches() == []


def test_several_operations_may_only_batch_changes_that_are_never_refused(store, sku):
    first = StockOperation.objects.create(idempotency_key="a", kind="sale", request_hash="x")
    second = StockOperation.objects.create(idempotency_key="b", kind="receipt", request_hash="y")
    sale = services.change("sale", sku_id=sku.pk, location_id=store.pk, quantity=5)
    receipt = services.change("receipt", sku_id=sku.pk, location_id=store.pk, quantity=1)

    with pytest.raises(ValueError, match="Guard.NONE"):
        services.stock_apply_many(
            [services.OperationChanges(first, [sale]), services.OperationChanges(second, [receipt])]
        )
    assert services.stock_sell_at_till_many([]) == []

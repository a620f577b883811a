"""On PostgreSQL a placement writes the order and every row it owns in one statement: the rows
must be exactly those the ORM writes (the path SQLite takes), and what the API answers from
memory must be what a later read finds."""

from datetime import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders import services
from orders.api.serializers import order_representation
from orders.models import Allocation, AllocationLine, Order, PendingNotification
from tests.factories import SkuFactory, WarehouseFactory
from tests.orders.conftest import act, key, line, place_delivery, place_pickup, receive

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
WEDNESDAY_11H = datetime.fromisoformat("2026-11-25T11:00:00+01:00")


def written(order) -> dict:
    """Every row the placement wrote, without ids, references and clock readings."""
    stored = Order.objects.get(pk=order.pk)
    skipped = {"id", "reference", "created_by_key", "pickup_nonce", "updated_at"}
    return {
        "order": {
            field.attname: getattr(stored, field.attname)
            for field in Order._meta.concrete_fields
            if field.attname not in skipped
        },
        "events": list(
            stored.events.order_by("pk").values_list(
                "kind", "from_status", "to_status", "actor", "channel", "data", "idempotency_key"
            )
        ),
        "lines": list(
            stored.lines.order_by("line_no").values_list(
                "line_no", "sku_id", "quantity", "unit_price", "status", "quantity_returned"
            )
        ),
        "allocations": sorted(
            (a.location_id, a.kind, a.status, a.expected_at, transfer_written(a.transfer))
            for a in Allocation.objects.filter(order=stored)
        ),
        "allocation_lines": sorted(
            AllocationLine.objects.filter(allocation__order=stored).values_list(
                "allocation__location_id",
                "order_line__line_no",
                "quantity",
                "reservation__sku_id",
                "reservation__location_id",
                "reservation__quantity",
                "is_active",
            )
        ),
        "decisions": list(
            stored.routing_decisions.values_list(
                "trigger", "rules", "candidates", "chosen", "outcome", "note"
            )
        ),
        "owed": list(
            PendingNotification.objects.filter(order=stored).values_list(
                "kind", "extra", "attempts", "last_error"
            )
        ),
    }


def transfer_written(transfer):
    if transfer is None:
        return None
    return (
        transfer.source_id,
        transfer.destination_id,
        transfer.status,
        transfer.requested_by,
        transfer.created_by_key.split(":")[-1],  # the source, after the order's reference
        list(
            transfer.lines.values_list(
                "sku_id", "quantity_requested", "quantity_shipped", "quantity_received"
            )
        ),
    )


def cancel(order):
    act(
        services.order_cancel,
        order_id=order.pk,
        actor="test",
        channel="web",
        idempotency_key=key(),
    )


def both_ways(monkeypatch, place) -> tuple[dict, dict]:
    """Place the same order with the one statement, cancel it (the stock is as before), then
    with the ORM; return what each wrote."""
    monkeypatch.setattr(services, "_notifications_kick", lambda: None)  # keep what is owed
    with CaptureQueriesContext(connection) as queries:
        in_one = place()
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith(("WITH tr AS (", "EXECUTE omnistock_place_"))
        or 'INSERT INTO "orders_' in q["sql"]
        or 'INSERT INTO "inventory_transfer' in q["sql"]
        or 'UPDATE "orders_' in q["sql"]
    ]
    # The order and every row it owns, its transfer included, in one statement.
    assert len(writes) == 1, writes
    with CaptureQueriesContext(connection) as rendering:
        answer = order_representation(in_one)
    assert not rendering.captured_queries, "the API answers from what was written, not a read"
    assert answer == order_representation(Order.objects.get(pk=in_one.pk)), (
        "the API's answer from memory differs from the stored order"
    )
    first = written(in_one)
    cancel(in_one)

    monkeypatch.setattr(services, "_placement_in_one_statement", lambda: False)
    by_orm = place()
    return first, written(by_orm)


@pytest.mark.parametrize("prepared", [True, False])
def test_click_and_collect_with_a_transfer_writes_the_same_rows_either_way(
    monkeypatch, settings, prepared, customer, store, warehouse, sku, sku2
):
    settings.OMNISTOCK = {**settings.OMNISTOCK, "PREPARED_STATEMENTS": prepared}
    receive(store, sku, 5)
    receive(warehouse, sku2, 5)

    def place():
        return place_pickup(customer, store, [line(sku, 2), line(sku2, 1)], at=WEDNESDAY_11H)

    in_one, by_orm = both_ways(monkeypatch, place)
    assert in_one == by_orm
    assert [a[1] for a in in_one["allocations"]] == ["pickup_local", "transfer"]
    assert in_one["owed"] == [("order_confirmed", {}, 0, "")]


def test_a_split_delivery_writes_the_same_rows_either_way(monkeypatch, customer, sku, sku2):
    sku3 = SkuFactory(code="CAP")
    a, b = WarehouseFactory(code="WA"), WarehouseFactory(code="WB")
    receive(a, sku, 3)
    receive(a, sku2, 3)
    receive(b, sku3, 3)

    def place():
        return place_delivery(
            customer, [line(sku), line(sku2, 2, price="5.05"), line(sku3)], at=WEDNESDAY_11H
        )

    in_one, by_orm = both_ways(monkeypatch, place)
    assert in_one == by_orm
    assert in_one["decisions"][0][4] == "split" and len(in_one["allocation_lines"]) == 3


def test_a_placement_whose_prepared_statement_was_lost_is_placed_all_the_same(customer, store, sku):
    """A pooler's DISCARD ALL (or a DEALLOCATE) drops the session's prepared statements: the
    placement that finds it gone is replayed once, whole, and prepares it again."""
    receive(store, sku, 5)
    place_pickup(customer, store, [line(sku)], at=WEDNESDAY_11H)  # prepares the statement
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")

    with CaptureQueriesContext(connection) as queries:
        order = place_pickup(customer, store, [line(sku, 2)], at=WEDNESDAY_11H)

    executed = [q["sql"] for q in queries.captured_queries if "omnistock_place_" in q["sql"]]
    assert [sql.split()[0] for sql in executed] == ["EXECUTE", "PREPARE", "EXECUTE"]
    assert Order.objects.filter(pk=order.pk).exists()
    assert Order.objects.count() == 2
    assert sum(a.lines.get().quantity for a in Allocation.objects.filter(order=order)) == 2


def test_two_transfers_to_the_pickup_store_write_the_same_rows_either_way(
    monkeypatch, customer, store, sku, sku2
):
    a, b = WarehouseFactory(code="WA"), WarehouseFactory(code="WB")
    receive(a, sku, 3)
    receive(b, sku2, 3)

    def place():
        return place_pickup(customer, store, [line(sku, 2), line(sku2, 1)], at=WEDNESDAY_11H)

    in_one, by_orm = both_ways(monkeypatch, place)
    assert in_one == by_orm
    transfers = [a[4] for a in in_one["allocations"]]
    assert [t[0] for t in transfers] == sorted([a.pk, b.pk])  # one from each warehouse
    assert [t[5] for t in transfers] == [[(sku.pk, 2, 0, 0)], [(sku2.pk, 1, 0, 0)]]

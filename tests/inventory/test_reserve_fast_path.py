"""PostgreSQL writes a one-line reservation in one statement: it must write exactly what the
general path writes, and leave every other case (replays, refusals) to the general path."""

import threading

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from integrations.models import OutboxEvent
from inventory import services
from inventory.exceptions import InsufficientStock, LocationInactive
from inventory.models import Reservation, StockMovement, StockOperation
from inventory.selectors import ledger_mismatches
from tests.factories import LocationFactory, SkuFactory
from tests.inventory.conftest import position, receive

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def reserve(location, sku, key, quantity=2, channel="web"):
    return services.reservation_create(
        sku_id=sku.pk,
        location_id=location.pk,
        quantity=quantity,
        idempotency_key=key,
        channel=channel,
        reference="ORDER-1",
        ttl_seconds=600,
        actor="api:test",
    )


def written_by(reservation):
    movement = StockMovement.objects.get(reservation=reservation)
    operation = movement.operation
    stored = Reservation.objects.get(pk=reservation.pk)
    pos = position(stored.location, stored.sku)
    return {
        "reservation": (
            stored.quantity,
            stored.committed_quantity,
            stored.released_quantity,
            stored.status,
            stored.channel,
            stored.reference,
            stored.expires_at is not None,
            stored.created_by_key.split("#")[1],
        ),
        "movement": (
            movement.kind,
            movement.reason,
            movement.quantity,
            movement.on_hand_delta,
            movement.reserved_delta,
            movement.unsellable_delta,
            movement.incoming_delta,
            movement.transfer_id,
            movement.note,
            movement.position_id == pos.pk,
        ),
        "operation": (operation.kind, operation.channel, operation.actor, operation.reference),
        "position": (pos.on_hand, pos.reserved, pos.unsellable, pos.incoming),
    }


def events_for(location):
    return sorted(
        (
            (event.topic, {k: v for k, v in event.payload.items() if k != "location"})
            for event in OutboxEvent.objects.filter(payload__location=location.code)
        ),
        key=lambda event: (event[0], sorted(event[1].items())),
    )


def test_one_statement_writes_what_the_general_path_writes(settings):
    assert connection.vendor == "postgresql"
    sku = SkuFactory()
    fast_store, general_store = (LocationFactory(low_stock_threshold=3) for _ in range(2))
    for store in (fast_store, general_store):
        receive(store, sku, 5)
    OutboxEvent.objects.all().delete()

    with CaptureQueriesContext(connection) as fast_queries:
        fast = reserve(fast_store, sku, "fast-1")
    settings.OMNISTOCK = {**settings.OMNISTOCK, "RESERVE_FAST_PATH": False}
    with CaptureQueriesContext(connection) as general_queries:
        general = reserve(general_store, sku, "general-1")

    assert written_by(fast) == written_by(general)
    assert events_for(fast_store) == events_for(general_store)
    assert {topic for topic, _ in events_for(fast_store)} == {
        "stock.available_changed",
        "stock.low",
    }
    # Both keys hash the same way: either path replays the other.
    hashes = dict(StockOperation.objects.values_list("idempotency_key", "request_hash"))
    assert len(hashes["fast-1"]) == len(hashes["general-1"]) == 64
    assert len(fast_queries) < len(general_queries)
    assert ledger_mismatches() == []


def test_a_key_written_by_one_statement_is_replayed_by_the_general_path():
    store, sku = LocationFactory(), SkuFactory()
    receive(store, sku, 5)
    first = reserve(store, sku, "same-key")

    again = reserve(store, sku, "same-key")

    assert (again.pk, again.replayed) == (first.pk, True)
    assert position(store, sku).reserved == 2
    assert StockMovement.objects.filter(kind="reserve").count() == 1


def test_refusals_are_the_general_path_s(settings):
    store, sku, empty_sku = LocationFactory(), SkuFactory(), SkuFactory()
    receive(store, sku, 1)
    closed = LocationFactory(is_active=False)

    with pytest.raises(InsufficientStock) as short:
        reserve(store, sku, "too-many", quantity=2)
    with pytest.raises(InsufficientStock):
        reserve(store, empty_sku, "no-position")
    with pytest.raises(LocationInactive):
        reserve(closed, sku, "closed")

    assert short.value.details["lines"][0]["available"] == 1
    assert not StockOperation.objects.filter(
        idempotency_key__in=["too-many", "no-position", "closed"]
    ).exists()
    assert ledger_mismatches() == []


def test_inside_a_transaction_a_replay_does_not_break_it():
    store, sku = LocationFactory(), SkuFactory()
    receive(store, sku, 5)
    reserve(store, sku, "in-tx")

    with transaction.atomic():
        replayed = reserve(store, sku, "in-tx")
        other = reserve(store, sku, "in-tx-2", quantity=1)

    assert replayed.replayed and not other.replayed
    assert position(store, sku).reserved == 3


def prepared_count():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE name = %s",
            [services._RESERVE_ONE_NAME],
        )
        return cursor.fetchone()[0]


def test_the_statement_is_prepared_once_per_connection_whatever_happens():
    store, sku = LocationFactory(), SkuFactory()
    receive(store, sku, 3)

    reserve(store, sku, "p-1", quantity=1)
    reserve(store, sku, "p-1", quantity=1)  # a replay
    with pytest.raises(InsufficientStock):
        reserve(store, sku, "p-2", quantity=5)  # a refusal
    reserve(store, sku, "p-3", quantity=2)

    assert prepared_count() == 1
    assert position(store, sku).reserved == 3


def test_a_lost_prepared_statement_costs_one_general_path_call():
    store, sku = LocationFactory(), SkuFactory()
    receive(store, sku, 5)
    reserve(store, sku, "l-1", quantity=1)
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a pooler's DISCARD ALL would do

    lost = reserve(store, sku, "l-2", quantity=1)
    again = reserve(store, sku, "l-3", quantity=1)

    assert not lost.replayed and not again.replayed
    assert prepared_count() == 1
    assert position(store, sku).reserved == 3


def test_a_statement_already_prepared_on_the_session_costs_one_general_path_call():
    """A pooler wrongly left with prepared statements on can hand us a server session that has
    the statement while this connection thinks it has not (PREPARE fails with 42P05)."""
    store, sku = LocationFactory(), SkuFactory()
    receive(store, sku, 5)
    reserve(store, sku, "s-1", quantity=1)  # prepares it
    connection.connection.omnistock_prepared = frozenset()

    second = reserve(store, sku, "s-2", quantity=1)
    third = reserve(store, sku, "s-3", quantity=1)

    assert not second.replayed and not third.replayed
    assert prepared_count() == 1
    assert position(store, sku).reserved == 3


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_replays_and_refusals_never_break_the_next_calls():
    """In autocommit (the benchmark, tasks, scripts) every call is its own transaction: a
    replay first on the connection, then new keys, replays and refusals, all keep working."""
    store, sku = LocationFactory(), SkuFactory()
    receive(store, sku, 4)
    services.reservation_create(
        sku_id=sku.pk, location_id=store.pk, quantity=1, idempotency_key="a-0", channel="web"
    )
    connection.close()  # a new session: nothing prepared yet

    calls = ["a-0", "a-1", "a-1", "a-2", "too-many", "a-3"]
    outcomes = []
    for key in calls:
        try:
            reservation = services.reservation_create(
                sku_id=sku.pk,
                location_id=store.pk,
                quantity=3 if key == "too-many" else 1,
                idempotency_key=key,
                channel="web",
            )
            outcomes.append("replayed" if reservation.replayed else "new")
        except InsufficientStock:
            outcomes.append("refused")

    assert outcomes == ["replayed", "new", "replayed", "new", "refused", "new"]
    assert position(store, sku).reserved == 4
    assert prepared_count() == 1
    assert ledger_mismatches() == []


def test_without_prepared_statements_the_statement_is_sent_plain_and_writes_the_same(settings):
    """Behind a pooler in transaction mode (DB_PREPARED_STATEMENTS=0) nothing is prepared."""
    sku = SkuFactory()
    plain_store, prepared_store = (LocationFactory(low_stock_threshold=3) for _ in range(2))
    for store in (plain_store, prepared_store):
        receive(store, sku, 5)
    OutboxEvent.objects.all().delete()

    prepared = reserve(prepared_store, sku, "prepared-1")
    settings.OMNISTOCK = {**settings.OMNISTOCK, "PREPARED_STATEMENTS": False}
    with CaptureQueriesContext(connection) as queries:
        plain = reserve(plain_store, sku, "plain-1")

    assert not any("EXECUTE" in query["sql"] for query in queries)
    assert written_by(plain) == written_by(prepared)
    assert events_for(plain_store) == events_for(prepared_store)


def hold_queue(store, sku):
    """Another database session holding the position's queue lock until it is closed."""
    holder = connections.create_connection("default")
    with holder.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_lock(%s, hashtext(%s))",
            [
                services._HOT_ROW_QUEUE_CLASS,
                services._hot_row_queue_key({"sku": sku.pk, "location": store.pk}),
            ],
        )
    return holder


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("prepared", [True, False])
def test_reservers_of_one_position_queue_on_its_advisory_lock(settings, prepared):
    """While another session holds the position's queue lock, a reservation waits (and changes
    nothing); it goes through as soon as the lock is released."""
    settings.OMNISTOCK = {**settings.OMNISTOCK, "PREPARED_STATEMENTS": prepared}
    store, sku = LocationFactory(), SkuFactory()
    receive(store, sku, 5)
    holder = hold_queue(store, sku)
    results = []

    def reserve_in_thread():
        try:
            results.append(reserve(store, sku, f"queued-{prepared}", quantity=1))
        finally:
            connections.close_all()

    waiter = threading.Thread(target=reserve_in_thread)
    waiter.start()
    waiter.join(timeout=0.5)
    waiting = waiter.is_alive()
    reserved_while_waiting = position(store, sku).reserved
    holder.close()  # its session ends, and the lock with it
    waiter.join(timeout=10)

    assert (waiting, reserved_while_waiting) == (True, 0)
    assert len(results) == 1 and not results[0].replayed
    assert position(store, sku).reserved == 1
    assert ledger_mismatches() == []


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_a_reservation_does_not_wait_for_a_busy_queue():
    """A transaction may already hold rows that the queue's holder waits for: it takes the
    queue only when free, and otherwise goes straight to the row."""
    store, sku = LocationFactory(), SkuFactory()
    receive(store, sku, 5)
    holder = hold_queue(store, sku)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '3s'")  # a wait fails, never hangs
            reservation = reserve(store, sku, "in-a-transaction", quantity=1)
    finally:
        holder.close()

    assert not reservation.replayed
    assert position(store, sku).reserved == 1


# ---- several lines in one statement -----------------------------------------------------------


def reserve_lines(lines, key, channel="web", ttl_seconds=600):
    """lines: (location, sku, quantity) triples."""
    return services.reservations_create(
        requests=[
            services.ReservationRequest(sku_id=sku.pk, location_id=location.pk, quantity=quantity)
            for location, sku, quantity in lines
        ],
        idempotency_key=key,
        channel=channel,
        reference="ORDER-2",
        ttl_seconds=ttl_seconds,
        actor="api:test",
    )


def operation_written_by(reservations):
    return {
        "lines": [written_by(reservation) for reservation in reservations],
        "operations": {
            StockMovement.objects.get(reservation=r).operation_id for r in reservations
        }.__len__(),
        "movement_order": [
            m.reservation_id
            for m in StockMovement.objects.filter(reservation__in=reservations).order_by("pk")
        ]
        == [r.pk for r in reservations],
    }


@pytest.mark.parametrize("prepared", [True, False])
@pytest.mark.parametrize("ttl_seconds", [600, 0])
def test_several_lines_in_one_statement_write_what_the_general_path_writes(
    settings, prepared, ttl_seconds
):
    settings.OMNISTOCK = {**settings.OMNISTOCK, "PREPARED_STATEMENTS": prepared}
    shirt, jeans = SkuFactory(), SkuFactory()
    fast_stores = [LocationFactory(low_stock_threshold=3) for _ in range(2)]
    general_stores = [LocationFactory(low_stock_threshold=3) for _ in range(2)]
    for store in fast_stores + general_stores:
        receive(store, shirt, 5)
        receive(store, jeans, 9)
    OutboxEvent.objects.all().delete()

    def lines(stores):  # the second store comes first: lines keep their order, not the keys'
        return [(stores[1], jeans, 4), (stores[0], shirt, 2), (stores[0], jeans, 1)]

    with CaptureQueriesContext(connection) as fast_queries:
        fast = reserve_lines(lines(fast_stores), "fast-many", ttl_seconds=ttl_seconds)
    settings.OMNISTOCK = {**settings.OMNISTOCK, "RESERVE_FAST_PATH": False}
    with CaptureQueriesContext(connection) as general_queries:
        general = reserve_lines(lines(general_stores), "general-many", ttl_seconds=ttl_seconds)

    assert operation_written_by(fast) == operation_written_by(general)
    assert operation_written_by(fast)["operations"] == 1
    assert [r.created_by_key for r in fast] == [f"fast-many#{i}" for i in range(3)]
    assert [r.pk for r in fast] == sorted(r.pk for r in fast)
    for fast_store, general_store in zip(fast_stores, general_stores, strict=True):
        assert events_for(fast_store) == events_for(general_store)
    assert events_for(fast_stores[1])  # the jeans went under the low-stock threshold there
    hashes = dict(StockOperation.objects.values_list("idempotency_key", "request_hash"))
    assert len(hashes["fast-many"]) == 64
    # The objects returned are what was stored.
    for reservation in fast:
        stored = Reservation.objects.get(pk=reservation.pk)
        assert (stored.position_id, stored.sku_id, stored.location_id, stored.quantity) == (
            reservation.position_id,
            reservation.sku_id,
            reservation.location_id,
            reservation.quantity,
        )
        assert stored.expires_at == reservation.expires_at
    written = [
        q["sql"]
        for q in fast_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE", "PREPARE"))
    ]
    assert len(written) == 1 < len(general_queries)
    assert ledger_mismatches() == []


def test_several_lines_are_replayed_by_either_path(settings):
    store, shirt, jeans = LocationFactory(), SkuFactory(), SkuFactory()
    for sku in (shirt, jeans):
        receive(store, sku, 5)
    first = reserve_lines([(store, shirt, 1), (store, jeans, 2)], "many-key")

    again = reserve_lines([(store, shirt, 1), (store, jeans, 2)], "many-key")
    settings.OMNISTOCK = {**settings.OMNISTOCK, "RESERVE_FAST_PATH": False}
    general = reserve_lines([(store, shirt, 1), (store, jeans, 2)], "many-key")

    assert [r.pk for r in again] == [r.pk for r in general] == [r.pk for r in first]
    assert all(r.replayed for r in again + general)
    assert (position(store, shirt).reserved, position(store, jeans).reserved) == (1, 2)
    assert StockMovement.objects.filter(kind="reserve").count() == 2


def test_one_short_line_reserves_nothing_and_is_named():
    store, other, shirt, jeans, socks = (
        LocationFactory(),
        LocationFactory(),
        SkuFactory(),
        SkuFactory(),
        SkuFactory(),
    )
    receive(store, shirt, 5)
    receive(store, jeans, 1)
    receive(other, jeans, 5)
    closed = LocationFactory(is_active=False)
    receive(closed, shirt, 5)

    with pytest.raises(InsufficientStock) as short:
        reserve_lines([(store, shirt, 2), (store, jeans, 2)], "one-short")
    with pytest.raises(InsufficientStock):
        reserve_lines([(store, shirt, 2), (other, socks, 1)], "no-position")
    with pytest.raises(LocationInactive):
        reserve_lines([(store, shirt, 2), (closed, shirt, 1)], "one-closed")

    assert short.value.details["lines"][0]["sku"] == jeans.code
    assert not StockOperation.objects.filter(
        idempotency_key__in=["one-short", "no-position", "one-closed"]
    ).exists()
    assert (position(store, shirt).reserved, position(store, jeans).reserved) == (0, 0)
    assert not Reservation.objects.exists()
    assert ledger_mismatches() == []


def test_online_lines_keep_the_safety_stock_and_a_till_may_take_it():
    store, shirt, jeans = LocationFactory(safety_stock=2), SkuFactory(), SkuFactory()
    for sku in (shirt, jeans):
        receive(store, sku, 4)

    with pytest.raises(InsufficientStock):
        reserve_lines([(store, shirt, 1), (store, jeans, 3)], "online")
    till = reserve_lines([(store, shirt, 1), (store, jeans, 3)], "till", channel="store")

    assert [r.quantity for r in till] == [1, 3]
    assert position(store, jeans).reserved == 3


def test_a_position_named_twice_is_summed_by_the_general_path():
    store, shirt = LocationFactory(), SkuFactory()
    receive(store, shirt, 3)

    with pytest.raises(InsufficientStock):
        reserve_lines([(store, shirt, 2), (store, shirt, 2)], "twice-short")
    both = reserve_lines([(store, shirt, 2), (store, shirt, 1)], "twice")

    assert [r.quantity for r in both] == [2, 1]
    assert position(store, shirt).reserved == 3


def test_the_many_lines_statement_is_prepared_once_and_survives_a_lost_statement():
    store, shirt, jeans = LocationFactory(), SkuFactory(), SkuFactory()
    for sku in (shirt, jeans):
        receive(store, sku, 10)

    reserve_lines([(store, shirt, 1), (store, jeans, 1)], "m-1")
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    lost = reserve_lines([(store, shirt, 1), (store, jeans, 1)], "m-2")
    again = reserve_lines([(store, shirt, 1), (store, jeans, 1)], "m-3")

    assert not any(r.replayed for r in lost + again)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE name = %s",
            [services._RESERVE_MANY.name],
        )
        assert cursor.fetchone()[0] == 1
    assert (position(store, shirt).reserved, position(store, jeans).reserved) == (3, 3)


@pytest.mark.django_db(transaction=True)
def test_multi_line_reservations_crossing_the_same_positions_never_deadlock_or_oversell():
    """Threads reserve the same two scarce positions, half naming them in one order and half in
    the other: every reservation is whole or refused, and no unit is sold twice."""
    store, shirt, jeans = LocationFactory(), SkuFactory(), SkuFactory()
    receive(store, shirt, 10)
    receive(store, jeans, 10)
    outcomes = []
    barrier = threading.Barrier(8)

    def worker(index):
        try:
            barrier.wait()
            for attempt in range(4):
                lines = [(store, shirt, 1), (store, jeans, 1)]
                if index % 2:
                    lines.reverse()
                try:
                    reserve_lines(lines, f"race-{index}-{attempt}")
                    outcomes.append("ok")
                except InsufficientStock:
                    outcomes.append("short")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(outcomes) == 32
    assert outcomes.count("ok") == 10
    assert (position(store, shirt).reserved, position(store, jeans).reserved) == (10, 10)
    assert Reservation.objects.count() == 20
    assert ledger_mismatches() == []


def another_session_can_lock(sql_text, params):
    """Whether another database session gets `sql_text`'s lock within 200 ms."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
            cursor.execute(sql_text, params)
            return bool(cursor.fetchone()[0])
    except OperationalError:
        return False
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fast", [True, False])
def test_a_refused_reservation_inside_a_transaction_leaves_no_lock_behind(settings, fast):
    """An order placement runs in a transaction and, refused at one location, routes on: the
    positions and queue its refused attempt touched must be free for others meanwhile (held,
    they would be taken out of key order by the next attempt and could deadlock)."""
    settings.OMNISTOCK = {**settings.OMNISTOCK, "RESERVE_FAST_PATH": fast}
    store, shirt, jeans = LocationFactory(), SkuFactory(), SkuFactory()
    receive(store, shirt, 5)
    receive(store, jeans, 1)
    shirt_position = position(store, shirt).pk

    with transaction.atomic():
        with pytest.raises(InsufficientStock):
            reserve_lines([(store, shirt, 1), (store, jeans, 2)], f"refused-many-{fast}")
        with pytest.raises(InsufficientStock):
            reserve(store, jeans, f"refused-one-{fast}", quantity=2)
        row_free = another_session_can_lock(
            "SELECT id FROM inventory_stockposition WHERE id = %s FOR NO KEY UPDATE",
            [shirt_position],
        )
        queue_free = another_session_can_lock(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))",
            [
                services._HOT_ROW_QUEUE_CLASS,
                services._hot_row_queue_key({"sku": jeans.pk, "location": store.pk}),
            ],
        )

    assert (row_free, queue_free) == (True, True)
    assert position(store, shirt).reserved == 0

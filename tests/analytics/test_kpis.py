"""Each KPI on a small data set made by the services at known moments (time-machine), against
numbers worked out by hand in the test. The week: Monday 2 – Sunday 8 November 2026, Paris."""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine

from analytics.kpis import TABLES
from analytics.periods import period_parse
from analytics.services import stock_day_take
from orders import pickup, services
from orders.services.returns import ReturnLineRequest
from tests.customers.factories import CustomerFactory
from tests.factories import LocationFactory, SkuFactory, WarehouseFactory
from tests.orders.conftest import act, committed, hand_over, key, line, place_pickup, receive

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
STAFF = {"actor": "staff:test", "channel": "backoffice"}
WEEK = {"first_day": date(2026, 11, 2), "last_day": date(2026, 11, 8), "granularity": "week"}


def at(day: int, hour: int, minute: int = 0):
    return time_machine.travel(datetime(2026, 11, day, hour, minute, tzinfo=PARIS), tick=False)


def table(name, **period):
    return TABLES[name](period_parse(**{**WEEK, **period}))


@pytest.fixture
def week(db):
    """A web customer's week at PARIS-1 (open 10:00-20:00, 60 minutes to prepare):
    - order 1, 2 × 20.00, placed Monday 10:00 (promised 11:00), ready 11:30 (late), collected
      Tuesday 18:00; one unit returned Thursday at LYON-1 (refund 20.00);
    - order 2, 1 × 30.00, placed Monday 11:00 (promised 12:00), ready 11:45 (on time), never
      collected: expired at its deadline;
    - order 3, 1 × 10.00, placed Tuesday 10:00 and cancelled."""
    customer = CustomerFactory()
    store = LocationFactory(code="PARIS-1")
    other = LocationFactory(code="LYON-1")
    sku = SkuFactory()
    with at(1, 9):
        receive(store, sku, 10)
        receive(other, sku, 1)
    with at(2, 10):
        first = place_pickup(customer, store, [line(sku, 2, price="20.00")])
    with at(2, 11):
        second = place_pickup(customer, store, [line(sku, 1, price="30.00")])
    with at(2, 11, 30):
        _ready(first)
    with at(2, 11, 45):
        _ready(second)
    with at(3, 10):
        third = place_pickup(customer, store, [line(sku, 1, price="10.00")])
        act(services.order_cancel, order_id=third.pk, idempotency_key=key(), reason="test",
            **STAFF)  # fmt: skip
    with at(3, 18):
        first.refresh_from_db()
        hand_over(first, pickup.pickup_code(reference=first.reference, nonce=first.pickup_nonce),
                  **STAFF)  # fmt: skip
    with at(5, 15):
        returned = [ReturnLineRequest(line_no=1, quantity=1)]
        act(services.order_return, order_id=first.pk, location_id=other.pk, lines=returned,
            idempotency_key=key(), **STAFF)  # fmt: skip
    second.refresh_from_db()
    with time_machine.travel(second.pickup_deadline, tick=False), committed():
        services.orders_expire_overdue()
    for day in range(1, 9):
        stock_day_take(day=date(2026, 11, day))
    return {"store": store, "other": other, "sku": sku, "orders": (first, second, third)}


def _ready(order):
    act(services.order_picking_start, order_id=order.pk, idempotency_key=key(), **STAFF)
    act(services.order_mark_ready, order_id=order.pk, idempotency_key=key(), **STAFF)


def test_sales_per_channel_count_placed_sold_units_revenue_and_returns(week):
    (row,) = table("sales").rows
    assert row["bucket"] == "2026-11-02" and row["channel"] == "web"
    assert row["placed"] == 3  # the cancelled and the expired orders were placed
    assert row["orders"] == 1  # only the collected one was sold
    assert row["units"] == 2
    assert Decimal(row["revenue"]) == Decimal("40.00")
    assert Decimal(row["average_basket"]) == Decimal("40.00")
    assert row["returns"] == 1 and Decimal(row["refunded"]) == Decimal("20.00")
    assert row["refund_rate"] == 0.5  # 20.00 of 40.00


def test_click_and_collect_times_against_the_promise(week):
    (row,) = table("click-and-collect").rows
    assert row["store"] == "PARIS-1"
    assert row["orders"] == 3 and row["share_of_orders"] == 1.0  # every order was C&C
    assert row["ready"] == 2
    # promised: 60 minutes of preparation from placement (the store is open)
    assert row["promised_hours_median"] == 1.0
    # to ready: 1.5 h and 0.75 h → nearest-rank median the smaller (rank 1 of 2), p90 rank 2
    assert row["ready_hours_median"] == 0.75 and row["ready_hours_p90"] == 1.5
    assert row["on_time"] == 1 and row["on_time_share"] == 0.5  # the second was, not the first
    assert row["collected_share"] == 0.5 and row["expired_share"] == 0.5
    # ready Monday 11:30, collected Tuesday 18:00: 30.5 hours
    assert row["collect_hours_median"] == 30.5


def test_a_stores_view_is_its_own(week):
    rows = {row["location"]: row for row in table("stores").rows}
    assert rows["PARIS-1"]["lines_given"] == 3 and rows["PARIS-1"]["lines_rejected"] == 0
    assert rows["PARIS-1"]["orders_served"] == 3
    scoped = table("stores", location_ids=[week["other"].pk]).rows
    assert [row["location"] for row in scoped] == ["LYON-1"]


def test_stock_outs_count_the_sku_days_with_nothing_to_sell(week):
    rows = {row["location"]: row for row in table("stock-outs").rows}
    # LYON-1 had its only unit from Sunday 1st; the return on Thursday brought one more: it
    # never ran out. PARIS-1 had 10, never below 6: never out.
    assert rows["LYON-1"]["days"] == 7 and rows["LYON-1"]["stock_out_rate"] == 0.0
    assert rows["PARIS-1"]["sku_days"] == 7


def test_customers_across_channels(week):
    values = {row["measure"]: row["value"] for row in table("customers").rows}
    assert values["active_web"] == 1 and values["active_customers"] == 1
    assert values["multichannel_share"] == 0.0 and values["repeat_rate"] == 0.0
    assert values["clv_single_channel"] == "40.00" and values["clv_multichannel"] is None


def test_a_rejected_line_counts_against_its_store_with_its_reason(db):
    """PARIS-1 is given a line it cannot find on the shelf (Wednesday 10:00): the line is
    routed again and comes from the warehouse by transfer. PARIS-1: 1 line given, 1 rejected
    (not on the shelf); WH-1: 1 line given (the transfer), none rejected, its order one routed
    again."""
    store, other = LocationFactory(code="PARIS-1"), WarehouseFactory(code="WH-1")
    sku = SkuFactory()
    with at(1, 9):
        receive(store, sku, 1)
        receive(other, sku, 3)
    with at(4, 10):
        order = place_pickup(CustomerFactory(), store, [line(sku, 1, price="20.00")])
        act(services.order_line_reject, order_id=order.pk, line_no=1, location_id=store.pk,
            reason="not_on_shelf", found_quantity=0, idempotency_key=key(),
            **STAFF)  # fmt: skip

    rows = {row["location"]: row for row in table("stores").rows}
    paris, warehouse = rows["PARIS-1"], rows["WH-1"]
    assert (paris["lines_given"], paris["lines_rejected"], paris["not_on_shelf"]) == (1, 1, 1)
    assert paris["rejection_rate"] == 1.0 and paris["damaged"] == 0
    assert (warehouse["lines_given"], warehouse["lines_rejected"]) == (1, 0)
    assert warehouse["rejection_rate"] == 0.0
    assert warehouse["orders_rerouted"] == 1 and warehouse["reroute_rate"] == 1.0

"""`make run`'s history gives every chart of the KPI dashboard something to show: a newcomer
opening it as head office sees sales in three channels, the click & collect funnel, a campaign
redeemed online and at tills with shoppers who came to a store after it, gift cards spent
online and still owed."""

import pytest
from django.core.management import call_command

from analytics.kpis import TABLES
from analytics.periods import period_parse
from tests.browser.conftest import staff_groups_restore

# Real commits, as under `make run`: captures and other after-commit work run (a gift card
# held online is captured at pickup). serialized_rollback puts the migrations' rows back.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_the_demo_history_fills_every_kpi_of_the_dashboard():
    staff_groups_restore()  # an earlier transactional test may have flushed them
    call_command("load_demo", "--history-weeks", "2", verbosity=0)
    period = period_parse(first_day=None, last_day=None, granularity="week")
    tables = {name: TABLES[name](period).rows for name in TABLES}

    assert {row["channel"] for row in tables["sales"]} >= {"web", "app", "store"}
    till = [row for row in tables["sales"] if row["channel"] == "store"]
    assert sum(row["units"] for row in till) >= sum(row["orders"] for row in till) > 0
    assert sum(row["collected"] for row in tables["click-and-collect"]) > 0
    assert sum(row["expired"] for row in tables["click-and-collect"]) > 0
    assert any(row["lines_rejected"] for row in tables["stores"])
    assert tables["unified-stock"] and tables["stock-outs"]

    (campaign,) = tables["campaigns"]
    assert campaign["redeemed_online"] > 0 and campaign["redeemed_in_store"] > 0
    assert 0 < campaign["bought_in_store"] <= campaign["recipients"]
    assert {row["kind"] for row in tables["tender-mix"]} >= {"gift_card", "till"}
    assert [row["kind"] for row in tables["liabilities"]] == ["gift_card"]
    assert {row["channel"] for row in tables["points"]} >= {"web", "store"}

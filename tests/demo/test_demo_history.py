"""`make run`'s history gives every chart of the KPI dashboard something to show: a newcomer
opening it as head office sees sales in three channels, the click & collect funnel, a campaign
redeemed online and at tills with shoppers who came to a store after it, gift cards spent
online and still owed."""

import pytest
from django.core.management import call_command

from analytics.kpis import TABLES
from analytics.periods import period_parse

pytestmark = pytest.mark.django_db


def test_the_demo_history_fills_every_kpi_of_the_dashboard(django_capture_on_commit_callbacks):
    # after-commit work runs as under `make run` (a gift card held online is captured at pickup)
    with django_capture_on_commit_callbacks(execute=True):
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

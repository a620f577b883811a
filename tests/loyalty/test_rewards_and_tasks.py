from datetime import timedelta

import pytest
from django.utils import timezone

from loyalty import selectors, tasks
from loyalty.models import PointsLot, PointsSpend, Reward
from tests.loyalty.factories import AccountFactory, earn, spendable_earn

pytestmark = pytest.mark.django_db


def post(client, url, body, key):
    return client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_the_catalogue_lists_active_rewards_for_the_callers_channel(till_client):
    Reward.objects.create(code="mug", name="Mug", points_cost=200)
    Reward.objects.create(code="app-only", name="Sticker", points_cost=50, channels=["app"])
    Reward.objects.create(code="gone", name="Old", points_cost=10, is_active=False)
    response = till_client.get("/api/v1/loyalty/rewards/")
    assert [r["code"] for r in response.json()] == ["mug"]


def test_buying_a_reward_spends_its_cost_once(till_client):
    # given 300 spendable points and a 200-point mug
    account = AccountFactory()
    spendable_earn(account.customer, "300.00")
    Reward.objects.create(code="mug", name="Mug", points_cost=200)
    body = {"customer": str(account.customer.reference), "reward": "mug"}
    # when the till buys it, and retries
    first = post(till_client, "/api/v1/loyalty/rewards/buy/", body, "buy-1")
    again = post(till_client, "/api/v1/loyalty/rewards/buy/", body, "buy-1")
    # then spent once
    assert first.status_code == 201 and again.json() == first.json()
    assert (first.json()["status"], first.json()["captured_points"]) == ("captured", 200)
    assert selectors.points_summary(account=account)["available"] == 100
    # a second mug is more than the balance: refused, nothing spent
    refused = post(till_client, "/api/v1/loyalty/rewards/buy/", body, "buy-2")
    assert (refused.status_code, refused.json()["code"]) == (409, "insufficient_points")
    assert PointsSpend.objects.count() == 1
    assert selectors.points_summary(account=account)["available"] == 100


def test_an_unknown_or_inactive_reward_is_a_clear_404(web_client):
    account = AccountFactory()
    spendable_earn(account.customer, "300.00")
    Reward.objects.create(code="old", name="Old", points_cost=10, is_active=False)
    for code in ("old", "nothing"):
        response = post(
            web_client,
            "/api/v1/loyalty/rewards/buy/",
            {"customer": str(account.customer.reference), "reward": code},
            f"k-{code}",
        )
        assert (response.status_code, response.json()["code"]) == (404, "reward_unavailable")
    assert PointsSpend.objects.count() == 0


def test_the_periodic_tasks_expire_lots_and_holds_and_reconcile():
    # given an expired lot and an abandoned hold
    account = AccountFactory()
    old = spendable_earn(account.customer, "50.00")
    PointsLot.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=1))
    spendable_earn(account.customer, "20.00")
    from loyalty import services

    spend = services.points_hold(
        customer=account.customer,
        points=20,
        reference="cart",
        channel="web",
        idempotency_key="h",
        ttl_minutes=1,
    )
    PointsSpend.objects.filter(pk=spend.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    # when the tasks run (eagerly in tests)
    assert tasks.points_expire_task.delay().get() == 50
    assert tasks.points_holds_expire_task.delay().get() == 1
    assert tasks.coupon_holds_expire_task.delay().get() == 0
    assert tasks.tiers_review_task.delay().get() == 0
    # then the ledger still proves out
    assert tasks.ledger_reconcile_task.delay().get() == 0
    assert selectors.points_summary(account=account) == {"available": 20, "pending": 0, "held": 0}


def test_reconciliation_reports_a_tampered_cache():
    account = AccountFactory()
    earn(account.customer, "10.00")
    type(account).objects.filter(pk=account.pk).update(points_remaining=999)
    assert tasks.ledger_reconcile_task.delay().get() == 1

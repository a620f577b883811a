"""Erasure and what the person had: points are forfeited, with a ledger entry and a warning;
store credit (money owed) blocks it; the consent log is kept as the proof."""

import pytest

from customers.models import ConsentEvent
from loyalty.models import PointsMovement
from loyalty.selectors import ledger_mismatches
from payments.services import stored_value as sv
from tests.loyalty.factories import AccountFactory, earn
from tests.loyalty.test_coupons import consent

pytestmark = pytest.mark.django_db


def _erase(client, customer, key="e-1"):
    return client.post(
        f"/api/v1/customers/{customer.reference}/erase/",
        {"reason": "GDPR request #7"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_erasing_a_member_forfeits_the_points_in_the_ledger_and_says_so(api_client_factory):
    account = AccountFactory()
    earn(account.customer, "120.00")
    consent(account.customer)
    account.refresh_from_db()
    points = account.points_remaining
    assert points > 0
    dpo = api_client_factory(scopes=["customers:privacy"], channel="backoffice")

    response = _erase(dpo, account.customer)

    assert response.status_code == 200, response.json()
    assert response.json()["warnings"] == [
        f"{points} loyalty points were forfeited (recorded in the points ledger as 'forfeit'); "
        "points have no cash value and are not refunded."
    ]
    forfeits = PointsMovement.objects.filter(kind="forfeit", account=account)
    assert -sum(m.delta for m in forfeits) == points
    account.refresh_from_db()
    assert account.points_remaining == 0 and ledger_mismatches() == []
    log = ConsentEvent.objects.filter(customer=account.customer).order_by("pk")
    assert [e.granted for e in log] == [True, False]  # kept, closed by the erasure


def test_store_credit_blocks_the_erasure_and_nothing_is_forfeited(api_client_factory):
    account = AccountFactory()
    earn(account.customer, "120.00")
    sv.wallet_credit(
        customer=account.customer,
        amount="10.00",
        currency="EUR",
        idempotency_key="sc",
        channel="web",
        actor="t",
    )
    dpo = api_client_factory(scopes=["customers:privacy"], channel="backoffice")

    response = _erase(dpo, account.customer)

    assert (response.status_code, response.json()["code"]) == (409, "erasure_blocked")
    assert "Store credit of 10.00 EUR" in response.json()["details"]["blockers"][0]
    assert not PointsMovement.objects.filter(kind="forfeit").exists()

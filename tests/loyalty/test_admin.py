"""Staff configure rules, tiers and campaigns, issue codes and read reports; ledgers are
read-only."""

import pytest
from django.contrib.messages import get_messages

from customers.services import ConsentChange, consent_record
from loyalty.models import Coupon, LoyaltyAccount, PointsLot
from tests.customers.factories import CustomerFactory
from tests.factories import UserFactory
from tests.loyalty.factories import AccountFactory, CampaignFactory, spendable_earn

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_superuser=True))
    return client


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_every_loyalty_admin_page_renders(staff_client):
    account = AccountFactory()
    spendable_earn(account.customer, "10.00")
    campaign = CampaignFactory()
    for model in (
        "programsettings",
        "reward",
        "tier",
        "earningrule",
        "loyaltyaccount",
        "pointslot",
        "pointsmovement",
        "pointsspend",
        "pointsoperation",
        "campaign",
        "coupon",
        "couponredemption",
    ):
        assert staff_client.get(f"/admin/loyalty/{model}/").status_code == 200, model
    assert (
        staff_client.get(f"/admin/loyalty/loyaltyaccount/{account.pk}/change/").status_code == 200
    )
    page = staff_client.get(f"/admin/loyalty/campaign/{campaign.pk}/change/")
    assert b"redemption rate" in page.content


def test_the_issue_action_issues_codes_to_consenting_targets(staff_client):
    yes, no = CustomerFactory(), CustomerFactory()
    consent_record(
        customer=yes,
        changes=[ConsentChange("marketing", "email", True, "v1")],
        sales_channel="web",
        actor="t",
    )
    campaign = CampaignFactory()
    campaign.target_customers.set([yes, no])
    response = staff_client.post(
        "/admin/loyalty/campaign/",
        {"action": "issue_codes", "_selected_action": [campaign.pk]},
        follow=True,
    )
    assert Coupon.objects.get().customer == yes
    assert any("1 issued, 1 without consent" in m for m in _messages(response))


def test_the_report_action_downloads_csv(staff_client):
    campaign = CampaignFactory(name="Spring")
    response = staff_client.post(
        "/admin/loyalty/campaign/",
        {"action": "report_as_csv", "_selected_action": [campaign.pk]},
    )
    assert response["Content-Type"] == "text/csv"
    assert "Spring" in response.content.decode()


def test_ledgers_cannot_be_edited_or_deleted_in_the_admin(staff_client):
    account = AccountFactory()
    lot = spendable_earn(account.customer, "10.00")
    change = staff_client.post(f"/admin/loyalty/pointslot/{lot.pk}/change/", {"remaining": 999})
    delete = staff_client.post(f"/admin/loyalty/pointslot/{lot.pk}/delete/", {"post": "yes"})
    assert change.status_code == 403 and delete.status_code == 403
    lot.refresh_from_db()
    assert lot.remaining == 10
    assert staff_client.get("/admin/loyalty/loyaltyaccount/add/").status_code == 403
    assert LoyaltyAccount.objects.count() == 1 and PointsLot.objects.count() == 1

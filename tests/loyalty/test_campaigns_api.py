"""A CRM drives campaigns through the API: create, issue (consent respected, never twice), and
see who came to the shop after the offer."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from loyalty.models import Campaign, Coupon
from tests.customers.factories import CustomerFactory
from tests.factories import LocationFactory
from tests.loyalty.factories import AccountFactory, CampaignFactory, earn
from tests.loyalty.test_coupons import consent, redeem

pytestmark = pytest.mark.django_db
BASE = "/api/v1/loyalty/campaigns/"


@pytest.fixture
def crm(api_client_factory):
    return api_client_factory(scopes=["campaigns:write", "customers:read"], channel="backoffice")


def _post(client, url, body=None, key="c-1"):
    return client.post(url, body or {}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def _body(customers, **overrides):
    now = timezone.now()
    body = {
        "name": "Winter -15 %",
        "discount_type": "percent",
        "discount_value": "15",
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=30)).isoformat(),
        "channels": ["web", "store"],
        "issue_channel": "email",
        "target_kind": "list",
        "target_customers": [str(c.reference) for c in customers],
    }
    body.update(overrides)
    return body


def test_create_then_issue_to_consenting_customers_once(crm):
    yes1, yes2, no = CustomerFactory(), CustomerFactory(), CustomerFactory()
    consent(yes1)
    consent(yes2)
    consent(no, granted=False)

    created = _post(crm, BASE, _body([yes1, yes2, no]))
    assert created.status_code == 201, created.json()
    campaign = created.json()
    assert (campaign["target_customers_count"], campaign["codes_issued"]) == (3, 0)
    url = f"{BASE}{campaign['id']}/issue/"

    first = _post(crm, url, key="i-1")
    retried = _post(crm, url, key="i-1")
    again = _post(crm, url, key="i-2")  # a second issue run, e.g. the next day

    assert first.json() == {
        "campaign": campaign["id"],
        "issued": 2,
        "skipped_no_consent": 1,
        "skipped_limit": 0,
        "codes_issued": 2,
    }
    assert retried.json() == first.json()
    assert (again.json()["issued"], again.json()["skipped_limit"]) == (0, 2)
    assert set(Coupon.objects.values_list("customer_id", flat=True)) == {yes1.pk, yes2.pk}
    listed = crm.get(BASE).json()
    assert [c["id"] for c in listed["results"]] == [campaign["id"]]
    assert crm.get(f"{BASE}{campaign['id']}/").json()["codes_issued"] == 2


@pytest.mark.parametrize(
    "overrides,code",
    [
        ({"discount_value": "0"}, "campaign_discount_invalid"),
        ({"discount_value": "150"}, "campaign_discount_invalid"),
        ({"discount_type": "amount", "discount_value": "99999"}, "campaign_discount_invalid"),
        ({"discount_value": 12.5}, "invalid"),
        ({"ends_at": (timezone.now() - timedelta(days=1)).isoformat()}, "campaign_period_invalid"),
        ({"starts_at": "2026-03-01T09:00:00"}, "invalid"),  # no UTC offset
        ({"target_customers": []}, "campaign_target_invalid"),
        ({"target_customers": ["00000000-0000-0000-0000-000000000000"]}, "customer_not_found"),
        ({"eligible_skus": ["NOPE"]}, "unknown_sku"),
        ({"channels": ["moon"]}, "invalid"),
    ],
)
def test_bad_campaigns_are_refused_and_nothing_is_created(crm, overrides, code):
    response = _post(crm, BASE, _body([CustomerFactory()], **overrides))

    assert response.status_code in (400, 404), response.json()
    assert response.json()["code"] == code
    assert not Campaign.objects.exists()


def test_campaigns_need_their_scope_and_a_finished_one_cannot_be_issued(api_client_factory, crm):
    storefront = api_client_factory(scopes=["customers:read", "loyalty:write"], channel="web")
    assert _post(storefront, BASE, _body([CustomerFactory()])).status_code == 403
    over = CampaignFactory(
        starts_at=timezone.now() - timedelta(days=10), ends_at=timezone.now() - timedelta(days=1)
    )
    response = _post(crm, f"{BASE}{over.pk}/issue/")
    assert (response.status_code, response.json()["code"]) == (410, "campaign_over")
    missing = _post(crm, f"{BASE}999999/issue/", key="c-2")
    assert (missing.status_code, missing.json()["code"]) == (404, "campaign_not_found")


def test_the_recipients_list_says_who_came_to_the_shop_within_the_window(
    crm, django_assert_max_num_queries
):
    # given a campaign issued 10 days ago (window 7 days) to four members who consented
    issued_at = timezone.now() - timedelta(days=10)
    campaign = CampaignFactory(o2o_days=7, starts_at=issued_at - timedelta(days=1))
    store = LocationFactory(code="PARIS01")
    people = [AccountFactory() for _ in range(4)]
    for person in people:
        consent(person.customer)
    codes = [
        Coupon.objects.create(
            campaign=campaign,
            customer=p.customer,
            code=f"CODE{i}",
            issue_channel="email",
            issued_at=issued_at,
        )
        for i, p in enumerate(people)
    ]
    # one redeems at a till today (10 days after: outside), one buys in a store 3 days after,
    # one 9 days after (too late),
    # and the last withdrew the consent since: still a row, without who they are
    redeem(codes[0], channel="store", store=store, key="r0")
    earn(
        people[1].customer,
        "40.00",
        source_type="store_receipt",
        channel="store",
        store=store,
        at=issued_at + timedelta(days=3),
    )
    earn(
        people[2].customer,
        "40.00",
        source_type="store_receipt",
        channel="store",
        store=store,
        at=issued_at + timedelta(days=9),
    )
    consent(people[3].customer, granted=False)

    with django_assert_max_num_queries(8):
        page = crm.get(f"{BASE}{campaign.pk}/recipients/").json()

    rows = page["results"]
    assert page["count"] == 4
    by_number = {row["customer_number"]: row for row in rows}
    till, store_visit, too_late = (by_number[p.customer.number] for p in people[:3])
    assert (till["redemptions"], till["redeemed_channel"], till["redeemed_store"]) == (
        1,
        "store",
        "PARIS01",
    )
    assert (store_visit["store_visits"], store_visit["redemptions"]) == (1, 0)
    assert too_late["store_visits"] == 0 and too_late["first_store_visit_at"] is None
    anonymous = [row for row in rows if not row["identified"]]
    assert len(anonymous) == 1 and anonymous[0]["customer"] is None
    assert anonymous[0]["customer_number"] is None

    response = crm.get(f"{BASE}{campaign.pk}/recipients.csv")
    lines = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(lines) == 4
    # the receipt 3 days after; the till redemption came today, 10 days after: outside
    assert sum(int(line["store_visits"]) for line in lines) == 1
    assert {line["customer_number"] for line in lines} == {
        *(p.customer.number for p in people[:3]),
        "",
    }


def test_the_recipients_query_count_does_not_grow_with_recipients(
    crm, django_assert_max_num_queries
):
    campaign = CampaignFactory()
    for i in range(30):
        person = AccountFactory()
        consent(person.customer)
        Coupon.objects.create(
            campaign=campaign,
            customer=person.customer,
            code=f"BULK{i}",
            issue_channel="email",
            issued_at=timezone.now(),
        )

    with django_assert_max_num_queries(8):
        page = crm.get(f"{BASE}{campaign.pk}/recipients/?page_size=30").json()

    assert len(page["results"]) == 30

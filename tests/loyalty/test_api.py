from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from common.models import Scope
from loyalty import coupons
from loyalty.models import Coupon, CouponRedemption, PointsLot, PointsSpend
from tests.customers.factories import CustomerFactory
from tests.factories import LocationFactory
from tests.loyalty.factories import AccountFactory, CampaignFactory, earn, spendable_earn

pytestmark = pytest.mark.django_db

_keys = iter(range(1, 10**6))


def post(client, url, body, key=None):
    return client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key or f"key-{next(_keys)}")


def points_state():
    return (
        list(PointsLot.objects.order_by("pk").values_list("pk", "remaining")),
        list(PointsSpend.objects.order_by("pk").values_list("pk", "status")),
    )


def coupon_state():
    return (
        list(Coupon.objects.order_by("pk").values_list("pk", "status", "hold_ref")),
        CouponRedemption.objects.count(),
    )


def new_coupon(customer=None, **fields):
    return Coupon.objects.create(
        campaign=CampaignFactory(**fields),
        customer=customer or CustomerFactory(),
        code=coupons.code_new(),
        issue_channel="email",
        issued_at=timezone.now(),
    )


BASKET = [{"sku": "SKU-1", "quantity": 1, "amount": "80.00", "category": "tops"}]


# ---- balance, lots, history, offers --------------------------------------------------------------


def test_balance_and_lots_with_expiry(web_client, django_assert_max_num_queries):
    account = AccountFactory()
    spendable_earn(account.customer, "100.00")
    pending = earn(account.customer, "40.00")
    with django_assert_max_num_queries(8):
        response = web_client.get(f"/api/v1/loyalty/customers/{account.customer.reference}/")
    assert response.status_code == 200
    body = response.json()
    assert (body["available"], body["pending"], body["held"]) == (100, 40, 0)
    assert body["card_number"] == account.card_number
    assert [(lot["remaining"], lot["pending"]) for lot in body["lots"]] == [
        (100, False),
        (40, True),
    ]
    assert body["lots"][1]["expires_at"] == pending.expires_at.isoformat().replace("+00:00", "Z")


def test_enrolling_through_the_api_creates_the_card_and_the_account(till_client):
    customer = CustomerFactory()
    response = post(
        till_client, f"/api/v1/loyalty/customers/{customer.number}/", {"card_number": "2900 1234"}
    )
    assert response.status_code == 201, response.json()
    assert response.json()["card_number"] == "29001234"
    resolved = till_client.get("/api/v1/customers/resolve/", {"loyalty_card": "29001234"})
    assert resolved.json()["customer"]["reference"] == str(customer.reference)


def test_a_customer_without_account_is_a_clear_404(web_client):
    customer = CustomerFactory()
    response = web_client.get(f"/api/v1/loyalty/customers/{customer.reference}/")
    assert (response.status_code, response.json()["code"]) == (404, "no_loyalty_account")


def test_history_pages_through_movements(web_client):
    account = AccountFactory()
    for _ in range(3):
        spendable_earn(account.customer, "10.00")
    url = f"/api/v1/loyalty/customers/{account.customer.reference}/history/"
    first = web_client.get(url, {"limit": 2}).json()
    assert [m["delta"] for m in first["results"]] == [10, 10]
    second = web_client.get(url, {"limit": 2, "before": first["next_before"]}).json()
    assert len(second["results"]) == 1 and second["next_before"] is None
    assert web_client.get(url, {"limit": 0}).status_code == 400


def test_offers_of_a_customer_for_the_callers_channel(till_client):
    customer = CustomerFactory()
    store_code = new_coupon(customer, channels=["store"])
    new_coupon(customer, channels=["web"])
    response = till_client.get(f"/api/v1/loyalty/customers/{customer.reference}/offers/")
    assert [offer["code"] for offer in response.json()] == [store_code.code]


# ---- points as a tender --------------------------------------------------------------------------


def test_points_hold_capture_and_release_through_the_api_and_a_retry_replays(till_client):
    account = AccountFactory()
    spendable_earn(account.customer, "100.00")
    store = LocationFactory(code="PARIS01")
    body = {
        "customer": str(account.customer.reference),
        "points": 30,
        "reference": "T-1",
        "store": "PARIS01",
    }
    held = post(till_client, "/api/v1/loyalty/points/holds/", body, key="hold-1")
    again = post(till_client, "/api/v1/loyalty/points/holds/", body, key="hold-1")
    assert held.status_code == 201 and again.json() == held.json()
    assert PointsSpend.objects.get().store == store
    hold_id = held.json()["id"]
    captured = post(till_client, f"/api/v1/loyalty/points/holds/{hold_id}/capture/", {"points": 20})
    assert captured.json()["captured_points"] == 20
    released = post(till_client, f"/api/v1/loyalty/points/holds/{hold_id}/release/", {})
    assert (released.status_code, released.json()["code"]) == (409, "points_hold_not_open")
    balance = till_client.get(f"/api/v1/loyalty/customers/{account.customer.reference}/").json()
    assert balance["available"] == 80


@pytest.mark.parametrize(
    "points, status, code",
    [
        (101, 409, "insufficient_points"),  # more than available
        (150, 409, "insufficient_points"),  # includes pending points
        (-5, 400, "invalid"),
        (0, 400, "invalid"),
        (1.5, 400, "invalid"),
        ("10", 400, "invalid"),
    ],
)
def test_spending_more_than_available_or_pending_or_negative_is_refused(
    web_client, points, status, code
):
    account = AccountFactory()
    spendable_earn(account.customer, "100.00")
    earn(account.customer, "50.00")  # pending
    before = points_state()
    response = post(
        web_client,
        "/api/v1/loyalty/points/holds/",
        {"customer": str(account.customer.reference), "points": points, "reference": "W1"},
    )
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert points_state() == before


def test_writes_need_the_loyalty_scope_and_an_idempotency_key(api_client_factory):
    account = AccountFactory()
    spendable_earn(account.customer, "100.00")
    read_only = api_client_factory(scopes=[Scope.CUSTOMERS_READ])
    body = {"customer": str(account.customer.reference), "points": 5, "reference": "W"}
    assert post(read_only, "/api/v1/loyalty/points/holds/", body).status_code == 403
    full = api_client_factory()
    no_key = full.post("/api/v1/loyalty/points/holds/", body, format="json")
    assert (no_key.status_code, no_key.json()["code"]) == (400, "idempotency_key_required")
    assert PointsSpend.objects.count() == 0


# ---- coupons: validate, redeem and every bad input -----------------------------------------------


def test_validate_then_redeem_online_records_the_redemption(web_client):
    coupon = new_coupon()
    body = {
        "code": coupon.code,
        "customer": str(coupon.customer.reference),
        "currency": "EUR",
        "lines": BASKET,
    }
    checked = web_client.post("/api/v1/loyalty/coupons/validate/", body, format="json")
    assert checked.status_code == 200
    assert (checked.json()["discount"], checked.json()["basket_total"]) == ("10.00", "80.00")
    assert coupon_state()[1] == 0  # validating consumes nothing
    redeemed = post(web_client, "/api/v1/loyalty/coupons/redeem/", {**body, "order_ref": "W42"})
    assert redeemed.status_code == 201
    assert (redeemed.json()["channel"], redeemed.json()["order_ref"]) == ("web", "W42")


def test_a_cart_hold_then_redeem_with_the_cart_and_release(web_client):
    coupon = new_coupon()
    body = {
        "code": coupon.code,
        "customer": str(coupon.customer.reference),
        "currency": "EUR",
        "lines": BASKET,
        "cart_ref": "cart-7",
    }
    assert post(web_client, "/api/v1/loyalty/coupons/hold/", body).status_code == 200
    released = post(
        web_client,
        "/api/v1/loyalty/coupons/release/",
        {"code": coupon.code, "customer": str(coupon.customer.reference), "cart_ref": "cart-7"},
    )
    assert released.json() == {"released": True}
    assert post(web_client, "/api/v1/loyalty/coupons/hold/", body).status_code == 200
    assert post(web_client, "/api/v1/loyalty/coupons/redeem/", body).status_code == 201


@pytest.mark.parametrize(
    "case, status, code",
    [
        ("unknown", 404, "coupon_not_found"),
        ("expired", 410, "coupon_expired"),
        ("other_customer", 403, "coupon_not_owned"),
        ("channel", 403, "coupon_channel_not_allowed"),
        ("under_minimum", 422, "basket_not_eligible"),
        ("redeemed_twice", 409, "coupon_already_used"),
        ("negative_amount", 400, "invalid"),
        ("float_amount", 400, "invalid"),
    ],
)
def test_bad_coupon_input_is_a_clear_4xx_and_consumes_nothing(web_client, case, status, code):
    now = timezone.now()
    fields = {
        "expired": {"starts_at": now - timedelta(days=5), "ends_at": now - timedelta(days=1)},
        "channel": {"channels": ["store"]},
    }.get(case, {})
    coupon = new_coupon(**fields)
    if case == "redeemed_twice":
        coupons.coupon_redeem(
            code=coupon.code,
            customer=coupon.customer,
            channel="store",
            store=LocationFactory(),
            lines=[coupons.BasketLine("SKU-1", 1, Decimal("80.00"))],
            currency="EUR",
            idempotency_key="first",
        )
    amount = {"under_minimum": "49.99", "negative_amount": "-80.00", "float_amount": 80.0}.get(
        case, "80.00"
    )
    body = {
        "code": "WRONGCODE234" if case == "unknown" else coupon.code,
        "customer": str(
            CustomerFactory().reference if case == "other_customer" else coupon.customer.reference
        ),
        "currency": "EUR",
        "lines": [{"sku": "SKU-1", "quantity": 1, "amount": amount}],
    }
    before = coupon_state()
    for url in ("/api/v1/loyalty/coupons/validate/", "/api/v1/loyalty/coupons/redeem/"):
        response = post(web_client, url, body)
        assert (response.status_code, response.json()["code"]) == (status, code), url
    assert coupon_state() == before


def test_a_code_redeemed_at_the_till_is_dead_online(till_client, web_client):
    coupon = new_coupon()
    LocationFactory(code="LYON01")
    body = {
        "code": coupon.code,
        "customer": str(coupon.customer.reference),
        "currency": "EUR",
        "lines": BASKET,
    }
    at_till = post(
        till_client, "/api/v1/loyalty/coupons/redeem/", {**body, "store": "LYON01", "till": "3"}
    )
    assert at_till.status_code == 201 and at_till.json()["store"] == "LYON01"
    online = post(web_client, "/api/v1/loyalty/coupons/redeem/", body)
    assert (online.status_code, online.json()["code"]) == (409, "coupon_already_used")


# ---- report --------------------------------------------------------------------------------------


def test_campaign_report_as_json_and_csv(web_client):
    coupon = new_coupon()
    coupons.coupon_redeem(
        code=coupon.code,
        customer=coupon.customer,
        channel="web",
        lines=[coupons.BasketLine("SKU-1", 1, Decimal("80.00"))],
        currency="EUR",
        idempotency_key="r",
    )
    url = f"/api/v1/loyalty/campaigns/{coupon.campaign_id}/report/"
    report = web_client.get(url).json()
    assert (report["issued"], report["redeemed"], report["redemption_rate"]) == (1, 1, "1.0000")
    csv_response = web_client.get(f"/api/v1/loyalty/campaigns/{coupon.campaign_id}/report.csv")
    assert csv_response["Content-Type"] == "text/csv"
    header, row = csv_response.content.decode().strip().splitlines()
    assert header.startswith("campaign,name,issued,recipients,redeemed,redemption_rate")
    assert row.split(",")[2:5] == ["1", "1", "1"]
    assert web_client.get("/api/v1/loyalty/campaigns/999999/report/").status_code == 404


def test_loyalty_movements_appear_in_the_customers_unified_history(web_client):
    # given two earns (the factory account has no customers-app events of its own)
    account = AccountFactory()
    spendable_earn(account.customer, "10.00")
    spendable_earn(account.customer, "20.00")
    url = f"/api/v1/customers/{account.customer.reference}/history/"
    # when the history is read one entry per page
    first = web_client.get(url, {"limit": 1}).json()
    second = web_client.get(url, {"limit": 1, "cursor": first["next_cursor"]}).json()
    # then both movements appear once, in order, newest first
    entries = first["results"] + second["results"]
    assert [e["kind"] for e in entries] == ["points_credit", "points_credit"]
    assert [e["summary"].split(" ")[0] for e in entries] == ["+20", "+10"]

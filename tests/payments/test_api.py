"""Payments API: balances, store credit, tenders, refunds, provider webhooks — and bad input."""

import json

import pytest
from django.utils import timezone

from common.signing import signature_header
from payments.models import ProviderEvent, Tender, TenderStatus
from payments.providers.sandbox import SIGNATURE_HEADER
from payments.selectors import order_payment_summary
from payments.services import stored_value as sv
from tests.customers.factories import CustomerFactory
from tests.payments.conftest import D, balances, issue, make_order, snapshot_payments

pytestmark = pytest.mark.django_db


def post(client, url, data, key="k-1"):
    return client.post(url, data, format="json", HTTP_IDEMPOTENCY_KEY=key)


def tenders_url(order):
    return f"/api/v1/payments/orders/{order.reference}/tenders/"


# ---- gift card balance, store credit ------------------------------------------------------------


def test_gift_card_balance(web_client):
    card, code = issue("40.00")
    sv.balance_hold(account=card, amount="15.00", idempotency_key="h", channel="web", actor="t")
    response = web_client.post(
        "/api/v1/payments/gift-cards/balance/", {"code": code.lower()}, format="json"
    )
    assert response.status_code == 200
    assert response.json() | {"expires_at": None} == {
        "last4": code[-4:],
        "currency": "EUR",
        "balance": "40.00",
        "available": "25.00",
        "state": "active",
        "expires_at": None,
    }


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [("NOT-A-CODE", 400, "gift_card_code_invalid"), (None, 404, "gift_card_not_found")],
)
def test_gift_card_balance_bad_codes(web_client, code, status, error):
    from payments import codes

    response = web_client.post(
        "/api/v1/payments/gift-cards/balance/", {"code": code or codes.generate()}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (status, error)


def test_store_credit_of_a_customer_in_any_channel(api_client_factory):
    customer = CustomerFactory()
    sv.wallet_credit(
        customer=customer,
        amount="12.00",
        currency="EUR",
        idempotency_key="c",
        channel="web",
        actor="t",
    )
    till = api_client_factory(channel="store", scopes=["payments:read"])
    response = till.get(f"/api/v1/payments/customers/{customer.reference}/store-credit/")
    assert response.status_code == 200
    assert response.json()["wallets"] == [
        {"currency": "EUR", "balance": "12.00", "held": "0.00", "available": "12.00"}
    ]


def test_payments_need_the_payments_scope(api_client_factory):
    client = api_client_factory(scopes=["orders:read"])
    response = client.post("/api/v1/payments/gift-cards/balance/", {"code": "x"}, format="json")
    assert response.status_code == 403


# ---- tenders -------------------------------------------------------------------------------------


def test_split_a_bill_over_the_api_and_replay_is_safe(
    web_client, django_capture_on_commit_callbacks
):
    order = make_order(total="100.00")
    card, code = issue("30.00")
    sv.wallet_credit(
        customer=order.customer,
        amount="20.00",
        currency="EUR",
        idempotency_key="c",
        channel="web",
        actor="t",
    )
    # when the storefront adds a gift card, store credit and a card
    first = post(
        web_client,
        tenders_url(order),
        {"kind": "gift_card", "code": code, "amount": "30.00", "currency": "EUR"},
        "t1",
    )
    replay = post(
        web_client,
        tenders_url(order),
        {"kind": "gift_card", "code": code, "amount": "30.00", "currency": "EUR"},
        "t1",
    )
    credit = post(
        web_client,
        tenders_url(order),
        {"kind": "store_credit", "amount": "20.00", "currency": "EUR"},
        "t2",
    )
    with django_capture_on_commit_callbacks(execute=True):
        by_card = post(
            web_client,
            tenders_url(order),
            {"kind": "card", "token": "tok_visa", "amount": "50.00", "currency": "EUR"},
            "t3",
        )
    # then every tender is there once and nothing is due
    assert [r.status_code for r in (first, replay, credit, by_card)] == [201, 201, 201, 201]
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"
    assert by_card.json()["tender"]["status"] == "pending"  # the webhook had not come yet
    summary = web_client.get(f"/api/v1/payments/orders/{order.reference}/").json()
    assert (summary["due"], summary["authorised"], summary["paid"]) == ("0.00", "100.00", "0.00")
    assert [t["status"] for t in summary["tenders"]] == ["authorised"] * 3
    assert balances(card) == (D("30.00"), D("30.00"))
    again = post(
        web_client,
        tenders_url(order),
        {"kind": "card", "token": "tok_visa", "amount": "50.00", "currency": "EUR"},
        "t3",
    )
    assert again.json()["tender"]["id"] == by_card.json()["tender"]["id"]
    assert Tender.objects.count() == 3


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"amount": "0"}, 400, "invalid_amount"),
        ({"amount": "-5.00"}, 400, "invalid_amount"),
        ({"amount": "1.005"}, 400, "invalid"),
        ({"amount": 10.5}, 400, "invalid"),
        ({"amount": "10.00", "currency": "GBP"}, 400, "currency_mismatch"),
        ({"amount": "100.01"}, 409, "tender_exceeds_due"),
        ({"amount": "10.00", "code": "ZZZZ"}, 400, "gift_card_code_invalid"),
        ({"amount": "10.00", "code": "unknown"}, 404, "gift_card_not_found"),
        ({"amount": "10.00", "code": "blocked"}, 409, "gift_card_blocked"),
        ({"amount": "10.00", "code": "expired"}, 409, "gift_card_expired"),
        ({"amount": "60.00", "code": "small"}, 409, "insufficient_balance"),
        ({"amount": "10.00", "code": None}, 400, "invalid"),
    ],
)
def test_bad_tenders_get_a_clear_4xx_and_no_money_moves(web_client, body, status, error):
    from payments import codes
    from payments.models import GiftCard

    order = make_order(total="100.00")
    big, big_code = issue("500.00")
    blocked, blocked_code = issue("50.00")
    sv.gift_card_block(card=blocked, actor="t", reason="lost")
    expired, expired_code = issue("50.00", expires_at=timezone.now() + timezone.timedelta(days=1))
    GiftCard.objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    _, small_code = issue("50.00")
    named = {
        "unknown": codes.generate(),
        "blocked": blocked_code,
        "expired": expired_code,
        "small": small_code,
    }
    code = body.get("code", big_code)
    payload = {"kind": "gift_card", "currency": "EUR", **body, "code": named.get(code, code)}
    if payload["code"] is None:
        del payload["code"]
    before = snapshot_payments()
    response = post(web_client, tenders_url(order), payload)
    assert (response.status_code, response.json()["code"]) == (status, error)
    assert snapshot_payments() == before


def test_an_unknown_card_token_is_the_client_s_error_and_charges_nothing(web_client):
    order = make_order(total="100.00")

    response = post(
        web_client,
        tenders_url(order),
        {"kind": "card", "token": "tok_nobody_knows", "amount": "50.00", "currency": "EUR"},
    )

    assert (response.status_code, response.json()["code"]) == (422, "payment_refused_by_provider")
    # The intent was recorded before calling out, and is kept as failed: it covers nothing.
    assert list(Tender.objects.values_list("status", flat=True)) == [TenderStatus.FAILED]
    assert order_payment_summary(order_reference=order.reference).due == D("100.00")


def test_a_tender_on_a_closed_or_unknown_order_is_refused(web_client):
    order = make_order(status="cancelled")
    body = {"kind": "till", "amount": "1.00", "currency": "EUR"}
    response = post(web_client, tenders_url(order), body)
    assert (response.status_code, response.json()["code"]) == (409, "order_closed")
    response = post(web_client, "/api/v1/payments/orders/NOPE/tenders/", body, "k2")
    assert (response.status_code, response.json()["code"]) == (404, "order_not_payable")
    response = web_client.post(tenders_url(order), body, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "idempotency_key_required")
    assert Tender.objects.count() == 0


# ---- refunds ----------------------------------------------------------------------------------


def test_a_return_in_a_store_refunds_an_order_paid_online(api_client_factory, web_client):
    # given an order paid online with a gift card, then collected (captured)
    order = make_order(total="40.00")
    card, code = issue("40.00")
    post(
        web_client,
        tenders_url(order),
        {"kind": "gift_card", "code": code, "amount": "40.00", "currency": "EUR"},
    )
    from payments.services.tenders import order_payment_capture

    order_payment_capture(order_reference=order.reference, actor="t", channel="store")
    till = api_client_factory(channel="store", scopes=["payments:refund"])
    url = f"/api/v1/payments/orders/{order.reference}/refunds/"
    # when a store refunds 15, then asks for more than is left, then as store credit
    first = post(till, url, {"amount": "15.00", "currency": "EUR"}, "r1")
    too_much = post(till, url, {"amount": "25.01", "currency": "EUR"}, "r2")
    as_credit = post(
        till, url, {"amount": "5.00", "currency": "EUR", "to_store_credit": True}, "r3"
    )
    # then the gift card got 15 back, the shopper 5 of store credit, the excess was refused
    assert first.status_code == 201 and first.json()["lines"] == [
        {
            "tender": Tender.objects.get().pk,
            "kind": "gift_card",
            "amount": "15.00",
            "to_store_credit": False,
        }
    ]
    assert (too_much.status_code, too_much.json()["code"]) == (409, "refund_exceeds_captured")
    assert as_credit.status_code == 201
    assert balances(card) == (D("15.00"), D("0.00"))
    wallet = sv.wallet_for(customer=order.customer, currency="EUR")
    assert balances(wallet) == (D("5.00"), D("0.00"))
    assert as_credit.json()["payment"]["refunded"] == "20.00"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"amount": "0", "currency": "EUR"}, 400, "invalid_amount"),
        ({"amount": "1.001", "currency": "EUR"}, 400, "invalid"),
        ({"amount": "1.00", "currency": "USD"}, 400, "currency_mismatch"),
        ({"amount": "1.00", "currency": "EUR"}, 409, "refund_exceeds_captured"),
    ],
)
def test_bad_refunds_are_refused(web_client, body, status, error):
    order = make_order()
    before = snapshot_payments()
    response = post(web_client, f"/api/v1/payments/orders/{order.reference}/refunds/", body)
    assert (response.status_code, response.json()["code"]) == (status, error)
    assert snapshot_payments() == before


# ---- provider webhook endpoint -----------------------------------------------------------------


def _webhook(client, payload, *, secret="whsec_sandbox_dev", timestamp=None):
    body = json.dumps(payload).encode()
    return client.post(
        "/api/v1/payments/webhooks/sandbox/",
        body,
        content_type="application/json",
        **{
            f"HTTP_{SIGNATURE_HEADER.upper().replace('-', '_')}": signature_header(
                secret, body, timestamp
            )
        },
    )


def test_the_webhook_endpoint_applies_an_event_once_and_acknowledges_replays(
    client, web_client, django_capture_on_commit_callbacks
):
    order = make_order(total="20.00")
    response = post(
        web_client,
        tenders_url(order),
        {"kind": "card", "token": "tok_visa", "amount": "20.00", "currency": "EUR"},
    )
    tender = Tender.objects.get(pk=response.json()["tender"]["id"])
    payload = {
        "id": "evt_manual_1",
        "type": "payment.authorised",
        "created": 0,
        "data": {
            "payment": tender.provider_reference,
            "merchant_reference": f"tender-{tender.pk}",
            "amount": "20.00",
            "currency": "EUR",
            "expires_at": None,
        },
    }
    with django_capture_on_commit_callbacks(execute=True):
        first = _webhook(client, payload)
    with django_capture_on_commit_callbacks(execute=True):
        again = _webhook(client, payload)
    assert first.json() == {"received": True, "duplicate": False}
    assert again.json() == {"received": True, "duplicate": True}
    tender.refresh_from_db()
    assert tender.status == TenderStatus.AUTHORISED
    assert tender.events.filter(kind="authorised").count() == 1


@pytest.mark.parametrize("tamper", ["secret", "stale", "unknown_provider", "garbage"])
def test_a_bad_webhook_gets_a_4xx_and_nothing_is_stored(client, tamper):
    payload = {"id": "evt_x", "type": "payment.captured", "data": {}}
    if tamper == "secret":
        response = _webhook(client, payload, secret="wrong")
        expected = (401, "signature_invalid")
    elif tamper == "stale":
        response = _webhook(client, payload, timestamp=int(timezone.now().timestamp()) - 600)
        expected = (401, "signature_invalid")
    elif tamper == "unknown_provider":
        response = client.post(
            "/api/v1/payments/webhooks/paypal/", b"{}", content_type="application/json"
        )
        expected = (404, "unknown_payment_provider")
    else:
        response = _webhook(client, payload)  # well signed, but not a sandbox event
        expected = (400, "invalid")
    assert (response.status_code, response.json()["code"]) == expected
    assert ProviderEvent.objects.count() == 0


# ---- holds for till tickets and carts ----------------------------------------------------------


def test_a_till_holds_a_gift_card_then_captures_part_and_the_web_cannot_spend_it_meanwhile(
    api_client_factory, web_client
):
    card, code = issue("50.00")
    till = api_client_factory(channel="store", scopes=["payments:write"])
    # when the till applies 40 of the card to a ticket
    held = post(
        till,
        "/api/v1/payments/holds/",
        {
            "source": "gift_card",
            "code": code,
            "amount": "40.00",
            "currency": "EUR",
            "reference": "TICKET-1",
        },
        "h1",
    )
    assert held.status_code == 201 and held.json()["status"] == "open"
    # then the web shop cannot take more than the 10 left
    refused = post(
        web_client,
        "/api/v1/payments/holds/",
        {
            "source": "gift_card",
            "code": code,
            "amount": "10.01",
            "currency": "EUR",
            "reference": "CART-9",
        },
        "w1",
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "insufficient_balance")
    # when the till captures 32.50, twice (a retry)
    url = f"/api/v1/payments/holds/{held.json()['id']}/capture/"
    captured = post(till, url, {"amount": "32.50"}, "c1")
    again = post(till, url, {"amount": "32.50"}, "c1")
    assert captured.status_code == 200 and again.json() == captured.json()
    assert captured.json()["captured_amount"] == "32.50"
    assert balances(card) == (D("17.50"), D("0.00"))
    # and a release after capture is refused
    release = post(till, f"/api/v1/payments/holds/{held.json()['id']}/release/", {}, "r1")
    assert (release.status_code, release.json()["code"]) == (409, "hold_not_open")


def test_store_credit_held_at_the_till_and_released(api_client_factory):
    customer = CustomerFactory()
    sv.wallet_credit(
        customer=customer,
        amount="20.00",
        currency="EUR",
        idempotency_key="c",
        channel="web",
        actor="t",
    )
    till = api_client_factory(channel="store", scopes=["payments:write"])
    held = post(
        till,
        "/api/v1/payments/holds/",
        {
            "source": "store_credit",
            "customer": customer.number,
            "amount": "20.00",
            "currency": "EUR",
            "reference": "TICKET-2",
            "expires_in_seconds": 600,
        },
        "h",
    )
    assert held.status_code == 201
    wallet = sv.wallet_for(customer=customer, currency="EUR")
    assert balances(wallet) == (D("20.00"), D("20.00"))
    released = post(till, f"/api/v1/payments/holds/{held.json()['id']}/release/", {}, "r")
    assert released.json()["status"] == "released"
    assert balances(wallet) == (D("20.00"), D("0.00"))


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"amount": "5.00", "currency": "GBP"}, 400, "currency_mismatch"),
        ({"amount": "-5.00"}, 400, "invalid_amount"),
        ({"amount": "5.123"}, 400, "invalid"),
        ({"amount": 5.5}, 400, "invalid"),
        ({"amount": "5.00", "code": None}, 400, "invalid"),
    ],
)
def test_bad_holds_are_refused_and_nothing_is_held(web_client, body, status, error):
    card, code = issue("50.00")
    payload = {"source": "gift_card", "code": code, "currency": "EUR", "reference": "X", **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    before = snapshot_payments()
    response = post(web_client, "/api/v1/payments/holds/", payload)
    assert (response.status_code, response.json()["code"]) == (status, error)
    assert snapshot_payments() == before
    missing = post(web_client, "/api/v1/payments/holds/not-a-hold/capture/", {}, "x")
    assert (missing.status_code, missing.json()["code"]) == (404, "hold_not_found")


def test_a_till_sells_a_gift_card_and_a_retry_gets_the_same_card(api_client_factory):
    till = api_client_factory(channel="store", scopes=["gift_cards:issue", "payments:read"])
    body = {"amount": "50.00", "currency": "EUR", "reference": "R-PARIS-123"}

    sold = till.post(
        "/api/v1/payments/gift-cards/", body, format="json", HTTP_IDEMPOTENCY_KEY="sale-1"
    )
    again = till.post(
        "/api/v1/payments/gift-cards/", body, format="json", HTTP_IDEMPOTENCY_KEY="sale-1"
    )

    assert sold.status_code == 201 and again.json() == sold.json()
    assert sold.json()["balance"] == "50.00"  # the sale's answer says what the card holds
    balance = till.post(
        "/api/v1/payments/gift-cards/balance/", {"code": sold.json()["code"]}, format="json"
    )
    assert balance.json()["balance"] == "50.00"
    from payments.models import GiftCard

    assert GiftCard.objects.count() == 1


def test_selling_gift_cards_needs_its_own_scope(api_client_factory):
    web = api_client_factory(scopes=["payments:write"])
    response = web.post(
        "/api/v1/payments/gift-cards/",
        {"amount": "50.00", "currency": "EUR", "reference": "x"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="s",
    )
    assert response.status_code == 403


def test_gift_card_balance_checks_are_rate_limited_per_api_key(api_client_factory, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"gift_card_balance": "3/min"},
    }
    guesser = api_client_factory(scopes=["payments:read"])
    other = api_client_factory(scopes=["payments:read"])

    statuses = [
        guesser.post(
            "/api/v1/payments/gift-cards/balance/", {"code": "0000-0000-0000-0000"}, format="json"
        ).status_code
        for _ in range(4)
    ]

    assert 429 not in statuses[:3] and statuses[3] == 429
    assert (
        other.post(
            "/api/v1/payments/gift-cards/balance/", {"code": "0000-0000-0000-0000"}, format="json"
        ).status_code
        != 429
    )


def test_a_storefront_key_cannot_read_pay_or_refund_another_channel_s_order(api_client_factory):
    # given an order placed in the web shop and paid at the till, and the app's storefront key
    order = make_order(total="40.00")
    till = api_client_factory(channel="store", scopes=["payments:write"])
    assert post(till, tenders_url(order), {"kind": "till", "amount": "40.00", "currency": "EUR"})
    app = api_client_factory(channel="app")  # every scope, but the app channel's orders only
    before = snapshot_payments()

    read = app.get(f"/api/v1/payments/orders/{order.reference}/")
    pay = post(app, tenders_url(order), {"kind": "till", "amount": "1.00", "currency": "EUR"})
    refund = post(
        app,
        f"/api/v1/payments/orders/{order.reference}/refunds/",
        {"amount": "40.00", "currency": "EUR", "to_store_credit": True},
        "refund-1",
    )

    # then it is told the order does not exist, as the orders API tells it, and nothing moved
    for response in (read, pay, refund):
        assert (response.status_code, response.json()["code"]) == (404, "order_not_payable")
    assert snapshot_payments() == before
    # while the web shop's own key sees it
    web = api_client_factory(channel="web", scopes=["payments:read"])
    assert web.get(f"/api/v1/payments/orders/{order.reference}/").status_code == 200


def test_refunds_need_their_own_scope(api_client_factory):
    order = make_order(total="40.00")
    shop = api_client_factory(channel="web", scopes=["payments:read", "payments:write"])
    before = snapshot_payments()

    response = post(
        shop,
        f"/api/v1/payments/orders/{order.reference}/refunds/",
        {"amount": "10.00", "currency": "EUR", "to_store_credit": True},
    )

    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert snapshot_payments() == before

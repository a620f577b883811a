"""Tenders through the sandbox provider end to end (signed webhooks processed in-process), gift
card and store credit tenders, capture at hand-over, release on cancel, refunds."""

import json
from decimal import Decimal

import pytest
from django.utils import timezone

from common.money import CurrencyMismatch
from common.signing import SignatureInvalid, signature_header
from payments import selectors
from payments.exceptions import (
    GiftCardBlocked,
    InsufficientBalance,
    OrderClosed,
    RefundExceedsCaptured,
    TenderExceedsDue,
)
from payments.models import (
    HoldStatus,
    ProviderEvent,
    SandboxIntent,
    Tender,
    TenderStatus,
)
from payments.orders_port import PayableOrder
from payments.providers.base import ProviderError
from payments.providers.sandbox import SIGNATURE_HEADER
from payments.services import stored_value as sv
from payments.services import tenders
from payments.services.webhooks import provider_webhook_receive
from tests.customers.factories import CustomerFactory
from tests.payments.conftest import D, balances, issue, key, snapshot_payments

pytestmark = pytest.mark.django_db


@pytest.fixture
def order():
    customer = CustomerFactory()
    return PayableOrder(
        reference="W-PAY1",
        currency="EUR",
        total=D("100.00"),
        customer_id=customer.pk,
        channel="web",
    )


@pytest.fixture
def run_webhooks(django_capture_on_commit_callbacks):
    """Provider calls commit before their webhooks leave: run those callbacks (and the ones they
    schedule) as the real flow would."""

    class Runner:
        def __enter__(self):
            self._ctx = django_capture_on_commit_callbacks(execute=True)
            return self._ctx.__enter__()

        def __exit__(self, *exc):
            return self._ctx.__exit__(*exc)

    return Runner


def card(order, amount, token="tok_visa", **kwargs):
    return tenders.tender_add_card(
        order=order,
        token=token,
        amount=amount,
        idempotency_key=kwargs.pop("k", key("card")),
        channel="web",
        actor="t",
        **kwargs,
    )


def refreshed(tender):
    return Tender.objects.get(pk=tender.pk)


# ---- card through the sandbox ------------------------------------------------------------------


def test_card_authorised_by_webhook_then_captured_at_pickup(order, run_webhooks):
    # given a card tender for the whole order, authorised asynchronously
    with run_webhooks():
        tender = card(order, "100.00")
    tender = refreshed(tender)
    assert tender.status == TenderStatus.AUTHORISED and tender.amount_authorised == D("100.00")
    assert tender.provider == "sandbox" and tender.provider_reference.startswith("sbx_pi_")
    summary = selectors.order_payment_summary(order_reference=order.reference)
    assert (summary.due, summary.authorised, summary.paid) == (D("0"), D("100.00"), D("0"))
    # when the shopper takes 80 worth of lines at pickup
    with run_webhooks():
        tenders.order_payment_capture(
            order_reference=order.reference, amount="80.00", actor="till", channel="store"
        )
    # then only 80 is captured, by the provider too, and the event log tells the story
    tender = refreshed(tender)
    assert (tender.status, tender.amount_captured) == (TenderStatus.CAPTURED, D("80.00"))
    assert SandboxIntent.objects.get().amount_captured == D("80.00")
    assert list(tender.events.values_list("kind", flat=True)) == [
        "authorisation_requested",
        "authorisation_accepted",
        "authorised",
        "capture_requested",
        "captured",
    ]
    assert ProviderEvent.objects.filter(processed_at__isnull=False).count() == 2


def test_a_declined_card_fails_and_no_longer_covers_the_order(order, run_webhooks):
    with run_webhooks():
        tender = card(order, "100.00", token="tok_decline")
    tender = refreshed(tender)
    assert (tender.status, tender.failure_code) == (TenderStatus.FAILED, "card_declined")
    assert selectors.order_payment_summary(order_reference=order.reference).due == D("100.00")


def test_an_unknown_token_is_refused_synchronously_and_nothing_stays_covered(order):
    with pytest.raises(ProviderError):
        card(order, "10.00", token="4242424242424242")
    assert Tender.objects.get().status == TenderStatus.FAILED
    assert selectors.order_payment_summary(order_reference=order.reference).due == D("100.00")


def test_an_expired_authorisation_cannot_be_captured_and_the_order_falls_back_to_the_till(
    order, run_webhooks, settings
):
    # given a short authorisation that lapsed before pickup
    settings.PAYMENT_SANDBOX_FAST_EXPIRY_SECONDS = 1
    with run_webhooks():
        tender = card(order, "100.00", token="tok_expire_fast")
    SandboxIntent.objects.update(expires_at=timezone.now())
    # when the till tries to capture
    with run_webhooks():
        tenders.order_payment_capture(order_reference=order.reference, actor="t", channel="store")
    # then the tender expired, the order is due again, and the till can settle it
    assert refreshed(tender).status == TenderStatus.EXPIRED
    assert selectors.order_payment_summary(order_reference=order.reference).due == D("100.00")
    till = tenders.tender_add_till(
        order=order,
        amount="100.00",
        idempotency_key="till-1",
        channel="store",
        actor="pos",
        till_reference="TICKET-77",
    )
    assert (till.status, till.amount_captured) == (TenderStatus.CAPTURED, D("100.00"))


def test_release_voids_the_card_and_the_shopper_pays_nothing(order, run_webhooks):
    card_, _ = issue("30.00")
    with run_webhooks():
        gift = tenders.tender_add_gift_card(
            order=order, code=_, amount="30.00", idempotency_key="g1", channel="web", actor="t"
        )
        tender = card(order, "70.00")
    with run_webhooks():
        tenders.order_payment_release(order_reference=order.reference, actor="expiry")
        tenders.order_payment_release(order_reference=order.reference, actor="expiry")
    assert refreshed(tender).status == TenderStatus.VOIDED
    assert refreshed(gift).status == TenderStatus.VOIDED
    assert balances(card_) == (D("30.00"), D("0.00"))
    assert SandboxIntent.objects.get().status == "voided"
    assert selectors.order_payment_summary(order_reference=order.reference).paid == 0


# ---- webhooks ------------------------------------------------------------------------------------


def _signed(payload, secret="whsec_sandbox_dev", timestamp=None):
    body = json.dumps(payload).encode()
    return body, {SIGNATURE_HEADER: signature_header(secret, body, timestamp)}


def test_a_replayed_webhook_is_acknowledged_and_has_no_second_effect(order, run_webhooks):
    with run_webhooks():
        tender = card(order, "100.00")
    with run_webhooks():
        tenders.order_payment_capture(
            order_reference=order.reference, amount="40.00", actor="t", channel="store"
        )
    stored = ProviderEvent.objects.get(event_type="capture.succeeded")
    body, headers = _signed(stored.payload)
    before = snapshot_payments()
    with run_webhooks():
        event, duplicate = provider_webhook_receive(
            provider_name="sandbox", headers=headers, body=body
        )
    assert duplicate and event == stored
    assert snapshot_payments() == before
    assert refreshed(tender).amount_captured == D("40.00")


@pytest.mark.parametrize(
    "tamper",
    ["wrong_secret", "stale", "body_changed", "missing"],
)
def test_a_badly_signed_webhook_is_refused_and_nothing_changes(order, run_webhooks, tamper):
    with run_webhooks():
        card(order, "100.00")
    stored = ProviderEvent.objects.get()
    forged = {**stored.payload, "id": "evt_forged", "type": "payment.captured"}
    body, headers = _signed(
        forged,
        secret="nope" if tamper == "wrong_secret" else "whsec_sandbox_dev",
        timestamp=int(timezone.now().timestamp()) - 3600 if tamper == "stale" else None,
    )
    if tamper == "body_changed":
        body = body.replace(b'"100.00"', b'"1.00"')
    if tamper == "missing":
        headers = {}
    before = snapshot_payments()
    with pytest.raises(SignatureInvalid):
        provider_webhook_receive(provider_name="sandbox", headers=headers, body=body)
    assert snapshot_payments() == before


# ---- stored value tenders ----------------------------------------------------------------------


def test_split_bill_card_gift_card_and_store_credit(order, run_webhooks):
    # given a gift card of 30 and store credit of 25
    gift_card, code = issue("30.00")
    from customers.models import Customer

    customer = Customer.objects.get(pk=order.customer_id)
    sv.wallet_credit(
        customer=customer,
        amount="25.00",
        currency="EUR",
        idempotency_key="sc",
        channel="store",
        actor="t",
    )
    # when the order is split: 30 gift card, 20 store credit, 50 card
    with run_webhooks():
        tenders.tender_add_gift_card(
            order=order, code=code, amount="30.00", idempotency_key="g", channel="web", actor="t"
        )
        tenders.tender_add_store_credit(
            order=order, amount="20.00", idempotency_key="s", channel="web", actor="t"
        )
        card(order, "50.00")
    # then nothing is due; more is refused
    assert selectors.order_payment_summary(order_reference=order.reference).due == 0
    before = snapshot_payments()
    with pytest.raises(TenderExceedsDue):
        tenders.tender_add_store_credit(
            order=order, amount="0.01", idempotency_key="s2", channel="web", actor="t"
        )
    assert snapshot_payments() == before
    # when everything is captured at hand-over
    with run_webhooks():
        tenders.order_payment_capture(order_reference=order.reference, actor="t", channel="store")
    summary = selectors.order_payment_summary(order_reference=order.reference)
    assert (summary.paid, summary.due) == (D("100.00"), 0)
    assert balances(gift_card) == (D("0.00"), D("0.00"))
    assert balances(sv.wallet_for(customer=customer, currency="EUR")) == (D("5.00"), D("0.00"))
    # and capturing again (the till retries) charges nothing twice
    with run_webhooks():
        assert (
            tenders.order_payment_capture(
                order_reference=order.reference, actor="t", channel="store"
            )
            == []
        )
    assert balances(gift_card) == (D("0.00"), D("0.00"))
    assert selectors.ledger_mismatches() == []


def test_partial_pickup_captures_stored_value_first_and_releases_the_rest(order, run_webhooks):
    gift_card, code = issue("60.00")
    with run_webhooks():
        gift = tenders.tender_add_gift_card(
            order=order, code=code, amount="60.00", idempotency_key="g", channel="web", actor="t"
        )
        tender = card(order, "40.00")
    with run_webhooks():
        tenders.order_payment_capture(
            order_reference=order.reference, amount="50.00", actor="t", channel="store"
        )
    assert refreshed(gift).amount_captured == D("50.00")
    assert refreshed(tender).status == TenderStatus.VOIDED
    assert balances(gift_card) == (D("10.00"), D("0.00"))
    assert gift.gift_card_hold.__class__.objects.get().status == HoldStatus.CAPTURED
    # the orders app cancels the refused lines: nothing is due for them
    tenders.order_payment_sync(order=PayableOrder(**{**order.__dict__, "total": D("50.00")}))
    summary = selectors.order_payment_summary(order_reference=order.reference)
    assert (summary.total, summary.paid, summary.due) == (D("50.00"), D("50.00"), 0)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"amount": "0"}, Exception),
        ({"amount": "-1"}, Exception),
        ({"amount": "1.001"}, Exception),
        ({"amount": "10.00", "currency": "GBP"}, CurrencyMismatch),
        ({"amount": "100.01"}, TenderExceedsDue),
    ],
)
def test_bad_tenders_are_refused_and_no_money_moves(order, kwargs, error):
    gift_card, code = issue("500.00")
    before = snapshot_payments()
    with pytest.raises(error):
        tenders.tender_add_gift_card(
            order=order, code=code, idempotency_key=key(), channel="web", actor="t", **kwargs
        )
    assert snapshot_payments() == before


def test_blocked_card_short_balance_and_closed_order_are_refused(order):
    blocked, blocked_code = issue("50.00")
    sv.gift_card_block(card=blocked, actor="t", reason="lost")
    _, small_code = issue("5.00")
    before = snapshot_payments()
    with pytest.raises(GiftCardBlocked):
        tenders.tender_add_gift_card(
            order=order,
            code=blocked_code,
            amount="10.00",
            idempotency_key=key(),
            channel="web",
            actor="t",
        )
    with pytest.raises(InsufficientBalance):
        tenders.tender_add_gift_card(
            order=order,
            code=small_code,
            amount="10.00",
            idempotency_key=key(),
            channel="web",
            actor="t",
        )
    closed = PayableOrder(**{**order.__dict__, "is_open": False})
    with pytest.raises(OrderClosed):
        tenders.tender_add_gift_card(
            order=closed,
            code=small_code,
            amount="1.00",
            idempotency_key=key(),
            channel="web",
            actor="t",
        )
    assert snapshot_payments() == before


# ---- refunds -----------------------------------------------------------------------------------


def _paid_order(order, run_webhooks):
    gift_card, code = issue("30.00")
    from customers.models import Customer

    customer = Customer.objects.get(pk=order.customer_id)
    sv.wallet_credit(
        customer=customer,
        amount="20.00",
        currency="EUR",
        idempotency_key="sc0",
        channel="web",
        actor="t",
    )
    with run_webhooks():
        tenders.tender_add_gift_card(
            order=order, code=code, amount="30.00", idempotency_key="g", channel="web", actor="t"
        )
        tenders.tender_add_store_credit(
            order=order, amount="20.00", idempotency_key="s", channel="web", actor="t"
        )
        card(order, "50.00")
    with run_webhooks():  # the authorisation came in; later, the order is handed over
        tenders.order_payment_capture(order_reference=order.reference, actor="t", channel="store")
    return gift_card, sv.wallet_for(customer=customer, currency="EUR"), customer


def test_refunds_go_back_to_the_card_first_and_store_credit_last(order, run_webhooks):
    gift_card, wallet, _ = _paid_order(order, run_webhooks)
    # when a return in a store refunds 85
    with run_webhooks():
        lines = tenders.order_payment_refund(
            order_reference=order.reference,
            amount="85.00",
            idempotency_key="ret-1",
            channel="store",
            actor="t",
        )
    # then 50 to the card, 30 to the gift card, 5 to store credit
    assert [(line["kind"], line["amount"]) for line in lines] == [
        ("card", "50.00"),
        ("gift_card", "30.00"),
        ("store_credit", "5.00"),
    ]
    assert SandboxIntent.objects.get().amount_refunded == D("50.00")
    assert balances(gift_card) == (D("30.00"), D("0.00"))
    assert balances(wallet) == (D("5.00"), D("0.00"))
    # a retry refunds nothing more; more than what is left is refused
    with run_webhooks():
        again = tenders.order_payment_refund(
            order_reference=order.reference,
            amount="85.00",
            idempotency_key="ret-1",
            channel="store",
            actor="t",
        )
    assert again == lines
    before = snapshot_payments()
    with pytest.raises(RefundExceedsCaptured):
        tenders.order_payment_refund(
            order_reference=order.reference,
            amount="15.01",
            idempotency_key="ret-2",
            channel="store",
            actor="t",
        )
    assert snapshot_payments() == before
    assert selectors.ledger_mismatches() == []


def test_a_refund_may_be_taken_as_store_credit_and_the_rule_is_configurable(
    order, run_webhooks, settings
):
    settings.PAYMENTS_REFUND_ORDER = ["store_credit", "gift_card", "card"]
    gift_card, wallet, customer = _paid_order(order, run_webhooks)
    with run_webhooks():
        lines = tenders.order_payment_refund(
            order_reference=order.reference,
            amount="25.00",
            idempotency_key="r",
            channel="web",
            actor="t",
            customer=customer,
            to_store_credit=True,
        )
    assert [(line["kind"], line["amount"]) for line in lines] == [
        ("store_credit", "20.00"),
        ("gift_card", "5.00"),
    ]
    assert balances(wallet) == (D("25.00"), D("0.00"))  # 0 left + 25 credited
    assert balances(gift_card) == (D("0.00"), D("0.00"))
    assert SandboxIntent.objects.get().amount_refunded == 0
    assert Decimal(sum(t.amount_refunded for t in Tender.objects.all())) == D("25.00")


def test_a_lapsed_order_hold_expires_its_tender_and_the_order_is_due_again(order):
    # given a gift card tender whose hold lapsed (the order was never collected)
    gift_card, code = issue("30.00")
    tender = tenders.tender_add_gift_card(
        order=order, code=code, amount="30.00", idempotency_key="g", channel="web", actor="t"
    )
    assert tender.gift_card_hold.expires_at > timezone.now() + timezone.timedelta(days=13)
    type(tender.gift_card_hold).objects.update(expires_at=timezone.now())
    # when the expiry task runs
    assert sv.holds_expire() == 1
    # then the card is whole, the tender expired, the order due again, capture takes nothing
    assert balances(gift_card) == (D("30.00"), D("0.00"))
    assert refreshed(tender).status == TenderStatus.EXPIRED
    assert selectors.order_payment_summary(order_reference=order.reference).due == D("100.00")
    assert (
        tenders.order_payment_capture(order_reference=order.reference, actor="t", channel="store")
        == []
    )


# ---- click & collect: pay now, or authorise now and capture at pickup ---------------------------


def test_pay_now_captures_as_soon_as_the_authorisation_is_in(order, run_webhooks):
    with run_webhooks():
        tender = card(order, "100.00", capture_now=True)
    tender = refreshed(tender)
    assert (tender.status, tender.amount_captured) == (TenderStatus.CAPTURED, D("100.00"))
    assert SandboxIntent.objects.get().amount_captured == D("100.00")
    assert selectors.order_payment_summary(order_reference=order.reference).paid == D("100.00")


def _pickup_order(order, days=3):
    return PayableOrder(
        **{**order.__dict__, "pickup_deadline": timezone.now() + timezone.timedelta(days=days)}
    )


def test_an_authorisation_lapsing_before_the_pickup_deadline_is_extended(order, run_webhooks):
    # given a card authorised for 120 s on an order to collect within 3 days
    pickup = _pickup_order(order)
    with run_webhooks():
        tender = card(pickup, "100.00", token="tok_expire_fast")
    assert refreshed(tender).events.filter(kind="authorisation_expires_before_pickup").exists()
    # when the renewal task runs
    with run_webhooks():
        assert tenders.card_authorisations_renew() == {"extended": 1, "fallback_to_till": 0}
    # then the authorisation now outlives the deadline, and nothing more is asked
    tender = refreshed(tender)
    assert tender.status == TenderStatus.AUTHORISED
    assert tender.authorisation_expires_at > pickup.pickup_deadline
    assert tenders.card_authorisations_renew() == {"extended": 0, "fallback_to_till": 0}


def test_when_it_cannot_be_extended_the_till_takes_the_payment_at_pickup(order, run_webhooks):
    pickup = _pickup_order(order)
    with run_webhooks():
        tender = card(pickup, "100.00", token="tok_expire_fast_no_reauth")
    with run_webhooks():
        assert tenders.card_authorisations_renew() == {"extended": 0, "fallback_to_till": 1}
    tender = refreshed(tender)
    assert tender.status == TenderStatus.VOIDED
    assert tender.events.filter(kind="fallback_to_till").exists()
    assert SandboxIntent.objects.get().status == "voided"
    summary = selectors.order_payment_summary(order_reference=order.reference)
    assert (summary.due, summary.paid) == (D("100.00"), 0)
    till = tenders.tender_add_till(
        order=pickup, amount="100.00", idempotency_key="till", channel="store", actor="pos"
    )
    assert till.status == TenderStatus.CAPTURED


def test_an_authorisation_of_nothing_fails_the_tender(order, run_webhooks):
    # given a pending card tender (the order payment row exists)
    tenders.order_payment_sync(order=order)
    pending = Tender.objects.create(
        order_reference=order.reference,
        kind="card",
        currency="EUR",
        amount=D("5.00"),
        idempotency_key="manual",
        channel="web",
        provider="sandbox",
    )
    body, headers = _signed(
        {
            "id": "evt_zero",
            "type": "payment.authorised",
            "data": {
                "payment": "sbx_pi_x",
                "merchant_reference": f"tender-{pending.pk}",
                "amount": "0.00",
                "currency": "EUR",
            },
        }
    )
    with run_webhooks():
        provider_webhook_receive(provider_name="sandbox", headers=headers, body=body)
    pending.refresh_from_db()
    assert (pending.status, pending.failure_code) == (TenderStatus.FAILED, "authorised_nothing")

"""Gift cards and store credit: issue, hold → capture / release, refund, expiry, adjustments."""

from datetime import timedelta

import pytest
from django.utils import timezone

from common.exceptions import IdempotencyKeyReused, InvalidInput
from payments import codes, selectors
from payments.exceptions import (
    CaptureExceedsAuthorised,
    GiftCardBlocked,
    GiftCardExpired,
    GiftCardInvalidCode,
    GiftCardNotFound,
    HoldNotOpen,
    InsufficientBalance,
    InvalidAmount,
    RefundExceedsCaptured,
)
from payments.models import EntryKind, GiftCardEntry, GiftCardHold, HoldStatus
from payments.services import stored_value as sv
from payments.tasks import holds_expire_task
from tests.customers.factories import CustomerFactory
from tests.payments.conftest import D, balances, hold, issue, key, snapshot_payments

pytestmark = pytest.mark.django_db


# ---- codes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload_start", ["", "0Z", "Z0"])
def test_generated_codes_check_and_any_single_typo_or_swap_is_caught(payload_start):
    # given a generated code (also ones holding Luhn mod 32's one blind swap, 0 and Z)
    code = codes.generate()
    if payload_start:
        payload = payload_start + code[len(payload_start) : -1]
        code = payload + codes.check_character(payload)
    assert codes.normalise(code) == code
    assert codes.normalise(codes.display(code).lower()) == code  # dashes, case forgiven
    # when one character is mistyped, or two neighbours swapped
    for i in range(len(code)):
        for other in codes.ALPHABET:
            if other != code[i]:
                assert codes.normalise(code[:i] + other + code[i + 1 :]) is None
    for i in range(len(code) - 1):
        blind_spot = {code[i], code[i + 1]} == {"0", "Z"}
        if code[i] != code[i + 1]:
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
            assert (codes.normalise(swapped) is None) != blind_spot


def test_codes_are_random_and_not_stored():
    card, code = issue()
    assert len({codes.generate() for _ in range(1000)}) == 1000
    assert card.code_hash == codes.code_hash(code) and card.code_last4 == code[-4:]
    assert code not in repr(GiftCardEntry.objects.values_list())
    assert selectors.gift_card_by_code(code=codes.display(code)) == card


def test_a_mistyped_code_is_refused_before_lookup_and_an_unknown_one_is_not_found():
    # given a valid-looking code that no card has
    _, code = issue()
    other = codes.generate()
    with pytest.raises(GiftCardInvalidCode):
        selectors.gift_card_by_code(code=code[:-1] + ("0" if code[-1] != "0" else "1"))
    with pytest.raises(GiftCardNotFound):
        selectors.gift_card_by_code(code=other)


# ---- issue ---------------------------------------------------------------------------------------


def test_issue_writes_the_initial_balance_as_an_entry_and_is_idempotent():
    # when a card is issued twice with the same key
    first = sv.gift_card_issue(
        amount="25.50",
        currency="EUR",
        source="sold",
        channel="store",
        actor="t",
        idempotency_key="sale-1",
    )
    again = sv.gift_card_issue(
        amount="25.50",
        currency="EUR",
        source="sold",
        channel="store",
        actor="t",
        idempotency_key="sale-1",
    )
    # then one card exists, its balance is its one entry, and the replay does not reveal the code
    assert again.card == first.card and again.code is None and first.code
    assert balances(first.card) == (D("25.50"), D("0"))
    assert list(first.card.entries.values_list("kind", "amount")) == [("issue", D("25.50"))]
    with pytest.raises(IdempotencyKeyReused):
        sv.gift_card_issue(
            amount="30",
            currency="EUR",
            source="sold",
            channel="store",
            actor="t",
            idempotency_key="sale-1",
        )


@pytest.mark.parametrize(
    ("amount", "currency", "error"),
    [
        ("0", "EUR", InvalidAmount),
        ("-5", "EUR", InvalidAmount),
        ("10.001", "EUR", InvalidInput),
        (10.5, "EUR", InvalidInput),
        ("10.5", "JPY", InvalidInput),
        ("10", "XXX", InvalidInput),
        ("abc", "EUR", InvalidInput),
    ],
)
def test_bad_amounts_are_refused_and_nothing_is_written(amount, currency, error):
    before = snapshot_payments()
    with pytest.raises(error):
        sv.gift_card_issue(
            amount=amount,
            currency=currency,
            source="sold",
            channel="web",
            actor="t",
            idempotency_key=key(),
        )
    assert snapshot_payments() == before


# ---- hold → capture / release --------------------------------------------------------------------


def test_a_hold_sets_money_aside_and_a_partial_capture_gives_the_rest_back():
    # given a card of 50 with 30 held for a till ticket
    card, _ = issue("50.00")
    h = hold(card, "30.00", channel="store", reference="TICKET-9")
    assert balances(card) == (D("50.00"), D("30.00"))
    # when only 12.40 is captured
    captured = sv.hold_capture(hold=h, amount="12.40")
    # then 12.40 is spent, the rest is free again, and the ledger says so
    assert captured.status == HoldStatus.CAPTURED and captured.captured_amount == D("12.40")
    assert balances(card) == (D("37.60"), D("0.00"))
    assert list(card.entries.order_by("pk").values_list("kind", "amount", "balance_after")) == [
        ("issue", D("50.00"), D("50.00")),
        ("capture", D("-12.40"), D("37.60")),
    ]
    assert selectors.ledger_mismatches() == []


def test_held_money_cannot_be_spent_elsewhere():
    # given 40 of a 50 card held online
    card, _ = issue("50.00")
    hold(card, "40.00")
    before = snapshot_payments()
    # when the till tries to hold 20
    with pytest.raises(InsufficientBalance) as exc:
        hold(card, "20.00", channel="store")
    # then it is refused with what is available, and nothing changed
    assert exc.value.details == {"available": "10.00", "requested": "20.00"}
    assert snapshot_payments() == before


def test_capture_is_idempotent_and_a_closed_hold_cannot_be_reopened():
    card, _ = issue("50.00")
    h = hold(card, "20.00")
    sv.hold_capture(hold=h)
    sv.hold_capture(hold=h)  # a retry
    assert balances(card) == (D("30.00"), D("0.00"))
    assert card.entries.filter(kind=EntryKind.CAPTURE).count() == 1
    before = snapshot_payments()
    with pytest.raises(HoldNotOpen):
        sv.hold_release(hold=h)
    with pytest.raises(HoldNotOpen):
        sv.hold_capture(hold=h, amount="5.00")
    assert snapshot_payments() == before


def test_capture_beyond_the_hold_is_refused():
    card, _ = issue("50.00")
    h = hold(card, "20.00")
    before = snapshot_payments()
    with pytest.raises(CaptureExceedsAuthorised):
        sv.hold_capture(hold=h, amount="20.01")
    assert snapshot_payments() == before


def test_release_gives_the_money_back_and_is_idempotent():
    card, _ = issue("50.00")
    h = hold(card, "20.00")
    sv.hold_release(hold=h)
    sv.hold_release(hold=h)
    assert balances(card) == (D("50.00"), D("0.00"))
    assert card.entries.count() == 1  # holds and releases are not balance changes


def test_hold_replay_returns_the_same_hold_and_another_amount_is_refused():
    card, _ = issue("50.00")
    first = hold(card, "20.00", idempotency_key="cart-1")
    assert hold(card, "20.00", idempotency_key="cart-1") == first
    assert balances(card) == (D("50.00"), D("20.00"))
    with pytest.raises(IdempotencyKeyReused):
        hold(card, "25.00", idempotency_key="cart-1")


def test_blocked_and_expired_cards_cannot_be_held():
    # given a blocked card and an expired one
    blocked, _ = issue("50.00")
    sv.gift_card_block(card=blocked, actor="staff:a", reason="reported stolen")
    expired, _ = issue("50.00", expires_at=timezone.now() + timedelta(seconds=1))
    type(expired).objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    before = snapshot_payments()
    # when either is held: refused with the right reason, nothing held
    with pytest.raises(GiftCardBlocked):
        hold(blocked, "1.00")
    with pytest.raises(GiftCardExpired):
        hold(expired, "1.00")
    assert snapshot_payments() == before
    # an unblocked card works again
    sv.gift_card_unblock(card=blocked, actor="staff:a")
    hold(blocked, "1.00")


@pytest.mark.parametrize("amount", ["0", "-1.00", "10.001", 10.0, "NaN", "1e3x"])
def test_bad_hold_amounts_are_refused_and_nothing_is_held(amount):
    card, _ = issue("50.00", currency="EUR")
    before = snapshot_payments()
    with pytest.raises(InvalidInput):
        hold(card, amount)
    assert snapshot_payments() == before


def test_expired_holds_are_released_by_the_periodic_task_but_not_captured_ones():
    # given three holds: one past its expiry, one captured after its expiry time, one still valid
    card, _ = issue("100.00")
    stale = hold(card, "10.00")
    captured = hold(card, "20.00")
    fresh = hold(card, "30.00")
    past = timezone.now() - timedelta(minutes=1)
    GiftCardHold.objects.filter(pk__in=[stale.pk, captured.pk]).update(expires_at=past)
    sv.hold_capture(hold=captured)
    # when the expiry task runs (twice: it is safe to run again)
    assert holds_expire_task.delay().get() == 1
    assert sv.holds_expire() == 0
    # then only the stale hold was released
    statuses = dict(GiftCardHold.objects.values_list("pk", "status"))
    assert statuses == {stale.pk: "expired", captured.pk: "captured", fresh.pk: "open"}
    assert balances(card) == (D("80.00"), D("30.00"))
    with pytest.raises(HoldNotOpen):
        sv.hold_capture(hold=stale)
    assert selectors.ledger_mismatches() == []


# ---- refunds and adjustments ---------------------------------------------------------------------


def test_refunds_are_capped_at_what_the_hold_captured():
    # given 30 captured from a card
    card, _ = issue("50.00")
    h = sv.hold_capture(hold=hold(card, "30.00"))
    # when 20 then 10 are refunded, then 0.01 more
    sv.hold_refund(hold=h, amount="20.00", idempotency_key="r1", channel="store", actor="t")
    sv.hold_refund(hold=h, amount="20.00", idempotency_key="r1", channel="store", actor="t")
    sv.hold_refund(hold=h, amount="10.00", idempotency_key="r2", channel="store", actor="t")
    before = snapshot_payments()
    with pytest.raises(RefundExceedsCaptured):
        sv.hold_refund(hold=h, amount="0.01", idempotency_key="r3", channel="web", actor="t")
    # then the card is whole again and the third refund changed nothing
    assert snapshot_payments() == before
    assert balances(card) == (D("50.00"), D("0.00"))
    h.refresh_from_db()
    assert h.refunded_amount == D("30.00")


def test_an_open_hold_cannot_be_refunded():
    card, _ = issue("50.00")
    h = hold(card, "30.00")
    with pytest.raises(RefundExceedsCaptured):
        sv.hold_refund(hold=h, amount="1.00", idempotency_key="r", channel="web", actor="t")


def test_adjustments_need_a_reason_and_cannot_take_held_money():
    card, _ = issue("50.00")
    hold(card, "45.00")
    before = snapshot_payments()
    with pytest.raises(InvalidInput):
        sv.balance_adjust(account=card, amount="-1", reason=" ", actor="a", idempotency_key="a1")
    with pytest.raises(InsufficientBalance):
        sv.balance_adjust(
            account=card, amount="-5.01", reason="fraud", actor="a", idempotency_key="a2"
        )
    assert snapshot_payments() == before
    sv.balance_adjust(account=card, amount="-5.00", reason="fraud", actor="a", idempotency_key="a3")
    sv.balance_adjust(
        account=card, amount="2.50", reason="goodwill", actor="a", idempotency_key="a4"
    )
    assert balances(card) == (D("47.50"), D("45.00"))
    assert selectors.ledger_mismatches() == []


# ---- store credit --------------------------------------------------------------------------------


def test_store_credit_earned_online_is_spent_at_the_till():
    # given a refund taken online as store credit
    customer = CustomerFactory()
    sv.wallet_credit(
        customer=customer,
        amount="15.00",
        currency="EUR",
        idempotency_key="refund-W1",
        channel="web",
        actor="t",
        reference="W1",
    )
    wallet = sv.wallet_for(customer=customer, currency="EUR")
    # when the till holds then captures 12
    h = hold(wallet, "12.00", channel="store", reference="TICKET-1")
    sv.hold_capture(hold=h)
    # then 3 remain, in one wallet per currency
    assert balances(wallet) == (D("3.00"), D("0.00"))
    assert [w.pk for w in selectors.wallets_for_customer(customer=customer)] == [wallet.pk]
    assert selectors.ledger_mismatches() == []


def test_the_ledger_check_finds_a_tampered_balance():
    card, _ = issue("50.00")
    type(card).objects.filter(pk=card.pk).update(balance=D("60.00"))
    assert [m["account"] for m in selectors.ledger_mismatches()] == [card.pk]

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from common.exceptions import IdempotencyKeyReused
from customers import services as customer_services
from customers.exceptions import ErasureBlocked
from customers.models import CustomerIdentifier
from customers.selectors import customer_resolve_one
from loyalty import selectors, services
from loyalty.exceptions import (
    InsufficientPoints,
    InvalidPoints,
    RefundExceedsSpent,
    ReturnExceedsPurchase,
    SpendNotHeld,
)
from loyalty.models import (
    EarningRule,
    LotKind,
    PointsLot,
    PointsMovement,
    PointsOperation,
    PointsSpend,
    SpendStatus,
    TierChange,
)
from loyalty.services import ReturnedLine
from tests.customers.factories import CustomerFactory
from tests.factories import LocationFactory
from tests.loyalty.factories import (
    AccountFactory,
    ProgramSettingsFactory,
    TierFactory,
    earn,
    line,
    spendable_earn,
)

pytestmark = pytest.mark.django_db


def ledger_state():
    """Everything a refused call must leave unchanged."""
    return (
        list(PointsLot.objects.order_by("pk").values_list("pk", "remaining")),
        PointsMovement.objects.count(),
        PointsOperation.objects.count(),
        list(PointsSpend.objects.order_by("pk").values_list("pk", "status", "captured_points")),
    )


def summary(account):
    account.refresh_from_db()
    return selectors.points_summary(account=account)


# ---- accounts ------------------------------------------------------------------------------------


def test_opening_an_account_attaches_the_card_as_a_loyalty_card_identifier():
    # given a customer
    customer = CustomerFactory()
    # when they enrol at the till
    account = services.account_open(customer=customer, channel="store", actor="test")
    # then the card number resolves to the customer, and enrolling again returns the same account
    assert customer_resolve_one(kind="loyalty_card", value=account.card_number) == customer
    assert len(account.card_number) == 16
    assert services.account_open(customer=customer, channel="web", actor="test") == account
    assert CustomerIdentifier.objects.filter(customer=customer, kind="loyalty_card").count() == 1


# ---- earning -------------------------------------------------------------------------------------


def test_an_earn_is_a_pending_lot_that_becomes_spendable_after_the_return_window():
    # given a programme with a 30-day return window and 1 point per euro
    ProgramSettingsFactory(pending_days=30, validity_days=365)
    account = AccountFactory()
    # when a 120.50 € order is collected now
    lot = earn(account.customer, "120.50")
    # then 120 points are pending, not spendable, and expire a year after they become spendable
    assert (lot.amount, lot.remaining, lot.kind) == (120, 120, LotKind.EARN)
    assert lot.available_at - lot.earned_at == timedelta(days=30)
    assert lot.expires_at - lot.available_at == timedelta(days=365)
    assert summary(account) == {"available": 0, "pending": 120, "held": 0}
    assert selectors.points_summary(account=account, at=lot.available_at) == {
        "available": 120,
        "pending": 0,
        "held": 0,
    }
    assert selectors.ledger_mismatches() == []


def test_a_source_earns_once_even_when_retried_or_reconfirmed_with_other_lines():
    # given an account and an order that earned points
    account = AccountFactory()
    first = earn(account.customer, "50.00", ref="W1")
    # when the POS event is retried, and the order re-confirmed with different lines
    again = earn(account.customer, "50.00", ref="W1")
    with pytest.raises(IdempotencyKeyReused):
        earn(account.customer, "80.00", ref="W1")
    # then one lot only
    assert again == first
    assert PointsLot.objects.filter(source_ref="W1").count() == 1
    assert summary(account)["pending"] == 50


def test_rules_multiply_by_tier_category_sku_channel_and_add_campaign_bonus():
    # given 1 pt/€, a gold customer (×2), double points on shoes, ×1.5 in store, and a weekend
    # campaign giving 100 bonus points; one SKU is excluded
    ProgramSettingsFactory(points_per_unit=Decimal("1"))
    gold = TierFactory(code="gold", threshold_points=0, multiplier=Decimal("2"))
    account = AccountFactory(tier=gold)
    now = timezone.now()
    EarningRule.objects.create(name="shoes", scope="category", value="shoes", multiplier=2)
    EarningRule.objects.create(name="shoes+", scope="category", value="shoes", multiplier=3)
    EarningRule.objects.create(name="store", scope="channel", value="store", multiplier="1.5")
    EarningRule.objects.create(name="gift", scope="excluded_sku", value="GIFTCARD")
    EarningRule.objects.create(
        name="weekend",
        scope="all",
        multiplier=1,
        bonus_points=100,
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=1),
    )
    EarningRule.objects.create(
        name="past", scope="all", multiplier=10, ends_at=now - timedelta(days=1)
    )
    # when a store receipt has shoes (10 €), a shirt (10 €) and a gift card (50 €)
    lot = earn(
        account.customer,
        channel="store",
        source_type="store_receipt",
        lines=[
            line("10.00", ref="1", sku="SHOE", category="shoes"),
            line("10.00", ref="2", sku="SHIRT", category="tops"),
            line("50.00", ref="3", sku="GIFTCARD", category="gifts"),
        ],
    )
    # then shoes: 10 × 2 (tier) × 3 (best shoes rule) × 1.5 = 90; shirt: 10 × 2 × 1.5 = 30;
    # gift card: 0; plus the 100 bonus points once
    assert list(lot.lines.order_by("line_ref").values_list("points", flat=True)) == [90, 30, 0]
    assert lot.amount == 220


def test_a_purchase_under_the_minimum_order_value_earns_nothing():
    # given a 20 € minimum
    ProgramSettingsFactory(min_order_value=Decimal("20.00"))
    account = AccountFactory()
    # when a 19.99 € receipt arrives
    lot = earn(account.customer, "19.99")
    # then no lot
    assert lot is None
    assert summary(account) == {"available": 0, "pending": 0, "held": 0}


def test_a_customer_without_an_account_earns_nothing_and_nothing_fails():
    customer = CustomerFactory()
    assert earn(customer, "100.00") is None
    assert PointsLot.objects.count() == 0


# ---- spending ------------------------------------------------------------------------------------


def test_spending_takes_the_soonest_expiring_lots_first_and_records_each_lot():
    # given two spendable lots, the newer one expiring sooner (shorter validity then)
    ProgramSettingsFactory(validity_days=365)
    account = AccountFactory()
    late = spendable_earn(account.customer, "100.00")
    PointsLot.objects.filter(pk=late.pk).update(expires_at=timezone.now() + timedelta(days=300))
    soon = spendable_earn(account.customer, "50.00")
    PointsLot.objects.filter(pk=soon.pk).update(expires_at=timezone.now() + timedelta(days=10))
    # when 70 points are held and captured
    spend = services.points_hold(
        customer=account.customer, points=70, reference="W9", channel="web", idempotency_key="h1"
    )
    spend = services.points_capture(spend_id=spend.pk, idempotency_key="c1")
    # then the soon-expiring lot is emptied first, then 20 from the other
    taken = dict(
        PointsMovement.objects.filter(spend=spend).values_list("lot_id", "delta").order_by("pk")
    )
    assert taken == {soon.pk: -50, late.pk: -20}
    assert spend.status == SpendStatus.CAPTURED and spend.captured_points == 70
    assert summary(account) == {"available": 80, "pending": 0, "held": 0}
    assert selectors.ledger_mismatches() == []


def test_spending_more_than_spendable_is_refused_and_pending_points_do_not_count():
    # given 100 spendable points and 200 pending
    account = AccountFactory()
    spendable_earn(account.customer, "100.00")
    earn(account.customer, "200.00")
    before = ledger_state()
    # when 101 points are asked
    with pytest.raises(InsufficientPoints) as refused:
        services.points_hold(
            customer=account.customer,
            points=101,
            reference="T1",
            channel="store",
            idempotency_key="too-much",
        )
    # then refused with the figures, and nothing changed
    assert refused.value.details == {"available": 100, "pending": 200, "requested": 101}
    assert ledger_state() == before
    assert summary(account) == {"available": 100, "pending": 200, "held": 0}


@pytest.mark.parametrize("points", [0, -5, 1.5, "10", True, 10**9])
def test_zero_negative_fractional_or_absurd_points_are_refused(points):
    account = AccountFactory()
    spendable_earn(account.customer, "100.00")
    before = ledger_state()
    with pytest.raises(InvalidPoints):
        services.points_hold(
            customer=account.customer,
            points=points,
            reference="T1",
            channel="store",
            idempotency_key="bad",
        )
    assert ledger_state() == before


def test_a_partial_capture_gives_the_rest_back_and_a_second_capture_is_refused():
    # given a hold of 80 over two lots
    account = AccountFactory()
    a = spendable_earn(account.customer, "50.00")
    b = spendable_earn(account.customer, "50.00")
    spend = services.points_hold(
        customer=account.customer, points=80, reference="W2", channel="web", idempotency_key="h"
    )
    assert summary(account) == {"available": 20, "pending": 0, "held": 80}
    # when only 30 are captured
    spend = services.points_capture(spend_id=spend.pk, points=30, idempotency_key="c")
    # then 50 are back, in the later lot first, the 30 kept in the soonest-expiring lot
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.remaining, b.remaining) == (20, 50)
    assert summary(account) == {"available": 70, "pending": 0, "held": 0}
    before = ledger_state()
    with pytest.raises(SpendNotHeld):
        services.points_capture(spend_id=spend.pk, idempotency_key="c-again")
    with pytest.raises(SpendNotHeld):
        services.points_release(spend_id=spend.pk, idempotency_key="r")
    assert ledger_state() == before
    assert selectors.ledger_mismatches() == []


def test_a_released_or_expired_hold_gives_every_point_back():
    account = AccountFactory()
    spendable_earn(account.customer, "100.00")
    released = services.points_hold(
        customer=account.customer, points=40, reference="W3", channel="web", idempotency_key="h1"
    )
    abandoned = services.points_hold(
        customer=account.customer,
        points=60,
        reference="W4",
        channel="web",
        idempotency_key="h2",
        ttl_minutes=5,
    )
    assert summary(account)["available"] == 0
    services.points_release(spend_id=released.pk, idempotency_key="r1")
    # the expiry task releases the abandoned hold once, however often it runs
    assert services.points_holds_expire(now=timezone.now() + timedelta(minutes=6)) == 1
    assert services.points_holds_expire(now=timezone.now() + timedelta(minutes=7)) == 0
    abandoned.refresh_from_db()
    assert abandoned.status == SpendStatus.EXPIRED
    assert summary(account) == {"available": 100, "pending": 0, "held": 0}
    assert selectors.ledger_mismatches() == []


def test_a_hold_retried_with_the_same_key_holds_once():
    account = AccountFactory()
    spendable_earn(account.customer, "100.00")
    kwargs = {"customer": account.customer, "points": 30, "reference": "T", "channel": "store"}
    first = services.points_hold(idempotency_key="same", **kwargs)
    again = services.points_hold(idempotency_key="same", **kwargs)
    assert first == again
    assert summary(account)["held"] == 30
    with pytest.raises(IdempotencyKeyReused):
        services.points_hold(idempotency_key="same", **{**kwargs, "points": 31})


def test_buying_a_reward_spends_points_at_once():
    account = AccountFactory()
    spendable_earn(account.customer, "100.00")
    spend = services.points_spend_for_reward(
        customer=account.customer,
        points=75,
        reward_ref="MUG",
        channel="app",
        idempotency_key="reward-1",
    )
    assert (spend.status, spend.purpose, spend.captured_points) == ("captured", "reward", 75)
    assert summary(account)["available"] == 25


# ---- returns and refunds -------------------------------------------------------------------------


def test_a_return_reverses_the_returned_lines_points_pro_rata_exactly_over_several_returns():
    # given 3 units of one line earning 100 points, and another line earning 50
    account = AccountFactory()
    lot = earn(
        account.customer,
        ref="W7",
        lines=[line("100.00", ref="1", quantity=3), line("50.00", ref="2", sku="SKU-2")],
    )
    # when one unit, then the two others, come back
    first = services.points_reverse_for_return(
        source_type="order",
        source_ref="W7",
        return_ref="R1",
        lines=[ReturnedLine("1", 1)],
        channel="store",
    )
    second = services.points_reverse_for_return(
        source_type="order",
        source_ref="W7",
        return_ref="R2",
        lines=[ReturnedLine("1", 2)],
        channel="store",
    )
    # then 33 then 67 points: exactly the line's 100 in total; the other line keeps its 50
    assert (first.points_due, second.points_due) == (33, 67)
    lot.refresh_from_db()
    assert lot.remaining == 50
    # a retried return changes nothing; returning more than bought is refused
    again = services.points_reverse_for_return(
        source_type="order",
        source_ref="W7",
        return_ref="R1",
        lines=[ReturnedLine("1", 1)],
        channel="store",
    )
    assert again == first
    before = ledger_state()
    with pytest.raises(ReturnExceedsPurchase):
        services.points_reverse_for_return(
            source_type="order",
            source_ref="W7",
            return_ref="R3",
            lines=[ReturnedLine("1", 1)],
            channel="store",
        )
    assert ledger_state() == before
    assert selectors.ledger_mismatches() == []


def test_a_return_after_the_points_were_spent_takes_other_lots_then_records_a_shortfall():
    account = AccountFactory()
    bought = spendable_earn(account.customer, "100.00", ref="W8")
    other = spendable_earn(account.customer, "30.00")
    spend = services.points_hold(
        customer=account.customer, points=110, reference="X", channel="web", idempotency_key="h"
    )
    services.points_capture(spend_id=spend.pk, idempotency_key="c")
    # when the 100-point purchase is returned with 20 points left on the account
    reversal = services.points_reverse_for_return(
        source_type="order",
        source_ref="W8",
        return_ref="R",
        lines=[ReturnedLine("1", 1)],
        channel="web",
    )
    # then the 20 are taken and 80 recorded as shortfall; no balance goes negative
    assert (reversal.points_due, reversal.points_taken, reversal.shortfall) == (100, 20, 80)
    assert [lot.remaining for lot in PointsLot.objects.filter(pk__in=[bought.pk, other.pk])] == [
        0,
        0,
    ]
    assert selectors.ledger_mismatches() == []


def test_points_spent_on_a_refunded_order_come_back_as_a_new_lot_never_more_than_spent():
    account = AccountFactory()
    spendable_earn(account.customer, "100.00")
    spend = services.points_hold(
        customer=account.customer, points=60, reference="W10", channel="web", idempotency_key="h"
    )
    services.points_capture(spend_id=spend.pk, idempotency_key="c")
    # when 40 then 20 of the 60 are refunded
    lot = services.points_refund_spent(
        spend_id=spend.pk, points=40, refund_ref="RF1", channel="web"
    )
    services.points_refund_spent(spend_id=spend.pk, points=20, refund_ref="RF2", channel="web")
    # then a new spendable lot per refund, and a further refund is refused with nothing changed
    assert (lot.kind, lot.amount, lot.available_at <= timezone.now()) == ("refund", 40, True)
    before = ledger_state()
    with pytest.raises(RefundExceedsSpent):
        services.points_refund_spent(spend_id=spend.pk, points=1, refund_ref="RF3", channel="web")
    assert ledger_state() == before
    assert summary(account)["available"] == 100


# ---- expiry --------------------------------------------------------------------------------------


def test_expiry_empties_lots_past_their_date_once():
    account = AccountFactory()
    old = spendable_earn(account.customer, "100.00")
    fresh = spendable_earn(account.customer, "10.00")
    PointsLot.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.points_expire() == 100
    assert services.points_expire() == 0
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.remaining, old.expired_at is not None, fresh.remaining) == (0, True, 10)
    assert summary(account)["available"] == 10
    assert selectors.ledger_mismatches() == []


# ---- tiers ---------------------------------------------------------------------------------------


def test_tier_upgrades_at_once_on_earned_points_and_downgrades_only_at_period_end():
    # given Silver at 500 and Gold at 1000 points earned over 365 days
    ProgramSettingsFactory(tier_period_days=365)
    silver = TierFactory(code="silver", threshold_points=500)
    gold = TierFactory(code="gold", threshold_points=1000)
    account = AccountFactory()
    # when 600 then 500 points are earned
    earn(account.customer, "600.00")
    account.refresh_from_db()
    assert account.tier == silver
    earn(account.customer, "500.00")
    account.refresh_from_db()
    assert account.tier == gold
    # spending does not change the tier (it is not the balance)
    # at the review, with no purchase in the last period, the account goes down to nothing
    review_at = account.tier_review_at
    assert services.tiers_review(now=review_at - timedelta(days=1)) == 0
    assert services.tiers_review(now=review_at + timedelta(days=1)) == 1
    account.refresh_from_db()
    assert account.tier is None
    history = list(TierChange.objects.filter(account=account).order_by("pk"))
    assert [(h.from_tier, h.to_tier, h.reason) for h in history] == [
        (None, silver, "upgrade"),
        (silver, gold, "upgrade"),
        (gold, None, "review"),
    ]


# ---- merge ---------------------------------------------------------------------------------------


def test_merging_moves_each_open_lot_with_its_own_expiry_and_unmerge_moves_it_back():
    # given two records of one person, each with an account and lots
    survivor, absorbed = AccountFactory(), AccountFactory()
    spendable_earn(survivor.customer, "10.00")
    a_lot = spendable_earn(absorbed.customer, "70.00")
    p_lot = earn(absorbed.customer, "30.00")
    # when customer service merges them (two cards: forced with a reason)
    merge = customer_services.customer_merge(
        survivor=survivor.customer,
        absorbed=absorbed.customer,
        actor="cs",
        reason="same person",
        force=True,
    )
    # then the survivor holds two new lots with the same dates; the originals are empty
    moved = PointsLot.objects.filter(account=survivor, kind=LotKind.MERGE_IN).order_by("pk")
    assert [(m.origin_lot_id, m.amount, m.expires_at, m.available_at) for m in moved] == sorted(
        [
            (a_lot.pk, 70, a_lot.expires_at, a_lot.available_at),
            (p_lot.pk, 30, p_lot.expires_at, p_lot.available_at),
        ],
        key=lambda row: row[2],
    )
    assert summary(survivor) == {"available": 80, "pending": 30, "held": 0}
    assert summary(absorbed) == {"available": 0, "pending": 0, "held": 0}
    # when the merge is undone
    customer_services.customer_unmerge(merge=merge, actor="cs", reason="mistake")
    # then the points go back with their dates
    assert summary(survivor) == {"available": 10, "pending": 0, "held": 0}
    assert summary(absorbed) == {"available": 70, "pending": 30, "held": 0}
    assert selectors.ledger_mismatches() == []


def test_a_merge_into_a_record_without_account_hands_the_account_over_and_back():
    survivor = CustomerFactory()
    absorbed = AccountFactory()
    spendable_earn(absorbed.customer, "10.00")
    merge = customer_services.customer_merge(
        survivor=survivor, absorbed=absorbed.customer, actor="cs"
    )
    absorbed.refresh_from_db()
    assert absorbed.customer == survivor
    customer_services.customer_unmerge(merge=merge, actor="cs", reason="mistake")
    absorbed.refresh_from_db()
    assert absorbed.customer_id != survivor.pk


def test_an_open_points_hold_blocks_an_automatic_merge():
    survivor, absorbed = CustomerFactory(), AccountFactory()
    spendable_earn(absorbed.customer, "10.00")
    services.points_hold(
        customer=absorbed.customer, points=5, reference="T", channel="store", idempotency_key="h"
    )
    blockers = customer_services.merge_blockers(survivor=survivor, absorbed=absorbed.customer)
    assert any("Points hold" in reason for reason in blockers)


def test_erasure_forfeits_points_and_export_lists_the_ledger():
    account = AccountFactory()
    spendable_earn(account.customer, "10.00", store=LocationFactory())
    export = customer_services.registry.export_contributors["loyalty"](account.customer)
    assert export["account"]["points_remaining"] == 10
    assert len(export["account"]["lots"]) == 1
    customer_services.customer_erase(customer=account.customer, actor="dpo", reason="request")
    account.refresh_from_db()
    assert (account.points_remaining, account.is_active) == (0, False)
    assert account.card_number.startswith("ERASED")
    assert selectors.ledger_mismatches() == []


def test_an_open_points_hold_blocks_erasure():
    account = AccountFactory()
    spendable_earn(account.customer, "10.00")
    services.points_hold(
        customer=account.customer, points=5, reference="T", channel="store", idempotency_key="h"
    )
    with pytest.raises(ErasureBlocked):
        customer_services.customer_erase(customer=account.customer, actor="dpo", reason="request")
    account.refresh_from_db()
    assert (account.points_remaining, account.is_active) == (5, True)


def test_a_purchase_sent_for_an_absorbed_record_earns_on_the_survivor():
    # given a record merged into another, and a POS that still holds the old record
    survivor, absorbed = AccountFactory(), AccountFactory()
    stale = absorbed.customer
    customer_services.customer_merge(
        survivor=survivor.customer, absorbed=stale, actor="cs", reason="same", force=True
    )
    # when a receipt arrives for the old record
    lot = earn(stale, "25.00", source_type="store_receipt", channel="store")
    # then the survivor's account earns it
    assert lot.account == survivor
    assert summary(absorbed)["pending"] == 0

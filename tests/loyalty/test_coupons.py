from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from common.exceptions import InvalidInput
from customers.services import ConsentChange, consent_record, customer_merge
from loyalty import coupons
from loyalty.coupons import BasketLine
from loyalty.exceptions import (
    BasketNotEligible,
    CouponAlreadyUsed,
    CouponChannelNotAllowed,
    CouponExpired,
    CouponHeldElsewhere,
    CouponNotFound,
    CouponNotOwned,
)
from loyalty.models import Coupon, CouponRedemption
from tests.customers.factories import CustomerFactory
from tests.factories import LocationFactory
from tests.loyalty.factories import AccountFactory, CampaignFactory, TierFactory, earn

pytestmark = pytest.mark.django_db

BASKET = [BasketLine("SKU-1", 2, Decimal("60.00"), "tops")]


def consent(customer, channel="email", granted=True):
    consent_record(
        customer=customer,
        changes=[ConsentChange("marketing", channel, granted, "v1")],
        sales_channel="web",
        actor="test",
    )


def issued_coupon(campaign=None, customer=None, **campaign_fields):
    campaign = campaign or CampaignFactory(**campaign_fields)
    customer = customer or CustomerFactory()
    return Coupon.objects.create(
        campaign=campaign,
        customer=customer,
        code=coupons.code_new(),
        issue_channel="email",
        issued_at=timezone.now(),
    )


def coupon_state():
    return (
        list(Coupon.objects.order_by("pk").values_list("pk", "status", "hold_ref")),
        CouponRedemption.objects.count(),
    )


def redeem(coupon, *, channel="web", key="k1", lines=BASKET, customer=None, **kwargs):
    return coupons.coupon_redeem(
        code=coupon.code,
        customer=customer or coupon.customer,
        channel=channel,
        lines=lines,
        currency="EUR",
        idempotency_key=key,
        **kwargs,
    )


# ---- issuing -------------------------------------------------------------------------------------


def test_issuing_gives_one_unique_code_per_targeted_customer_who_consented_to_the_channel():
    # given three listed customers: two consented to email marketing, one refused
    yes1, yes2, no = CustomerFactory(), CustomerFactory(), CustomerFactory()
    consent(yes1)
    consent(yes2)
    consent(no, granted=False)
    campaign = CampaignFactory(issue_channel="email")
    campaign.target_customers.set([yes1, yes2, no])
    # when the campaign is issued twice
    first = coupons.campaign_issue(campaign=campaign)
    second = coupons.campaign_issue(campaign=campaign)
    # then two codes, random and distinct, recording the issue channel; the limit stops a second
    assert (first.issued, first.skipped_no_consent) == (2, 1)
    assert (second.issued, second.skipped_limit) == (0, 2)
    codes = list(Coupon.objects.filter(campaign=campaign).values_list("code", "issue_channel"))
    assert len({code for code, _ in codes}) == 2
    assert all(len(code) == 12 and channel == "email" for code, channel in codes)
    assert set(Coupon.objects.values_list("customer_id", flat=True)) == {yes1.pk, yes2.pk}


def test_a_segment_targets_tier_store_and_lapsed_customers_with_marketing_consent():
    # given a gold tier, a store, and customers who match or miss each condition
    gold = TierFactory(code="gold")
    store = LocationFactory()
    target = AccountFactory(tier=gold, customer__preferred_store=store)
    earn(target.customer, "10.00", at=timezone.now() - timedelta(days=100))
    recent = AccountFactory(tier=gold, customer__preferred_store=store)
    earn(recent.customer, "10.00", at=timezone.now() - timedelta(days=5))
    other_store = AccountFactory(tier=gold)
    earn(other_store.customer, "10.00", at=timezone.now() - timedelta(days=100))
    no_consent = AccountFactory(tier=gold, customer__preferred_store=store)
    earn(no_consent.customer, "10.00", at=timezone.now() - timedelta(days=100))
    for account in (target, recent, other_store):
        consent(account.customer, "sms")
    campaign = CampaignFactory(
        target_kind="segment",
        issue_channel="sms",
        segment_tier=gold,
        segment_preferred_store=store,
        segment_inactive_days=60,
        segment_marketing_consent=True,
    )
    # when issued
    result = coupons.campaign_issue(campaign=campaign)
    # then only the lapsed gold customer of that store who consented gets a code
    assert result.issued == 1
    assert Coupon.objects.get().customer == target.customer


def test_a_finished_campaign_cannot_be_issued():
    campaign = CampaignFactory(
        starts_at=timezone.now() - timedelta(days=10), ends_at=timezone.now() - timedelta(days=1)
    )
    with pytest.raises(CouponExpired):
        coupons.campaign_issue(campaign=campaign)
    assert Coupon.objects.count() == 0


# ---- validation: each bad input is a clear error and consumes nothing ----------------------------


def test_validating_computes_the_discount_on_eligible_lines():
    coupon = issued_coupon(
        discount_type="percent",
        discount_value=Decimal("20"),
        min_basket=Decimal("50"),
        eligible_categories=["shoes"],
    )
    result = coupons.coupon_validate(
        code=coupon.code.lower(),
        customer=coupon.customer,
        channel="web",
        lines=[
            BasketLine("SHOE", 1, Decimal("49.99"), "shoes"),
            BasketLine("SHIRT", 1, Decimal("30.00"), "tops"),
        ],
        currency="EUR",
    )
    assert (result.eligible_amount, result.discount, result.basket_total) == (
        Decimal("49.99"),
        Decimal("10.00"),
        Decimal("79.99"),
    )


@pytest.mark.parametrize(
    "case, error",
    [
        ("unknown", CouponNotFound),
        ("expired", CouponExpired),
        ("not_started", CouponExpired),
        ("other_customer", CouponNotOwned),
        ("channel", CouponChannelNotAllowed),
        ("under_minimum", BasketNotEligible),
        ("no_eligible_line", BasketNotEligible),
    ],
)
def test_bad_codes_are_refused_and_nothing_is_consumed(case, error):
    now = timezone.now()
    fields = {
        "expired": {"starts_at": now - timedelta(days=9), "ends_at": now - timedelta(seconds=1)},
        "not_started": {"starts_at": now + timedelta(days=1), "ends_at": now + timedelta(days=9)},
        "channel": {"channels": ["store"]},
        "no_eligible_line": {"eligible_skus": ["OTHER"]},
    }.get(case, {})
    coupon = issued_coupon(**fields)
    code = "ZZZZZZZZZZZZ" if case == "unknown" else coupon.code
    customer = CustomerFactory() if case == "other_customer" else coupon.customer
    lines = [BasketLine("SKU-1", 1, Decimal("49.99"))] if case == "under_minimum" else BASKET
    before = coupon_state()
    with pytest.raises(error):
        coupons.coupon_redeem(
            code=code,
            customer=customer,
            channel="web",
            lines=lines,
            currency="EUR",
            idempotency_key="bad",
        )
    with pytest.raises(error):
        coupons.coupon_hold(
            code=code,
            customer=customer,
            channel="web",
            cart_ref="cart",
            lines=lines,
            currency="EUR",
        )
    assert coupon_state() == before


# ---- redemption ----------------------------------------------------------------------------------


def test_a_code_used_in_a_store_is_dead_online_and_the_redemption_records_where():
    # given a code redeemed at a till
    store = LocationFactory()
    coupon = issued_coupon()
    redemption = redeem(coupon, channel="store", store=store, till="T3", key="till-1")
    assert (redemption.channel, redemption.store, redemption.till) == ("store", store, "T3")
    assert (redemption.discount, redemption.basket_total) == (Decimal("10.00"), Decimal("60.00"))
    # when the storefront tries it, or the till retries with the same key
    before = coupon_state()
    with pytest.raises(CouponAlreadyUsed):
        redeem(coupon, channel="web", key="web-1", order_ref="W1")
    assert redeem(coupon, channel="store", store=store, till="T3", key="till-1") == redemption
    # then it stays one redemption, in store
    assert coupon_state() == before


def test_a_till_redemption_must_name_its_store():
    coupon = issued_coupon()
    with pytest.raises(InvalidInput):
        redeem(coupon, channel="store")
    assert coupon_state()[1] == 0


def test_a_cart_hold_blocks_other_uses_until_it_expires_or_is_released():
    # given a code applied to a web cart
    coupon = issued_coupon()
    coupons.coupon_hold(
        code=coupon.code,
        customer=coupon.customer,
        channel="web",
        cart_ref="cart-1",
        lines=BASKET,
        currency="EUR",
        ttl=timedelta(minutes=10),
    )
    # then the till cannot take it while the cart holds it
    with pytest.raises(CouponHeldElsewhere):
        redeem(coupon, channel="store", store=LocationFactory(), key="till")
    # the cart itself redeems it with the order
    later = issued_coupon(campaign=coupon.campaign, customer=coupon.customer)
    coupons.coupon_hold(
        code=later.code,
        customer=later.customer,
        channel="web",
        cart_ref="cart-2",
        lines=BASKET,
        currency="EUR",
        ttl=timedelta(seconds=-1),  # an abandoned cart: the hold is already over
    )
    # an expired hold frees the code: another channel may redeem it
    redemption = redeem(later, channel="store", store=LocationFactory(), key="till-2")
    assert redemption.coupon == later
    assert redeem(coupon, key="w", cart_ref="cart-1", order_ref="W9").order_ref == "W9"
    # a released hold frees it too
    third = issued_coupon(campaign=coupon.campaign, customer=coupon.customer)
    coupons.coupon_hold(
        code=third.code,
        customer=third.customer,
        channel="web",
        cart_ref="cart-3",
        lines=BASKET,
        currency="EUR",
    )
    assert coupons.coupon_release(code=third.code, customer=third.customer, cart_ref="cart-3")
    third.refresh_from_db()
    assert third.status == "issued"


def test_the_hold_expiry_task_frees_abandoned_carts():
    coupon = issued_coupon()
    coupons.coupon_hold(
        code=coupon.code,
        customer=coupon.customer,
        channel="web",
        cart_ref="c",
        lines=BASKET,
        currency="EUR",
        ttl=timedelta(minutes=1),
    )
    assert coupons.coupon_holds_expire(now=timezone.now()) == 0
    assert coupons.coupon_holds_expire(now=timezone.now() + timedelta(minutes=2)) == 1
    coupon.refresh_from_db()
    assert (coupon.status, coupon.hold_ref) == ("issued", "")


def test_codes_follow_the_customer_on_a_merge():
    coupon = issued_coupon()
    survivor = CustomerFactory()
    customer_merge(survivor=survivor, absorbed=coupon.customer, actor="cs")
    coupon.refresh_from_db()
    assert coupon.customer == survivor
    assert redeem(coupon, customer=survivor).customer == survivor


def test_offers_lists_the_customers_usable_codes_for_a_channel():
    customer = CustomerFactory()
    web_only = issued_coupon(customer=customer, channels=["web"])
    anywhere = issued_coupon(customer=customer)
    used = issued_coupon(customer=customer)
    redeem(used)
    issued_coupon(customer=customer, ends_at=timezone.now() + timedelta(seconds=1))
    assert {c.pk for c in coupons.offers_for(customer=customer, channel="store")} >= {anywhere.pk}
    assert web_only.pk not in {c.pk for c in coupons.offers_for(customer=customer, channel="store")}
    assert used.pk not in {c.pk for c in coupons.offers_for(customer=customer)}


# ---- report --------------------------------------------------------------------------------------


def test_the_campaign_report_counts_redemptions_by_channel_and_store_visits_after_issue():
    # given a campaign issued to four customers 10 days ago, O2O window 7 days
    issued_at = timezone.now() - timedelta(days=10)
    campaign = CampaignFactory(o2o_days=7, starts_at=issued_at - timedelta(days=1))
    store = LocationFactory()
    people = [AccountFactory() for _ in range(4)]
    codes = [
        Coupon.objects.create(
            campaign=campaign,
            customer=p.customer,
            code=coupons.code_new(),
            issue_channel="email",
            issued_at=issued_at,
        )
        for p in people
    ]
    # one redeems online, one at a till (today: outside the 7 days), one buys in a store 3 days
    # after the issue without the code, one buys in a store 9 days after (outside the window)
    redeem(codes[0], key="a", lines=[BasketLine("S", 1, Decimal("100.00"))])
    redeem(codes[1], channel="store", store=store, key="b")
    earn(
        people[2].customer,
        "40.00",
        source_type="store_receipt",
        channel="store",
        store=store,
        at=issued_at + timedelta(days=3),
    )
    earn(
        people[3].customer,
        "40.00",
        source_type="store_receipt",
        channel="store",
        store=store,
        at=issued_at + timedelta(days=9),
    )
    # an online order in the window is not a store visit
    earn(people[3].customer, "40.00", at=issued_at + timedelta(days=2))
    # when the report is computed
    report = coupons.campaign_report(campaign=campaign)
    # then
    assert report["issued"] == 4
    assert report["redeemed"] == 2
    assert report["redemption_rate"] == "0.5000"
    assert (report["redeemed_in_store"], report["redeemed_online"]) == (1, 1)
    assert report["o2o_store_visitors"] == 1
    assert report["revenue"] == "160.00"

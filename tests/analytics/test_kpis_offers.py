"""The loyalty, offer and payment KPIs on one week made by the services at known moments
(time-machine), against numbers worked out by hand. Monday 2 – Sunday 8 November 2026, Paris;
the programme earns 10 points per euro, spendable at once; a point is worth 0.01 €.

- Sunday 1: Ana, Bea and Chloé hold loyalty cards and take emails; a 50.00 gift card is sold
  online; Chloé gets 15.00 of store credit (goodwill).
- Monday 2, 09:00: the "Autumn" campaign (O2O window 3 days) sends each of them a code.
- Monday 2, 10:00: Ana orders 2 × 20.00 online for pickup at PARIS01, pays 30.00 with the gift
  card and redeems her code online. Ready at 11:00; collected Tuesday 18:00, paying the
  10.00 left at the till: she earns 400 points (web). Not a store visit: an online order
  collected in a store is not one.
- Wednesday 4, 12:00: Bea buys a 29.90 T-shirt at PARIS01's till with her card (299 points,
  store) and redeems her code there: a visit 2 days after her code.
- Friday 6, 10:00: Ana orders 1 × 20.00 online, pays 2.00 with 200 points; collected Saturday
  11:00 paying 18.00 at the till: 200 more points (web), 200 spent (web).
- Saturday 7, 15:00: Chloé buys at PARIS01's till (299 points): 5 days after her code, outside
  the window.
- LYON-1 has nothing: its manager's view of the same week is empty."""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from customers.services import ConsentChange, consent_record
from integrations.models import PosIntegration, PosTill
from loyalty import coupons
from loyalty.models import Campaign, ProgramSettings
from loyalty.services import account_open
from orders import pickup, services
from payments.models import GiftCardSource
from payments.orders_port import payable_order
from payments.services import stored_value
from payments.services.tenders import tender_add_gift_card, tender_add_loyalty_points
from tests.analytics.test_kpis import PARIS, at, table
from tests.customers.factories import CustomerFactory
from tests.factories import LocationFactory, SkuFactory
from tests.integrations.test_pos import post, sale
from tests.orders.conftest import act, hand_over, key, line, place_pickup, receive

pytestmark = pytest.mark.django_db
STAFF = {"actor": "staff:test", "channel": "backoffice"}
AT_TILL = {"actor": "staff:till", "channel": "store"}


@pytest.fixture
def offers_week(db, settings):
    settings.PAYMENTS_LOYALTY_POINT_VALUE = "0.01"
    ProgramSettings.objects.create(currency="EUR", points_per_unit=10, pending_days=0)
    store = LocationFactory(code="PARIS01")
    other = LocationFactory(code="LYON-1")
    sku = SkuFactory(code="TEE-M")
    tills = PosIntegration.objects.create(slug="paris-tills", name="Paris", secret="s3cret")
    tills.stores.add(store)
    PosTill.objects.create(integration=tills, location=store, code="T1")
    with at(1, 9):
        receive(store, sku, 10)
        ana, bea, chloe = (CustomerFactory(first_name=name) for name in ("Ana", "Bea", "Chloé"))
        cards = {}
        for person in (ana, bea, chloe):
            cards[person.pk] = account_open(customer=person, channel="web", actor="test")
            consent_record(customer=person, changes=[ConsentChange("marketing", "email", True,
                           "v1")], sales_channel="web", actor="test")  # fmt: skip
        gift = stored_value.gift_card_issue(
            amount="50.00", currency="EUR", source=GiftCardSource.SOLD, channel="web",
            actor="test", idempotency_key=key(),
        )  # fmt: skip
        stored_value.wallet_credit(customer=chloe, amount="15.00", currency="EUR",
                                   idempotency_key=key(), channel="backoffice", actor="test",
                                   kind="goodwill", reason="late parcel")  # fmt: skip
    with at(2, 9):
        autumn = coupons.campaign_create(
            name="Autumn", discount_type="amount", discount_value="5.00",
            starts_at=datetime(2026, 11, 2, 9, tzinfo=PARIS),
            ends_at=datetime(2026, 11, 30, tzinfo=PARIS), channels=["web", "store"],
            issue_channel="email", target_kind="list", target_customers=[ana, bea, chloe],
            o2o_days=3,
        )  # fmt: skip
        coupons.campaign_issue(campaign=autumn)
    code = {c.customer_id: c.code for c in autumn.coupons.all()}

    with at(2, 10):
        first = place_pickup(ana, store, [line(sku, 2, price="20.00")])
        tender_add_gift_card(order=payable_order(reference=first.reference), code=gift.code,
                             amount="30.00", idempotency_key=key(), channel="web",
                             actor="test")  # fmt: skip
        _redeem(code[ana.pk], ana, "web", "40.00", order_ref=first.reference)
    with at(2, 11):
        _ready(first)
    with at(3, 18):
        _collect(first)
    with at(4, 12):
        _till_sale("E1", cards[bea.pk])
        _redeem(code[bea.pk], bea, "store", "29.90", store=store, till="T1")
    with at(6, 10):
        second = place_pickup(ana, store, [line(sku, 1, price="20.00")])
        tender_add_loyalty_points(order=payable_order(reference=second.reference),
                                  amount="2.00", idempotency_key=key(), channel="web",
                                  actor="test")  # fmt: skip
        _ready(second)
    with at(7, 11):
        _collect(second)
    with at(7, 15):
        _till_sale("E2", cards[chloe.pk])
    return {"store": store, "other": other}


def _redeem(code, customer, channel, amount, **where):
    coupons.coupon_redeem(
        code=code, customer=customer, channel=channel, currency="EUR", idempotency_key=key(),
        lines=[coupons.BasketLine("TEE-M", 1, Decimal(amount))], **where,
    )  # fmt: skip


def _ready(order):
    act(services.order_picking_start, order_id=order.pk, idempotency_key=key(), **STAFF)
    act(services.order_mark_ready, order_id=order.pk, idempotency_key=key(), **STAFF)


def _collect(order):
    order.refresh_from_db()
    hand_over(order, pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce),
              **AT_TILL)  # fmt: skip


def _till_sale(event_id, card):
    """A signed sale from till T1, as the POS sends it a minute after the receipt."""
    body = sale(event_id, customer={"loyalty_card": card.card_number},
                occurred_at=timezone.now() - timedelta(minutes=1))  # fmt: skip
    assert post(Client(), body).status_code == 202


def test_points_earned_and_spent_per_channel(offers_week):
    rows = {row["channel"]: row for row in table("points").rows}
    assert rows["web"] == {"channel": "web", "earned": 400 + 200, "spent": 200}
    assert rows["store"] == {"channel": "store", "earned": 299 + 299, "spent": 0}


def test_campaign_redemptions_and_o2o_conversion(offers_week):
    (row,) = table("campaigns").rows
    assert row["campaign"] == "Autumn" and row["codes"] == 3 and row["recipients"] == 3
    assert (row["redeemed_online"], row["redeemed_in_store"]) == (1, 1)
    # only Bea came to a store within 3 days; Chloé came on day 5, Ana only collected an order
    assert row["bought_in_store"] == 1 and row["o2o_days"] == 3
    assert row["o2o_conversion"] == 0.3333


def test_the_campaign_kpi_and_the_campaigns_report_agree(offers_week):
    report = coupons.campaign_report(campaign=Campaign.objects.get(name="Autumn"))
    (row,) = table("campaigns").rows
    assert report["o2o_store_visitors"] == row["bought_in_store"]
    assert (report["redeemed_online"], report["redeemed_in_store"]) == (
        row["redeemed_online"],
        row["redeemed_in_store"],
    )


def test_tender_mix_per_channel(offers_week):
    rows = {(row["channel"], row["kind"]): row for row in table("tender-mix").rows}
    assert set(rows) == {("web", "gift_card"), ("web", "loyalty_points"), ("store", "till")}
    assert rows[("web", "gift_card")]["captured"] == "30.00"
    assert rows[("web", "gift_card")]["share_of_channel"] == 0.9375  # 30 of 32 paid online
    assert rows[("web", "loyalty_points")]["captured"] == "2.00"
    assert rows[("store", "till")]["tenders"] == 2
    assert rows[("store", "till")]["captured"] == "28.00"  # 10.00 + 18.00 at collection
    assert rows[("store", "till")]["share_of_channel"] == 1.0


def test_gift_card_and_store_credit_outstanding(offers_week):
    rows = {row["kind"]: row for row in table("liabilities").rows}
    assert rows["gift_card"] == {"kind": "gift_card", "currency": "EUR", "accounts": 1,
                                 "outstanding": "20.00"}  # fmt: skip  # 50.00 − 30.00 spent
    assert rows["store_credit"]["outstanding"] == "15.00"


def test_another_stores_manager_sees_none_of_it(offers_week):
    lyon = [offers_week["other"].pk]
    assert table("points", location_ids=lyon).rows == []
    assert table("tender-mix", location_ids=lyon).rows == []
    assert table("liabilities", location_ids=lyon).rows == []  # chain-wide: head office only
    (row,) = table("campaigns", location_ids=lyon).rows
    assert (row["redeemed_online"], row["redeemed_in_store"], row["bought_in_store"]) == (0, 0, 0)


def test_the_pickup_stores_manager_sees_her_stores_share(offers_week):
    paris = [offers_week["store"].pk]
    (row,) = table("campaigns", location_ids=paris).rows
    assert (row["redeemed_online"], row["redeemed_in_store"], row["bought_in_store"]) == (1, 1, 1)
    rows = {row["channel"]: row for row in table("points", location_ids=paris).rows}
    assert rows["store"]["earned"] == 598
    assert {row["kind"] for row in table("tender-mix", location_ids=paris).rows} == {
        "gift_card", "loyalty_points", "till"
    }  # fmt: skip


def test_till_receipts_are_store_sales_with_their_units(offers_week):
    rows = {row["channel"]: row for row in table("sales").rows}
    assert (rows["store"]["orders"], rows["store"]["units"]) == (2, 2)  # Bea's and Chloé's
    assert rows["store"]["revenue"] == "59.80" and rows["store"]["average_basket"] == "29.90"
    assert (rows["web"]["orders"], rows["web"]["units"], rows["web"]["revenue"]) == (2, 3, "60.00")

"""Weeks of history behind the KPI dashboard, made by the order services at past moments:
time-machine moves the clock and the same code as production runs (nothing inserted by hand).
Click & collect orders on the web, the app and at tills across the demo stores, prepared on
time or late, collected or never collected, some lines rejected and routed again, some units
returned in another store; till sales signed and sent by the demo POS (some with a loyalty
card); a "welcome back" campaign emailed in week 2 whose codes are redeemed online and at
tills; then the nightly stock rollups of those days.

Its customers are told nothing (a dummy email and SMS backend while it runs): the console of
`make run` stays readable."""

from __future__ import annotations

import json
import random
import zoneinfo
from collections.abc import Callable
from datetime import datetime, time, timedelta
from decimal import Decimal

import time_machine
from django.test.utils import override_settings
from django.utils import timezone

from analytics.services import stock_days_backfill
from common.channels import SalesChannel
from common.exceptions import DomainError
from common.money import Money
from common.signing import signature_header
from customers.services import ConsentChange, consent_record, customer_identify_or_create
from integrations.models import PosIntegration, PosTill
from integrations.pos import pos_event_receive
from inventory.models import StockPosition
from loyalty import coupons
from loyalty.models import Coupon, CouponStatus
from loyalty.services import account_open
from orders import pickup
from orders import services as orders
from payments.models import GiftCardSource
from payments.orders_port import payable_order
from payments.selectors import gift_card_by_code, order_payment_summary
from payments.services import stored_value
from payments.services.tenders import tender_add_gift_card
from stores.models import Location, LocationKind

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
QUIET = {
    "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    "SMS_BACKEND": "notifications.sms.LocmemSmsBackend",
}
STEP = {"actor": "demo:history", "channel": SalesChannel.STORE}


def history_start(*, weeks: int) -> datetime:
    """When the demo's stock must have arrived for `weeks` weeks of history: the day before."""
    first = timezone.localdate(timezone=PARIS) - timedelta(days=7 * weeks + 1)
    return datetime.combine(first, time(8), tzinfo=PARIS)


def history_load(*, weeks: int, progress: Callable[[int, int], None] | None = None) -> int:
    """Place and move the orders of the last `weeks` weeks; returns the orders placed."""
    rng = random.Random(20261203)  # the same history on every machine
    today = timezone.localdate(timezone=PARIS)
    first = today - timedelta(days=7 * weeks)
    stores = list(Location.objects.filter(kind=LocationKind.STORE, allows_pickup=True,
                                          is_active=True).order_by("code"))  # fmt: skip
    shelves = {
        store.pk: list(
            StockPosition.objects.filter(location=store, available__gte=3)
            .order_by("sku_id")
            .values_list("sku_id", "sku__code")
        )
        for store in stores
    }
    placed = 0
    with override_settings(**QUIET):
        with _at(datetime.combine(first, time(9), tzinfo=PARIS)):
            shoppers = [_shopper(n) for n in range(40)]
            gift_codes = _gift_cards(shoppers[:8])
        # three weeks before today: the dashboard's default four weeks show it and its O2O
        campaign_day = max(first, today - timedelta(days=21))
        with _at(datetime.combine(campaign_day, time(9), tzinfo=PARIS)):
            _campaign(shoppers)
        tills = Tills()
        days = [first + timedelta(days=n) for n in range(7 * weeks)]
        for number, day in enumerate(days, 1):
            if day.weekday() == 6:  # the demo stores are closed on Sundays
                continue
            for slot in range(rng.randint(5, 10)):
                store = rng.choice(stores[:6])
                if not shelves[store.pk]:
                    continue
                moment = _opening_hours(rng, day)
                placed += _one_order(rng, store, shelves[store.pk], rng.choice(shoppers),
                                     stores, moment, key=f"demo:history:{day}:{slot}",
                                     gift_codes=gift_codes)  # fmt: skip
            for slot in range(rng.randint(3, 8)):
                store = rng.choice(stores[:6])
                if shelves[store.pk]:
                    shopper = rng.choice(shoppers) if rng.random() < 0.6 else None
                    sku_code = rng.choice(shelves[store.pk])[1]
                    tills.sale(rng, store, sku_code, shopper, _opening_hours(rng, day),
                               receipt=f"{day:%y%m%d}-{slot}")  # fmt: skip
            if progress:
                progress(number, len(days))
        with _at(timezone.now()):
            orders.orders_expire_overdue()  # the never-collected ones, past their deadline
    stock_days_backfill(days=7 * weeks, until=today)
    return placed


PRICE, WITH_CODE = Decimal("39.90"), Decimal("34.90")  # the campaign takes 5.00 off


def _one_order(rng, store, shelf, shopper, stores, moment, *, key: str, gift_codes) -> int:
    sku_id, sku_code = rng.choice(shelf)
    channel = rng.choice([SalesChannel.WEB] * 5 + [SalesChannel.APP] * 3 + [SalesChannel.STORE])
    code = _unused_code(shopper, moment) if channel != SalesChannel.STORE else None
    if code and rng.random() < 0.5:
        code = None  # she keeps it for later, or for a shop
    try:
        with _at(moment):
            order = orders.order_place(
                channel=channel,
                customer=shopper,
                lines=[
                    orders.OrderLineRequest(
                        sku_id=sku_id,
                        quantity=1,
                        unit_price=str(WITH_CODE if code else PRICE),
                        currency="EUR",
                        sku_code=sku_code,
                    )
                ],  # fmt: skip
                fulfilment="pickup",
                pickup_location_id=store.pk,
                idempotency_key=key,
                actor="demo:history",
            )
            if code:  # the storefront redeems the code with the order it discounted
                coupons.coupon_redeem(
                    code=code, customer=shopper, channel=channel, currency="EUR",
                    lines=[coupons.BasketLine(sku_code, 1, PRICE)], order_ref=order.reference,
                    idempotency_key=f"{key}:coupon",
                )  # fmt: skip
            if shopper.pk in gift_codes and channel != SalesChannel.STORE and rng.random() < 0.6:
                _pay_with_gift_card(order, gift_codes[shopper.pk], key=f"{key}:gift")
        fate = rng.random()
        if fate < 0.05:  # not on the shelf: rejected, routed again
            missing = {"line_no": 1, "location_id": store.pk, "reason": "not_on_shelf"}
            _then(moment + timedelta(hours=1), orders.order_line_reject, order, key, "reject",
                  found_quantity=0, **missing)  # fmt: skip
            return 1
        late = timedelta(hours=26) if rng.random() < 0.15 else timedelta(0)  # ready next day
        ready_at = moment + timedelta(hours=rng.uniform(0.4, 1.8)) + late
        if ready_at >= timezone.now():
            return 1
        _then(ready_at, orders.order_picking_start, order, key, "pick")
        _then(ready_at, orders.order_mark_ready, order, key, "ready")
        if fate > 0.8:  # never collected: it expires at its deadline
            return 1
        collected_at = ready_at + timedelta(hours=rng.uniform(2, 72))
        if collected_at >= timezone.now():
            return 1
        order.refresh_from_db()
        due = order_payment_summary(order_reference=order.reference).due
        _then(collected_at, orders.order_handover, order, key, "handover",
              code=pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce),
              paid_at_till=Money(due, order.currency) if due > 0 else None)  # fmt: skip
        returned_at = collected_at + timedelta(days=rng.uniform(1, 5))
        if rng.random() < 0.1 and returned_at < timezone.now():  # back in another store
            elsewhere = rng.choice([s for s in stores if s.pk != store.pk])
            _then(returned_at, orders.order_return, order, key, "return",
                  location_id=elsewhere.pk,
                  lines=[orders.ReturnLineRequest(line_no=1, quantity=1)])  # fmt: skip
    except DomainError:
        return 0  # a shelf emptied by earlier orders: that shopper went elsewhere
    return 1


class Tills:
    """The demo POS: each sale is signed and sent as a till would, through the same intake as
    the webhook (applied at once: the demo runs tasks in-process)."""

    def __init__(self):
        self.integration = PosIntegration.objects.get(slug="demo-tills")
        self.tills = dict(
            PosTill.objects.filter(integration=self.integration, code="T1").values_list(
                "location_id", "code"
            )
        )

    def sale(self, rng, store, sku_code: str, shopper, moment, *, receipt: str) -> None:
        card = shopper.loyalty_account.card_number if shopper is not None else None
        code = _unused_code(shopper, moment) if shopper is not None else None
        price = WITH_CODE if code else PRICE
        event = {
            "event_id": f"demo-history-{store.code}-{receipt}",
            "type": "sale",
            "occurred_at": moment.isoformat(),
            "store": store.code,
            "till": self.tills[store.pk],
            "data": {
                "receipt": receipt,
                "currency": "EUR",
                "lines": [{"sku": sku_code, "quantity": 1, "unit_price": str(price)}],
                "tenders": [{"kind": rng.choice(["card", "card", "cash"]), "amount": str(price)}],
                **({"customer": {"loyalty_card": card}} if card else {}),
            },
        }
        raw = json.dumps(event).encode()
        with _at(moment + timedelta(seconds=30)):
            if code:  # the cashier scans the code from the email before taking the money
                coupons.coupon_redeem(
                    code=code, customer=shopper, channel=SalesChannel.STORE, currency="EUR",
                    lines=[coupons.BasketLine(sku_code, 1, PRICE)], store=store,
                    till=self.tills[store.pk], idempotency_key=f"{event['event_id']}:coupon",
                )  # fmt: skip
            pos_event_receive(
                integration=self.integration,
                raw_body=raw,
                signature=signature_header(self.integration.secret, raw),
            )


def _gift_cards(shoppers) -> dict[int, str]:
    """100 € gift cards sold online to a few shoppers (their code: customer id → code)."""
    return {
        shopper.pk: stored_value.gift_card_issue(
            amount="100.00", currency="EUR", source=GiftCardSource.SOLD,
            channel=SalesChannel.WEB, actor="demo:history",
            idempotency_key=f"demo:history:gift:{shopper.pk}",
        ).code
        for shopper in shoppers
    }  # fmt: skip


def _pay_with_gift_card(order, code: str, *, key: str) -> None:
    """The storefront takes what the card still holds, up to the order's total; the till
    takes the rest at pickup."""
    card = gift_card_by_code(code=code)
    amount = min(card.available, order.total_amount)
    if amount > 0:
        tender_add_gift_card(order=payable_order(reference=order.reference), code=code,
                             amount=amount, idempotency_key=key, channel=order.channel,
                             actor="demo:history")  # fmt: skip


def _campaign(shoppers) -> None:
    """Week 2: a 5 € code emailed to the shoppers who agreed to marketing emails."""
    now = timezone.now()
    campaign = coupons.campaign_create(
        name="Welcome back: 5 € off", discount_type="amount", discount_value="5.00",
        min_basket="30.00", starts_at=now, ends_at=now + timedelta(days=60),
        channels=[SalesChannel.WEB, SalesChannel.APP, SalesChannel.STORE],
        issue_channel="email", target_kind="list", target_customers=shoppers, o2o_days=14,
    )  # fmt: skip
    coupons.campaign_issue(campaign=campaign)


def _unused_code(shopper, moment) -> str | None:
    return (
        Coupon.objects.filter(customer=shopper, status=CouponStatus.ISSUED, issued_at__lt=moment)
        .values_list("code", flat=True)
        .first()
    )


def _opening_hours(rng, day) -> datetime:
    return datetime.combine(day, time(10), tzinfo=PARIS) + timedelta(minutes=rng.randint(0, 480))


def _then(moment, service, order, key: str, step: str, **kwargs) -> None:
    with _at(moment):
        service(order_id=order.pk, idempotency_key=f"{key}:{step}", **STEP, **kwargs)


def _at(moment):
    return time_machine.travel(moment, tick=False)


def _shopper(n: int):
    email = f"client.{n:02d}@exemple.fr"
    customer = customer_identify_or_create(
        identifiers=[("email", email, "web")],
        first_name=f"Client {n:02d}",
        last_name="Démo",
        language="fr",
        sales_channel=SalesChannel.WEB,
        actor="demo:history",
    ).customer
    account_open(customer=customer, channel=SalesChannel.WEB, actor="demo:history")
    if n % 3 != 2:  # two in three agree to marketing emails
        consent_record(
            customer=customer,
            changes=[ConsentChange("marketing", "email", True, "demo-2026")],
            sales_channel=SalesChannel.WEB,
            actor="demo:history",
        )
    return customer

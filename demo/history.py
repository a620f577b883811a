"""Weeks of history behind the KPI dashboard, made by the order services at past moments:
time-machine moves the clock and the same code as production runs (nothing inserted by hand).
Click & collect orders on the web, the app and at tills across the demo stores, prepared on
time or late, collected or never collected, some lines rejected and routed again, some units
returned in another store; then the nightly stock rollups of those days.

Its customers are told nothing (a dummy email and SMS backend while it runs): the console of
`make run` stays readable."""

from __future__ import annotations

import random
import zoneinfo
from collections.abc import Callable
from datetime import datetime, time, timedelta

import time_machine
from django.test.utils import override_settings
from django.utils import timezone

from analytics.services import stock_days_backfill
from common.channels import SalesChannel
from common.exceptions import DomainError
from common.money import Money
from customers.services import customer_identify_or_create
from inventory.models import StockPosition
from orders import pickup
from orders import services as orders
from payments.selectors import order_payment_summary
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
        days = [first + timedelta(days=n) for n in range(7 * weeks)]
        for number, day in enumerate(days, 1):
            if day.weekday() == 6:  # the demo stores are closed on Sundays
                continue
            for slot in range(rng.randint(5, 10)):
                store = rng.choice(stores[:6])
                if not shelves[store.pk]:
                    continue
                moment = datetime.combine(day, time(10), tzinfo=PARIS) + timedelta(
                    minutes=rng.randint(0, 8 * 60)
                )
                placed += _one_order(rng, store, shelves[store.pk], rng.choice(shoppers),
                                     stores, moment, key=f"demo:history:{day}:{slot}")  # fmt: skip
            if progress:
                progress(number, len(days))
        with _at(timezone.now()):
            orders.orders_expire_overdue()  # the never-collected ones, past their deadline
    stock_days_backfill(days=7 * weeks, until=today)
    return placed


def _one_order(rng, store, shelf, shopper, stores, moment, *, key: str) -> int:
    sku_id, sku_code = rng.choice(shelf)
    channel = rng.choice([SalesChannel.WEB] * 5 + [SalesChannel.APP] * 3 + [SalesChannel.STORE])
    try:
        with _at(moment):
            order = orders.order_place(
                channel=channel,
                customer=shopper,
                lines=[
                    orders.OrderLineRequest(
                        sku_id=sku_id,
                        quantity=1,
                        unit_price="39.90",
                        currency="EUR",
                        sku_code=sku_code,
                    )
                ],  # fmt: skip
                fulfilment="pickup",
                pickup_location_id=store.pk,
                idempotency_key=key,
                actor="demo:history",
            )
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


def _then(moment, service, order, key: str, step: str, **kwargs) -> None:
    with _at(moment):
        service(order_id=order.pk, idempotency_key=f"{key}:{step}", **STEP, **kwargs)


def _at(moment):
    return time_machine.travel(moment, tick=False)


def _shopper(n: int):
    email = f"client.{n:02d}@exemple.fr"
    return customer_identify_or_create(
        identifiers=[("email", email, "web")],
        first_name=f"Client {n:02d}",
        last_name="Démo",
        language="fr",
        sales_channel=SalesChannel.WEB,
        actor="demo:history",
    ).customer

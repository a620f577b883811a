"""Factories and helpers for the loyalty tests."""

import itertools
from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from loyalty import services
from loyalty.models import Campaign, LoyaltyAccount, ProgramSettings, Tier
from loyalty.services import PurchaseLine
from tests.customers.factories import CustomerFactory

_sources = itertools.count(1)
_cards = itertools.count(1)


class ProgramSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProgramSettings

    currency = "EUR"
    points_per_unit = Decimal("1")
    min_order_value = Decimal("0")
    pending_days = 30
    validity_days = 365
    tier_period_days = 365
    hold_ttl_minutes = 30


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LoyaltyAccount

    customer = factory.SubFactory(CustomerFactory)
    card_number = factory.LazyFunction(lambda: f"TEST{next(_cards):08d}")


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier

    code = factory.Sequence(lambda n: f"tier{n}")
    name = factory.Sequence(lambda n: f"Tier {n}")
    threshold_points = 1000
    multiplier = Decimal("1")


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    discount_type = "amount"
    discount_value = Decimal("10.00")
    currency = "EUR"
    min_basket = Decimal("50.00")
    starts_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    ends_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))
    channels = factory.LazyFunction(lambda: ["web", "store"])
    per_customer_limit = 1
    issue_channel = "email"
    target_kind = "list"
    segment_marketing_consent = False


def line(amount="100.00", *, ref="1", sku="SKU-1", quantity=1, category="tops"):
    return PurchaseLine(
        line_ref=ref, sku=sku, quantity=quantity, amount=Decimal(amount), category=category
    )


def earn(
    customer,
    amount="100.00",
    *,
    lines=None,
    at=None,
    channel="web",
    source_type="order",
    ref=None,
    store=None,
):
    """Earn on a purchase of `amount` (one line) made at `at` (default now)."""
    return services.points_earn_for_source(
        customer=customer,
        source_type=source_type,
        source_ref=ref or f"SRC{next(_sources)}",
        lines=lines or [line(amount)],
        currency="EUR",
        channel=channel,
        store=store,
        occurred_at=at,
        actor="test",
    )


def spendable_earn(customer, amount="100.00", **kwargs):
    """Points earned long enough ago to be spendable now (past the return window)."""
    return earn(customer, amount, at=timezone.now() - timedelta(days=31), **kwargs)

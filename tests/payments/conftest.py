import itertools
from decimal import Decimal

from django.apps import apps

from payments.models import GiftCardSource
from payments.services import stored_value

_keys = itertools.count(1)


def key(prefix: str = "t") -> str:
    return f"{prefix}-{next(_keys)}"


def issue(amount="50.00", currency="EUR", **kwargs):
    """A fresh gift card; returns (card, code)."""
    kwargs.setdefault("source", GiftCardSource.SOLD)
    kwargs.setdefault("channel", "web")
    kwargs.setdefault("actor", "test")
    issued = stored_value.gift_card_issue(
        amount=amount, currency=currency, idempotency_key=key("issue"), **kwargs
    )
    return issued.card, issued.code


def hold(account, amount, **kwargs):
    kwargs.setdefault("channel", "web")
    kwargs.setdefault("actor", "test")
    return stored_value.balance_hold(
        account=account,
        amount=amount,
        idempotency_key=kwargs.pop("idempotency_key", key("hold")),
        **kwargs,
    )


def balances(account):
    account.refresh_from_db()
    return account.balance, account.held


def snapshot_payments():
    """Every payments row, as values: `assert snapshot_payments() == before` proves a refused call
    moved no money and wrote nothing."""
    return {
        model._meta.label: sorted(map(repr, model._base_manager.values_list()))
        for model in apps.get_app_config("payments").get_models()
    }


D = Decimal


def make_order(*, total="100.00", currency="EUR", customer=None, status=None):
    """An order row as the orders app stores it (payments only reads reference, currency, total,
    customer and whether it is open)."""
    from django.utils import timezone

    from orders.models import Order
    from tests.customers.factories import CustomerFactory

    extra = {"status": status} if status else {}
    return Order.objects.create(
        reference=f"WPAY{next(_keys):05d}",
        created_by_key=key("order"),
        channel="web",
        customer=customer or CustomerFactory(),
        currency=currency,
        total_amount=D(total),
        fulfilment="delivery",
        placed_at=timezone.now(),
        **extra,
    )

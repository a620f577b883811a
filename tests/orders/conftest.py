import itertools
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import TestCase

from common.money import Money
from inventory import services as stock
from inventory.models import Reservation, StockPosition
from notifications import sms
from orders import services
from orders.models import FulfilmentType
from payments.selectors import order_payment_summary
from tests.customers.factories import CustomerFactory
from tests.factories import LocationFactory, SkuFactory, WarehouseFactory

_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _locmem_messages(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SMS_BACKEND = "notifications.sms.LocmemSmsBackend"
    sms.outbox.clear()
    yield
    sms.outbox.clear()


@pytest.fixture
def customer(db):
    return CustomerFactory(first_name="Camille", language="fr")


@pytest.fixture
def store(db):
    # Paris, Rivoli: offers pickup, does not ship.
    return LocationFactory(code="PARIS01", name="Paris Rivoli", address_line="1 rue de Rivoli")


@pytest.fixture
def warehouse(db):
    # Orléans, ~110 km south of Paris.
    return WarehouseFactory(
        code="WH01", name="Orléans warehouse", latitude="47.902964", longitude="1.909251"
    )


@pytest.fixture
def sku(db):
    return SkuFactory(code="TSHIRT-M", name="T-shirt M")


@pytest.fixture
def sku2(db):
    return SkuFactory(code="JEANS-32", name="Jeans 32")


def committed():
    """Run what the code under test schedules with transaction.on_commit (notifications) when
    the block succeeds, as a real commit would; the test's own transaction never commits."""
    return TestCase.captureOnCommitCallbacks(execute=True)


def act(service, **kwargs):
    """Call an orders service as a request would: its on-commit work runs after it."""
    with committed():
        return service(**kwargs)


def hand_over(order, code, *, taken=None, **who):
    """The till hands the order over against its code and takes what is due with it (a pickup
    is refused while money is due): all of it, or only the units taken."""
    if order.channel in settings.ORDERS_PAID_ELSEWHERE_CHANNELS:
        due = Decimal(0)  # a marketplace took the money
    elif taken is None:
        due = order_payment_summary(order_reference=order.reference).due
    else:
        prices = dict(order.lines.values_list("line_no", "unit_price"))
        due = sum((prices[n] * units for n, units in taken.items()), Decimal(0))
    return act(
        services.order_handover,
        order_id=order.pk,
        code=code,
        taken=taken,
        idempotency_key=f"handover-{next(_keys)}",
        paid_at_till=Money(due, order.currency) if due > 0 else None,
        **who,
    )


def receive(location, sku, quantity):
    stock.stock_receive(
        location_id=location.pk, lines=[(sku.pk, quantity)], idempotency_key=f"rcv-{next(_keys)}"
    )


def position(location, sku) -> StockPosition:
    return StockPosition.objects.get(location=location, sku=sku)


def line(sku, quantity=1, price="19.90", currency="EUR"):
    return services.OrderLineRequest(
        sku_id=sku.pk, quantity=quantity, unit_price=price, currency=currency, sku_code=sku.code
    )


PARIS_HOME = services.DeliveryAddress(
    name="Camille Martin",
    address="10 rue de la Paix",
    postcode="75002",
    city="Paris",
    country="FR",
    latitude=Decimal("48.868800"),
    longitude=Decimal("2.330900"),
)


def place_pickup(customer, store, lines, *, key=None, channel="web", **extra):
    return act(
        services.order_place,
        channel=channel,
        customer=customer,
        lines=lines,
        fulfilment=FulfilmentType.PICKUP,
        pickup_location_id=store.pk,
        idempotency_key=key or f"order-{next(_keys)}",
        actor="test",
        contact_email="camille@example.test",
        contact_phone="+33612345678",
        **extra,
    )


def place_delivery(customer, lines, *, key=None, channel="web", address=PARIS_HOME, **extra):
    return act(
        services.order_place,
        channel=channel,
        customer=customer,
        lines=lines,
        fulfilment=FulfilmentType.DELIVERY,
        address=address,
        idempotency_key=key or f"order-{next(_keys)}",
        actor="test",
        contact_email="camille@example.test",
        **extra,
    )


def key() -> str:
    return f"k-{next(_keys)}"


def active_reservations(order):
    return list(
        Reservation.objects.filter(reference=order.reference, status="active").order_by("pk")
    )

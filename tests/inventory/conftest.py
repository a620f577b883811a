import pytest

from inventory import services
from inventory.models import StockPosition
from tests.factories import LocationFactory, SkuFactory, WarehouseFactory


@pytest.fixture
def store(db):
    return LocationFactory(code="PARIS01", name="Paris Rivoli")


@pytest.fixture
def warehouse(db):
    return WarehouseFactory(code="WH01", name="Central warehouse")


@pytest.fixture
def sku(db):
    return SkuFactory(code="TSHIRT-M")


def receive(location, sku, quantity, key=None):
    return services.stock_receive(
        location_id=location.pk,
        lines=[(sku.pk, quantity)],
        idempotency_key=key or f"test-receipt-{location.pk}-{sku.pk}-{quantity}",
    )


def position(location, sku) -> StockPosition:
    return StockPosition.objects.get(location=location, sku=sku)

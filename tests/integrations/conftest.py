"""Fixtures shared by the POS tests: one Paris store with a till, one SKU, one integration."""

import pytest

from integrations.models import PosIntegration, PosTill
from tests.factories import LocationFactory, SkuFactory


@pytest.fixture
def store(db):
    return LocationFactory(code="PARIS01", name="Paris Rivoli")


@pytest.fixture
def sku(db):
    return SkuFactory(code="TEE-M")


@pytest.fixture
def integration(store):
    integration = PosIntegration.objects.create(
        slug="paris-tills", name="Paris tills", secret="s3cret"
    )
    integration.stores.add(store)
    PosTill.objects.create(integration=integration, location=store, code="T1")
    return integration

"""factory-boy factories shared by every app's tests."""

import itertools
from datetime import time
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from common.models import ApiKey
from inventory.models import Sku
from inventory.validators import gtin_with_check_digit
from stores.models import Location, LocationKind, OpeningHours

_barcodes = itertools.count(1)


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Location
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"LOC{n:03d}")
    name = factory.Sequence(lambda n: f"Store {n}")
    kind = LocationKind.STORE
    city = "Paris"
    latitude = Decimal("48.856600")
    longitude = Decimal("2.352200")
    timezone = "Europe/Paris"
    allows_pickup = True
    ships_from_location = False
    preparation_minutes = 60

    @factory.post_generation
    def hours(self, create, extracted, **kwargs):
        """Open Monday–Saturday 10:00–20:00, unless `hours=` gives [] or a list of
        (weekday, opens, closes)."""
        if not create:
            return
        intervals = (
            extracted if extracted is not None else [(day, time(10), time(20)) for day in range(6)]
        )
        OpeningHours.objects.bulk_create(
            [
                OpeningHours(location=self, weekday=day, opens_at=opens, closes_at=closes)
                for day, opens, closes in intervals
            ]
        )


class WarehouseFactory(LocationFactory):
    code = factory.Sequence(lambda n: f"WH{n:02d}")
    kind = LocationKind.WAREHOUSE
    allows_pickup = False
    ships_from_location = True


class SkuFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sku

    code = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    barcode = factory.LazyFunction(lambda: gtin_with_check_digit(f"370{next(_barcodes):09d}"))
    category = "tops"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True
    password = factory.django.Password("pw")


def make_api_key(
    *, name: str | None = None, channel: str = "web", scopes=None
) -> tuple[ApiKey, str]:
    raw = ApiKey.generate_raw_key()
    key = ApiKey(name=name or f"key-{raw[-8:]}", channel=channel, scopes=list(scopes or []))
    key.set_key(raw)
    key.save()
    return key, raw

"""Availability cache versions on a real Redis: a batch bumps every SKU's version in one round
trip, and Django's Redis cache reads what the pipeline wrote."""

import os

import pytest
from django.core.cache import caches
from django.test import override_settings

from inventory.selectors import _VERSION_KEY, availability_changed

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_cache():
    url = os.environ["TEST_REDIS_URL"]
    backend = {"BACKEND": "common.cache.RedisCache", "LOCATION": url}
    local = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    with override_settings(CACHES={"default": backend, "local": local}):
        cache = caches["default"]
        cache.clear()
        yield cache
        cache.clear()


def test_many_skus_are_bumped_whether_their_version_existed_or_not(redis_cache):
    redis_cache.set(_VERSION_KEY.format(1), 41, None)

    availability_changed([1, 2, 3])
    first = [redis_cache.get(_VERSION_KEY.format(sku)) for sku in (1, 2, 3)]
    availability_changed([1, 2, 3, 3])
    second = [redis_cache.get(_VERSION_KEY.format(sku)) for sku in (1, 2, 3)]

    assert first[0] == 42
    assert all(isinstance(version, int) and version > 1_000_000 for version in first[1:])
    assert [b - a for a, b in zip(first, second, strict=True)] == [1, 1, 1]


def test_one_sku_is_bumped_too(redis_cache):
    availability_changed([7])
    availability_changed([7])

    version = redis_cache.get(_VERSION_KEY.format(7))
    assert isinstance(version, int) and version > 1_000_000

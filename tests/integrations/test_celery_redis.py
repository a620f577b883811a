"""Celery through a real Redis broker and a real worker (not eager): `make test` starts Redis."""

import os
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from celery.result import EagerResult
from django.utils import timezone

from config.celery import app
from inventory import services
from inventory.models import Reservation, ReservationStatus
from inventory.tasks import reservations_release_expired_task
from tests.factories import LocationFactory, SkuFactory
from tests.inventory.conftest import position, receive

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_worker(settings):
    url = os.environ["TEST_REDIS_URL"]
    previous = {key: app.conf[key] for key in ("broker_url", "result_backend", "task_always_eager")}
    app.conf.update(broker_url=url, result_backend=url, task_always_eager=False)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield
    app.conf.update(previous)


def test_expired_holds_are_released_by_a_real_worker_through_redis(redis_worker):
    store, sku = LocationFactory(), SkuFactory()
    receive(store, sku, 4)
    reservation = services.reservation_create(
        sku_id=sku.pk,
        location_id=store.pk,
        quantity=3,
        idempotency_key="cart-redis",
        channel="web",
        ttl_seconds=60,
    )
    Reservation.objects.filter(pk=reservation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    result = reservations_release_expired_task.delay()
    released = result.get(timeout=30)

    assert not isinstance(result, EagerResult)  # it went through the broker to the worker

    assert released == 1
    reservation.refresh_from_db()
    assert reservation.status == ReservationStatus.EXPIRED
    assert position(store, sku).available == 4

"""Celery through a real Redis broker and a real worker (not eager): `make test` starts Redis."""

import os
import time
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
    previous = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    app.conf.update(broker_url=url, task_always_eager=False)
    app.close()  # drop connection pools made for the previous broker URL
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield
    app.conf.update(previous)
    app.close()


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

    with app.connection_for_write() as connection:  # a fresh connection to the Redis broker
        sent = reservations_release_expired_task.apply_async(connection=connection)

    assert not isinstance(sent, EagerResult)  # it went to the broker, not run in this thread
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the worker thread applies it through Redis
        reservation.refresh_from_db()
        if reservation.status == ReservationStatus.EXPIRED:
            break
        time.sleep(0.1)
    assert reservation.status == ReservationStatus.EXPIRED
    assert position(store, sku).available == 4

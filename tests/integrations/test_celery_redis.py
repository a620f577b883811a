"""Celery through a real Redis broker and a real worker (not eager): `make test` starts Redis."""

import os
import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from celery.result import EagerResult
from django.core import mail
from django.utils import timezone

from config.celery import app
from inventory import services
from inventory.models import Reservation, ReservationStatus
from inventory.tasks import reservations_release_expired_task
from orders import services as order_services
from orders.models import PendingNotification
from orders.services import notifications as order_notifications
from orders.tasks import order_notifications_send_task  # registered before the worker starts
from tests.customers.factories import CustomerFactory
from tests.factories import LocationFactory, SkuFactory
from tests.inventory.conftest import position, receive

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_worker(settings):
    url = os.environ["TEST_REDIS_URL"]
    previous = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    app.conf.update(broker_url=url, task_always_eager=False)
    app.close()  # drop connection pools made for the previous broker URL
    # ... including the producer pool, which close() keeps when it was made without app.pool
    # (an earlier test published through the in-memory broker): publish to Redis from here on.
    app.amqp._producer_pool = None
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield
    app.conf.update(previous)
    app.close()
    app.amqp._producer_pool = None


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


def test_an_order_s_confirmation_goes_out_through_the_outbox_and_a_real_worker(
    redis_worker, settings
):
    """Placing commits the owed message; the commit schedules the sending task on Redis; the
    worker sends the email and empties the outbox."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    store, sku = LocationFactory(), SkuFactory()
    receive(store, sku, 2)
    order_notifications._last_kick[0] = float("-inf")  # no task scheduled by an earlier test
    assert order_notifications_send_task.name in app.tasks

    order = order_services.order_place(
        channel="web",
        customer=CustomerFactory(),
        lines=[
            order_services.OrderLineRequest(
                sku_id=sku.pk, quantity=1, unit_price="10.00", currency="EUR", sku_code=sku.code
            )
        ],
        fulfilment="pickup",
        pickup_location_id=store.pk,
        idempotency_key="redis-order-1",
        actor="test",
        contact_email="redis@example.test",
    )

    assert PendingNotification.objects.filter(order_id=order.pk).exists()  # not sent inline
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and PendingNotification.objects.exists():
        time.sleep(0.1)
    assert not PendingNotification.objects.exists()
    assert [m.to for m in mail.outbox] == [["redis@example.test"]]

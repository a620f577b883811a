"""The relay on PostgreSQL with its threads (committed rows, as in production): a subscriber that
hangs (accepts the connection, never answers) costs one timeout, and the live subscriber beside
it receives every event in the same run."""

import socket

import pytest
from django.db import transaction

from integrations import webhooks
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from tests.factories import LocationFactory, SkuFactory
from tests.inventory.conftest import receive

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def hanging_url():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    listener.close()


def test_a_hanging_subscriber_costs_one_timeout_and_the_live_one_gets_everything(
    receiver, hanging_url, settings
):
    settings.OMNISTOCK = {
        **settings.OMNISTOCK, "WEBHOOK_RELAY_THREADS": 4, "WEBHOOK_TIMEOUT_SECONDS": 1,
    }  # fmt: skip
    alive = receiver()
    for name, url in (("alive", alive.url), ("hanging", hanging_url)):
        WebhookEndpoint.objects.create(name=name, url=url, topics=["stock.available_changed"])
    webhooks.endpoints_changed()
    store = LocationFactory()
    with transaction.atomic():  # 50 events in one commit, whose relay run (in-process) sends
        for _ in range(50):
            receive(store, SkuFactory(), 1)

    assert len(alive.requests) == 50
    hanging = WebhookEndpoint.objects.get(name="hanging")
    tried = WebhookDelivery.objects.filter(endpoint=hanging, attempts__gt=0)
    assert tried.count() == 1 and "timed out" in tried.get().last_error
    assert hanging.failures_in_a_row == 1
    assert (
        WebhookDelivery.objects.filter(endpoint=hanging, status=DeliveryStatus.PENDING).count()
        == 49
    )

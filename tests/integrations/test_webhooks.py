"""Stock events reach subscribers as signed webhooks, retried with back-off."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from common.signing import SignatureInvalid, verify_signature
from integrations import webhooks
from integrations.models import DeliveryStatus, OutboxEvent, WebhookDelivery, WebhookEndpoint
from tests.factories import LocationFactory, SkuFactory
from tests.inventory.conftest import receive

pytestmark = pytest.mark.django_db


def time_passes():
    """Every back-off is over: the deliveries' own and their endpoints'."""
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    WebhookEndpoint.objects.update(retry_at=timezone.now())


def test_stock_change_is_posted_signed_to_the_subscriber_after_commit(receiver, committing):
    hook = receiver()
    endpoint = WebhookEndpoint.objects.create(
        name="storefront", url=hook.url, topics=["stock.available_changed"]
    )
    webhooks.endpoints_changed()
    store, sku = LocationFactory(code="PARIS01"), SkuFactory(code="TEE-M")

    with committing():
        receive(store, sku, 4)  # eager Celery: dispatched right after commit

    assert len(hook.requests) == 1
    headers, body = hook.requests[0]
    verify_signature(
        header=headers["X-Omnistock-Signature"],
        body=body,
        secrets=[endpoint.secret],
        tolerance_seconds=300,
    )
    event = json.loads(body)
    assert event["topic"] == "stock.available_changed"
    assert (event["data"]["sku"], event["data"]["location"], event["data"]["available"]) == (
        "TEE-M",
        "PARIS01",
        4,
    )
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempt_log.count() == 1


def test_failed_delivery_is_retried_with_backoff_then_succeeds(receiver, committing):
    hook = receiver(statuses=[500, 503])
    WebhookEndpoint.objects.create(name="flaky", url=hook.url, topics=["stock.available_changed"])
    webhooks.endpoints_changed()

    with committing():
        receive(LocationFactory(), SkuFactory(), 1)
    delivery = WebhookDelivery.objects.filter(event__topic="stock.available_changed").get()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=5)

    # Not due yet: nothing is sent.
    before = len(hook.requests)
    webhooks.deliveries_attempt_due()
    assert len(hook.requests) == before

    time_passes()
    webhooks.deliveries_attempt_due()  # 503
    time_passes()
    webhooks.deliveries_attempt_due()  # 200

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert list(
        delivery.attempt_log.order_by("attempted_at").values_list("response_status", flat=True)
    ) == [500, 503, 200]


def test_delivery_gives_up_after_the_maximum_attempts(receiver, settings, committing):
    settings.OMNISTOCK = {**settings.OMNISTOCK, "WEBHOOK_MAX_ATTEMPTS": 2}
    hook = receiver(statuses=[500] * 10)
    WebhookEndpoint.objects.create(name="down", url=hook.url, topics=["stock.available_changed"])
    webhooks.endpoints_changed()
    with committing():
        receive(LocationFactory(), SkuFactory(), 1)

    time_passes()
    webhooks.deliveries_attempt_due()

    assert WebhookDelivery.objects.get().status == DeliveryStatus.DEAD


def test_unreachable_endpoint_is_a_failed_attempt_not_a_crash(committing):
    WebhookEndpoint.objects.create(name="nowhere", url="http://127.0.0.1:9/hook")
    webhooks.endpoints_changed()
    with committing():
        receive(LocationFactory(), SkuFactory(), 1)
    delivery = WebhookDelivery.objects.first()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error


def test_events_are_kept_in_the_outbox_when_nobody_subscribes():
    receive(LocationFactory(), SkuFactory(), 1)
    assert OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()
    assert webhooks.outbox_dispatch() >= 1
    assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()


def test_signature_rejects_tampering_staleness_and_accepts_rotated_secrets():
    from common.signing import signature_header

    body = b'{"a":1}'
    header = signature_header("old-secret", body, timestamp=1_000_000)
    assert (
        verify_signature(
            header=header,
            body=body,
            secrets=["new-secret", "old-secret"],
            tolerance_seconds=300,
            now=1_000_100,
        )
        == 1_000_000
    )
    for bad_header, bad_body, now in [
        (header, b'{"a":2}', 1_000_100),
        (header, body, 1_000_400),
        ("t=1000000", body, 1_000_000),
        (None, body, 1_000_000),
    ]:
        with pytest.raises(SignatureInvalid):
            verify_signature(
                header=bad_header,
                body=bad_body,
                secrets=["old-secret"],
                tolerance_seconds=300,
                now=now,
            )


def test_order_events_reach_subscribers_through_their_topic_filter(receiver, committing):
    from orders import services as order_services
    from tests.customers.factories import CustomerFactory

    hook = receiver()
    WebhookEndpoint.objects.create(
        name="marketplace", url=hook.url, topics=["order.ready_for_pickup"]
    )
    webhooks.endpoints_changed()
    store, sku = LocationFactory(code="PARIS01"), SkuFactory()
    receive(store, sku, 2)

    with committing():
        order = order_services.order_place(
            channel="web",
            customer=CustomerFactory(),
            fulfilment="pickup",
            pickup_location_id=store.pk,
            idempotency_key="o-1",
            actor="test",
            lines=[
                order_services.OrderLineRequest(
                    sku_id=sku.pk, quantity=1, unit_price="9.90", currency="EUR", sku_code=sku.code
                )
            ],
        )
    with committing():
        order_services.order_picking_start(
            order_id=order.pk, actor="t", channel="backoffice", idempotency_key="p"
        )
    with committing():
        order_services.order_mark_ready(
            order_id=order.pk, actor="t", channel="backoffice", idempotency_key="r"
        )

    assert OutboxEvent.objects.filter(topic="order.picking").exists()
    bodies = [json.loads(body) for _, body in hook.requests]
    assert [b["topic"] for b in bodies] == ["order.ready_for_pickup"]
    assert bodies[0]["data"]["order"] == order.reference
    assert bodies[0]["data"]["pickup_location"] == "PARIS01"


def test_a_dead_subscriber_costs_one_attempt_per_back_off_and_holds_back_no_one(
    receiver, committing
):
    """The dead endpoint's first failure backs the whole endpoint off: its other waiting
    deliveries are not each tried (each would cost a timeout), and the live endpoint gets
    everything at once."""
    alive, dead = receiver(), receiver(statuses=[503] * 100)
    for name, hook in (("alive", alive), ("dead", dead)):
        WebhookEndpoint.objects.create(name=name, url=hook.url, topics=["stock.available_changed"])
    webhooks.endpoints_changed()
    store = LocationFactory()
    for _ in range(5):
        with committing():
            receive(store, SkuFactory(), 1)

    assert len(alive.requests) == 5
    assert len(dead.requests) == 1  # then backed off as a whole
    endpoint = WebhookEndpoint.objects.get(name="dead")
    assert endpoint.failures_in_a_row == 1 and endpoint.retry_at > timezone.now()
    waiting = WebhookDelivery.objects.filter(endpoint=endpoint).exclude(status="succeeded")
    assert waiting.count() == 5

    time_passes()
    webhooks.deliveries_attempt_due()
    assert len(dead.requests) == 2  # one more attempt for the next period, not five
    endpoint.refresh_from_db()
    assert endpoint.failures_in_a_row == 2
    assert endpoint.retry_at - timezone.now() > timedelta(seconds=15)  # 20 s: it grows


def test_a_subscriber_back_from_an_outage_gets_its_backlog_oldest_first(receiver, committing):
    hook = receiver(statuses=[503])
    WebhookEndpoint.objects.create(name="erp", url=hook.url, topics=["stock.available_changed"])
    webhooks.endpoints_changed()
    store, skus = LocationFactory(), [SkuFactory() for _ in range(4)]
    for sku in skus:
        with committing():
            receive(store, sku, 1)
    assert len(hook.requests) == 1  # the first failed, the endpoint backs off

    time_passes()
    webhooks.deliveries_attempt_due()

    received = [json.loads(body)["data"]["sku"] for _, body in hook.requests[1:]]
    assert received == [sku.code for sku in skus]
    assert not WebhookDelivery.objects.exclude(status="succeeded").exists()

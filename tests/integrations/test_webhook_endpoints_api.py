"""Webhook subscribers managed through the API (scope webhooks:manage): a new endpoint starts
now (or replays from an explicit time within the retention), old events are purged, an endpoint
is paused and resumed without losing events, its secret rotates with a grace period, and what
failed is listed and sent again — all against a real loopback receiver."""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from common.models import OutboxEvent
from common.signing import SignatureInvalid, verify_signature
from integrations import webhooks
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from integrations.tasks import webhook_events_purge_task
from tests.factories import LocationFactory, SkuFactory
from tests.inventory.conftest import receive

pytestmark = pytest.mark.django_db

BASE = "/api/v1/webhooks/endpoints/"
CHANGED = "stock.available_changed"


@pytest.fixture
def manager(api_client_factory):
    return api_client_factory(scopes=["webhooks:manage"], channel="backoffice")


@pytest.fixture
def stock(committing):
    """stock(n): n committed stock changes (each a stock.available_changed event, and a
    stock.back_in_stock one that the endpoints below do not subscribe to)."""
    store, skus = LocationFactory(code="PARIS01"), []

    def change(n: int = 1):
        for _ in range(n):
            skus.append(SkuFactory())
            with committing():
                receive(store, skus[-1], 3)
        return [sku.code for sku in skus[-n:]]

    return change


def _post(client, committing, url, body=None, key=None):
    with committing():
        return client.post(
            url, body or {}, format="json", HTTP_IDEMPOTENCY_KEY=key or uuid.uuid4().hex
        )


def _subscribe(client, committing, name, url, key=None, **extra):
    body = {"name": name, "url": url, "topics": [CHANGED], **extra}
    return _post(client, committing, BASE, body, key=key)


def _skus_received(hook) -> list[str]:
    return [json.loads(body)["data"]["sku"] for _, body in hook.requests]


def test_a_new_endpoint_receives_what_happens_from_its_creation_not_the_backlog(
    manager, receiver, committing, stock
):
    stock(20)  # nobody subscribes: 40 events wait in the outbox
    assert OutboxEvent.objects.filter(dispatched_at__isnull=True).count() == 40
    hook = receiver()

    created = _post(
        manager, committing, BASE, {"name": "erp", "url": hook.url, "topics": [CHANGED]}
    )
    assert created.status_code == 201, created.json()
    assert created.json()["secret"].startswith("whsec_")
    fresh = stock(1)

    assert _skus_received(hook) == fresh  # not 20 stale events first
    assert WebhookDelivery.objects.count() == 1


def test_replay_from_queues_the_events_since_then_and_not_beyond_the_retention(
    manager, receiver, committing, stock, settings
):
    settings.OMNISTOCK = {**settings.OMNISTOCK, "WEBHOOK_RETENTION_DAYS": 7}
    before = stock(3)
    webhooks.outbox_dispatch()  # the beat swept them (no subscriber then)
    hook = receiver()

    too_old = _post(
        manager,
        committing,
        BASE,
        {
            "name": "bi",
            "url": hook.url,
            "topics": [CHANGED],
            "replay_from": timezone.now() - timedelta(days=8),
        },
        key="old",
    )
    assert too_old.status_code == 400 and too_old.json()["code"] == "replay_too_old"
    assert not WebhookEndpoint.objects.exists()

    replay = _post(
        manager,
        committing,
        BASE,
        {
            "name": "bi",
            "url": hook.url,
            "topics": [CHANGED],
            "replay_from": timezone.now() - timedelta(hours=1),
        },
        key="replay",
    )
    assert replay.status_code == 201, replay.json()
    webhooks.deliveries_attempt_due()  # the worker's run after the replay task queued them

    assert sorted(_skus_received(hook)) == sorted(before)


def test_events_older_than_the_retention_are_purged_delivered_or_not(
    receiver, committing, stock, settings
):
    settings.OMNISTOCK = {**settings.OMNISTOCK, "WEBHOOK_RETENTION_DAYS": 7}
    hook = receiver(statuses=[500] * 10)
    WebhookEndpoint.objects.create(name="down", url=hook.url, topics=[CHANGED])
    webhooks.endpoints_changed()
    stock(3)
    old_ids = list(
        OutboxEvent.objects.filter(topic=CHANGED).order_by("pk").values_list("pk", flat=True)[:2]
    )
    OutboxEvent.objects.filter(pk__in=old_ids).update(
        occurred_at=timezone.now() - timedelta(days=8)
    )
    assert WebhookDelivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).count() == 3

    assert webhook_events_purge_task() == 2  # the beat's daily job
    assert list(OutboxEvent.objects.values_list("pk", flat=True)) != old_ids
    assert OutboxEvent.objects.count() == 4 and WebhookDelivery.objects.count() == 1


def test_a_paused_endpoint_keeps_its_events_and_gets_them_on_resume(
    manager, receiver, committing, stock
):
    hook = receiver()
    endpoint_id = _post(
        manager, committing, BASE, {"name": "crm", "url": hook.url, "topics": [CHANGED]}
    ).json()["id"]
    first = stock(1)

    paused = _post(manager, committing, f"{BASE}{endpoint_id}/pause/", key="p")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    during = stock(2)
    assert _skus_received(hook) == first
    assert manager.get(f"{BASE}{endpoint_id}/").json()["waiting"] == 2

    resumed = _post(manager, committing, f"{BASE}{endpoint_id}/resume/", key="r")
    assert resumed.json()["paused"] is False
    webhooks.deliveries_attempt_due()

    assert _skus_received(hook) == first + during


def test_a_rotated_secret_signs_beside_the_old_one_for_the_grace_period(
    manager, receiver, committing, stock
):
    hook = receiver()
    created = _post(
        manager, committing, BASE, {"name": "wms", "url": hook.url, "topics": [CHANGED]}
    ).json()
    rotated = _post(
        manager, committing, f"{BASE}{created['id']}/rotate-secret/", {"grace_seconds": 3600}
    ).json()
    assert rotated["secret"] != created["secret"]
    assert "secret" not in manager.get(f"{BASE}{created['id']}/").json()  # shown twice only

    stock(1)
    headers, body = hook.requests[-1]
    for secret in (created["secret"], rotated["secret"]):  # the receiver may use either
        verify_signature(
            header=headers["X-Omnistock-Signature"], body=body, secrets=[secret],
            tolerance_seconds=300,
        )  # fmt: skip

    WebhookEndpoint.objects.update(previous_secret_expires_at=timezone.now())  # grace over
    stock(1)
    headers, body = hook.requests[-1]
    with pytest.raises(SignatureInvalid):
        verify_signature(
            header=headers["X-Omnistock-Signature"], body=body, secrets=[created["secret"]],
            tolerance_seconds=300,
        )  # fmt: skip


def test_failed_deliveries_are_listed_and_sent_again_on_request(
    manager, receiver, committing, stock
):
    hook = receiver(statuses=[500])
    endpoint_id = _post(
        manager, committing, BASE, {"name": "mkp", "url": hook.url, "topics": [CHANGED]}
    ).json()["id"]
    stock(1)

    failed = manager.get(f"{BASE}{endpoint_id}/deliveries/?status=failed").json()["results"]
    assert [(d["status"], d["last_response_status"]) for d in failed] == [("failed", 500)]
    assert manager.get(f"{BASE}{endpoint_id}/deliveries/?status=bogus").status_code == 400

    again = _post(
        manager, committing, f"{BASE}{endpoint_id}/deliveries/{failed[0]['id']}/redeliver/"
    )
    assert again.status_code == 202
    delivered = manager.get(f"{BASE}{endpoint_id}/deliveries/").json()["results"]
    assert [(d["status"], d["attempts"]) for d in delivered] == [("succeeded", 2)]
    assert len(hook.requests) == 2


def test_the_endpoints_api_is_scoped_validated_and_idempotent(
    manager, api_client_factory, receiver, committing
):
    hook = receiver()
    storefront = api_client_factory(scopes=["stock:read", "orders:write"])
    assert _post(storefront, committing, BASE, {"name": "x", "url": hook.url}).status_code == 403
    assert storefront.get(BASE).status_code == 403

    bad = _post(manager, committing, BASE, {"name": "x", "url": hook.url, "topics": ["Stock!"]})
    assert bad.status_code == 400 and "topics" in bad.json()["details"]
    ftp = _post(manager, committing, BASE, {"name": "x", "url": "ftp://h/x"}, key="ftp")
    assert ftp.status_code == 400
    assert manager.get(f"{BASE}999999/").json()["code"] == "webhook_endpoint_not_found"
    missing = _post(manager, committing, f"{BASE}999999/pause/", key="m")
    assert missing.status_code == 404

    body = {"name": "oms", "url": hook.url, "topics": ["order.*", "stock.low"]}
    first = _post(manager, committing, BASE, body, key="same")
    retry = _post(manager, committing, BASE, body, key="same")
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json() and retry["Idempotent-Replayed"] == "true"
    assert WebhookEndpoint.objects.count() == 1
    listed = manager.get(BASE).json()["results"]
    assert [(e["name"], e["topics"]) for e in listed] == [("oms", ["order.*", "stock.low"])]

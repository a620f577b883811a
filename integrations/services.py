"""Outbox: record events in the caller's transaction; deliver them after commit, signed."""

import json
import logging
import time
import urllib.error
import urllib.request
from datetime import timedelta

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.utils import timezone
from rest_framework.utils.encoders import JSONEncoder

from common.models import OutboxEvent
from common.signing import signature_header
from common.tasks import task_named
from integrations.models import DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Omnistock-Signature"
_ENDPOINTS_CACHE_KEY = "webhooks:active-endpoint-count"
local_cache = caches["local"]


def _active_endpoint_count() -> int:
    # Per process, 30 s: a new endpoint may wait that long for its first after-commit dispatch
    # (the beat task drains the outbox meanwhile); the stock hot path saves a round trip.
    count = local_cache.get(_ENDPOINTS_CACHE_KEY)
    if count is None:
        count = WebhookEndpoint.objects.filter(is_active=True).count()
        local_cache.set(_ENDPOINTS_CACHE_KEY, count, 30)
    return count


def endpoints_changed() -> None:
    local_cache.delete(_ENDPOINTS_CACHE_KEY)


def outbox_relay_kick(**_signal) -> None:
    """`common.outbox.events_committed` receiver: dispatch the outbox now (when anyone
    subscribes); the beat task drains it too, as a safety net."""
    if _active_endpoint_count():
        task_named("integrations.tasks.outbox_dispatch_task").delay()


def outbox_dispatch(*, batch_size: int = 500) -> int:
    """Fan undispatched events out to subscribed endpoints, then attempt the new deliveries.

    Safe to run concurrently: events are claimed with SKIP LOCKED on PostgreSQL, and a delivery
    is unique per (endpoint, event).
    """
    endpoints = list(WebhookEndpoint.objects.filter(is_active=True))
    with transaction.atomic():
        events = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(dispatched_at__isnull=True)
            .order_by("id")[:batch_size]
        )
        if not events:
            return 0
        now = timezone.now()
        deliveries = [
            WebhookDelivery(endpoint=endpoint, event=event, next_attempt_at=now)
            for event in events
            for endpoint in endpoints
            if endpoint.wants(event.topic)
        ]
        WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(dispatched_at=now)
    deliveries_attempt_due()
    return len(events)


def deliveries_attempt_due(*, limit: int = 200) -> int:
    """Attempt every delivery that is due. Network calls happen outside any transaction."""
    due_ids = list(
        WebhookDelivery.objects.filter(
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED],
            next_attempt_at__lte=timezone.now(),
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for delivery_id in due_ids:
        delivery_attempt(delivery_id=delivery_id)
    return len(due_ids)


def backoff_delay(attempts: int) -> timedelta:
    """10 s, 20 s, 40 s … capped at one hour."""
    return timedelta(seconds=min(10 * 2 ** max(attempts - 1, 0), 3600))


def event_body(event: OutboxEvent) -> bytes:
    body = {
        "id": event.pk,
        "topic": event.topic,
        "occurred_at": event.occurred_at,
        "data": event.payload,
    }
    return json.dumps(body, cls=JSONEncoder, separators=(",", ":")).encode()


def delivery_attempt(*, delivery_id: int) -> WebhookDelivery:
    # Claim the delivery by pushing its next attempt forward, so a concurrent runner skips it
    # while this one is on the network.
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id,
        status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED],
        next_attempt_at__lte=now,
    ).update(next_attempt_at=now + timedelta(minutes=5))
    delivery = WebhookDelivery.objects.select_related("endpoint", "event").get(pk=delivery_id)
    if not claimed:
        return delivery

    body = event_body(delivery.event)
    request = urllib.request.Request(  # noqa: S310 - URL set by staff in the admin, http(s) only
        delivery.endpoint.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "omnistock-webhooks/1",
            SIGNATURE_HEADER: signature_header(delivery.endpoint.secret, body),
            "X-Omnistock-Event-Id": str(delivery.event_id),
            "X-Omnistock-Topic": delivery.event.topic,
        },
    )
    started = time.monotonic()
    status_code, error = None, ""
    try:
        if not delivery.endpoint.url.startswith(("http://", "https://")):
            raise ValueError("only http(s) URLs are delivered")
        with urllib.request.urlopen(  # noqa: S310
            request, timeout=settings.OMNISTOCK["WEBHOOK_TIMEOUT_SECONDS"]
        ) as response:
            status_code = response.status
    except urllib.error.HTTPError as exc:
        status_code, error = exc.code, f"HTTP {exc.code}"
    except Exception as exc:  # network errors of every kind are a failed attempt, not a crash
        error = f"{type(exc).__name__}: {exc}"[:500]
    duration_ms = int((time.monotonic() - started) * 1000)

    attempted_at = timezone.now()
    delivery.attempts += 1
    delivery.last_response_status = status_code
    delivery.last_error = error
    if status_code is not None and 200 <= status_code < 300:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.delivered_at = attempted_at
        delivery.next_attempt_at = None
    elif delivery.attempts >= settings.OMNISTOCK["WEBHOOK_MAX_ATTEMPTS"]:
        delivery.status = DeliveryStatus.DEAD
        delivery.next_attempt_at = None
    else:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = attempted_at + backoff_delay(delivery.attempts)
    with transaction.atomic():
        delivery.save(
            update_fields=[
                "attempts",
                "last_response_status",
                "last_error",
                "status",
                "delivered_at",
                "next_attempt_at",
            ]
        )
        DeliveryAttempt.objects.create(
            delivery=delivery,
            attempted_at=attempted_at,
            response_status=status_code,
            error=error,
            duration_ms=duration_ms,
        )
    return delivery


def delivery_retry_now(*, delivery_id: int) -> None:
    """Staff action: try a failed or dead delivery again at once."""
    WebhookDelivery.objects.filter(pk=delivery_id).exclude(status=DeliveryStatus.SUCCEEDED).update(
        status=DeliveryStatus.FAILED, next_attempt_at=timezone.now()
    )
    delivery_attempt(delivery_id=delivery_id)

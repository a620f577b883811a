"""Outbound webhooks: the outbox's relay. Events are fanned out to the endpoints that want
them (from each endpoint's `deliver_from` on), posted signed, retried with back-off, purged
after WEBHOOK_RETENTION_DAYS; endpoints are created, paused, resumed and rotated here."""

import json
import logging
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.utils import timezone
from rest_framework.utils.encoders import JSONEncoder

from common.exceptions import DomainError
from common.models import OutboxEvent
from common.signing import signature_header
from common.tasks import task_named
from integrations.models import (
    DeliveryAttempt,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    generate_webhook_secret,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Omnistock-Signature"
_ENDPOINTS_CACHE_KEY = "webhooks:endpoint-count"
local_cache = caches["local"]


def _endpoint_count() -> int:
    # Per process, 30 s: a new endpoint may wait that long for its first after-commit dispatch
    # (the beat task drains the outbox meanwhile); the stock hot path saves a round trip.
    count = local_cache.get(_ENDPOINTS_CACHE_KEY)
    if count is None:
        count = WebhookEndpoint.objects.count()
        local_cache.set(_ENDPOINTS_CACHE_KEY, count, 30)
    return count


def endpoints_changed() -> None:
    local_cache.delete(_ENDPOINTS_CACHE_KEY)


def outbox_relay_kick(**_signal) -> None:
    """`common.outbox.events_committed` receiver: dispatch the outbox now (when anyone
    subscribes); the beat task drains it too, as a safety net."""
    if _endpoint_count():
        task_named("integrations.tasks.outbox_dispatch_task").delay()


def outbox_dispatch(*, batch_size: int = 500) -> int:
    """Fan undispatched events out to the endpoints that want them, then attempt the new
    deliveries. An endpoint gets the events that occurred from its `deliver_from` on; a paused
    one gets its deliveries too (sent on resume). With no endpoint at all, the outbox is marked
    dispatched in one statement: a subscriber created later starts from its creation.

    Safe to run concurrently: events are claimed with SKIP LOCKED on PostgreSQL, and a delivery
    is unique per (endpoint, event).
    """
    endpoints = list(WebhookEndpoint.objects.all())
    now = timezone.now()
    if not endpoints:
        return OutboxEvent.objects.filter(dispatched_at__isnull=True).update(dispatched_at=now)
    with transaction.atomic():
        events = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(dispatched_at__isnull=True)
            .order_by("id")[:batch_size]
        )
        if not events:
            return 0
        deliveries = [
            WebhookDelivery(endpoint=endpoint, event=event, next_attempt_at=now)
            for event in events
            for endpoint in endpoints
            if endpoint.wants(event.topic) and event.occurred_at >= endpoint.deliver_from
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
            endpoint__is_active=True,
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
        endpoint__is_active=True,
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
            SIGNATURE_HEADER: signature_header(
                delivery.endpoint.secret, body, also=delivery.endpoint.signing_secrets(now)[1:]
            ),
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


def delivery_requeue(*, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again (a dead or a delivered one too: the receiver lost it; it dedupes
    on the event id): due now, for the next worker run, queued after commit. A paused
    endpoint's delivery waits for the resume."""
    WebhookDelivery.objects.filter(pk=delivery_id).update(
        status=DeliveryStatus.FAILED, next_attempt_at=timezone.now(), delivered_at=None
    )
    transaction.on_commit(
        lambda: task_named("integrations.tasks.deliveries_retry_due_task").delay(),
        robust=True,  # the beat's retry sweep sends it anyway
    )
    return WebhookDelivery.objects.select_related("event").get(pk=delivery_id)


def delivery_retry_now(*, delivery_id: int) -> WebhookDelivery:
    """Staff action in the admin: send it again at once, in this request."""
    delivery_requeue(delivery_id=delivery_id)
    return delivery_attempt(delivery_id=delivery_id)


# ---- endpoints: created, paused, resumed, rotated ----------------------------------------------


class ReplayTooOld(DomainError):
    code = "replay_too_old"
    http_status = 400
    default_message = "Events are kept WEBHOOK_RETENTION_DAYS days: replay from a later time."


def retention_cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=settings.OMNISTOCK["WEBHOOK_RETENTION_DAYS"])


def endpoint_create(
    *, name: str, url: str, topics: list[str], replay_from: datetime | None = None
) -> WebhookEndpoint:
    """A new subscriber receives what occurs from now on, or from `replay_from` (within the
    retention): the events already fanned out since then are queued for it after commit."""
    now = timezone.now()
    if replay_from is not None and replay_from < retention_cutoff(now):
        raise ReplayTooOld()
    endpoint = WebhookEndpoint.objects.create(
        name=name, url=url, topics=topics, deliver_from=min(replay_from or now, now)
    )
    endpoints_changed()
    if replay_from is not None:
        transaction.on_commit(
            lambda: task_named("integrations.tasks.endpoint_replay_task").delay(endpoint.pk),
            robust=True,  # the beat's sweep cannot redo a replay: a lost one is re-asked for
        )
    return endpoint


def endpoint_replay(*, endpoint_id: int, batch_size: int = 2000) -> int:
    """Queue for the endpoint every already-dispatched event it wants since its `deliver_from`
    (the undispatched ones reach it through outbox_dispatch). Safe to run twice."""
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    queued, after_id = 0, 0
    while True:
        events = list(
            OutboxEvent.objects.filter(
                pk__gt=after_id,
                dispatched_at__isnull=False,
                occurred_at__gte=endpoint.deliver_from,
            )
            .order_by("pk")
            .only("pk", "topic")[:batch_size]
        )
        if not events:
            return queued
        now = timezone.now()
        created = WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(endpoint=endpoint, event=event, next_attempt_at=now)
                for event in events
                if endpoint.wants(event.topic)
            ],
            ignore_conflicts=True,
        )
        queued += len(created)
        after_id = events[-1].pk


def endpoint_pause(*, endpoint_id: int) -> WebhookEndpoint:
    """Stop sending; events keep being queued for it (up to the retention)."""
    WebhookEndpoint.objects.filter(pk=endpoint_id).update(is_active=False)
    return WebhookEndpoint.objects.get(pk=endpoint_id)


def endpoint_resume(*, endpoint_id: int) -> WebhookEndpoint:
    """Send again, the queued backlog first (oldest due first)."""
    WebhookEndpoint.objects.filter(pk=endpoint_id).update(is_active=True)
    WebhookDelivery.objects.filter(
        endpoint_id=endpoint_id, status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED]
    ).update(next_attempt_at=timezone.now())
    return WebhookEndpoint.objects.get(pk=endpoint_id)


def endpoint_secret_rotate(*, endpoint_id: int, grace: timedelta) -> WebhookEndpoint:
    """A new secret signs from now on; the current one signs too for `grace` (both v1 values
    in the header), so the receiver can switch without refusing a delivery."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = timezone.now() + grace
        endpoint.secret = generate_webhook_secret()
        endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return endpoint


def webhook_events_purge(*, batch_size: int = 5000) -> int:
    """Delete the events older than the retention, with their deliveries and attempts,
    delivered or not: a subscriber that has not taken an event in WEBHOOK_RETENTION_DAYS will
    not, and the outbox is not an archive. In batches, so no statement holds locks for long."""
    cutoff, purged = retention_cutoff(), 0
    while True:
        ids = list(
            OutboxEvent.objects.filter(occurred_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return purged
        with transaction.atomic():
            DeliveryAttempt.objects.filter(delivery__event_id__in=ids).delete()
            WebhookDelivery.objects.filter(event_id__in=ids).delete()
            OutboxEvent.objects.filter(pk__in=ids).delete()
        purged += len(ids)

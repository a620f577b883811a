"""Outbound webhooks: the outbox's relay. Events are fanned out to the endpoints that want
them (from each endpoint's `deliver_from` on), posted signed, retried with back-off, purged
after WEBHOOK_RETENTION_DAYS; endpoints are created, paused, resumed and rotated here."""

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from common.exceptions import DomainError
from common.models import OutboxEvent
from common.tasks import task_named
from integrations.delivery import deliveries_send_round, endpoint_send_batch
from integrations.models import (
    DeliveryAttempt,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    generate_webhook_secret,
)

logger = logging.getLogger(__name__)

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


# A commit that recorded events schedules the relay RELAY_DELAY_SECONDS later, unless this
# process scheduled one less than that ago (it has not started, and will see these events):
# under load one task per process per period, not one per commit. A relay run carries on while
# work is due (webhooks_relay), so the outbox is drained continuously; the beat runs it too.
RELAY_DELAY_SECONDS = 0.5
RELAY_BUDGET_SECONDS = 25.0
_last_kick = [float("-inf")]


def outbox_relay_kick(**_signal) -> None:
    """`common.outbox.events_committed` receiver: relay the outbox soon (when anyone
    subscribes). Robust: a broker that is down leaves the events to the beat's run."""
    if not _endpoint_count():
        return
    relay = task_named("integrations.tasks.webhooks_relay_task")
    if relay.app.conf.task_always_eager:
        relay.delay()  # tasks run in-process: relay now
        return
    now = time.monotonic()
    if now - _last_kick[0] < RELAY_DELAY_SECONDS:
        return
    relay.apply_async(countdown=RELAY_DELAY_SECONDS)
    _last_kick[0] = now


def webhooks_relay(*, time_budget_seconds: float = RELAY_BUDGET_SECONDS) -> tuple[int, bool]:
    """Fan the outbox out and send what is due, round after round, until nothing is due or the
    budget is spent: (deliveries sent, whether work is left for another run)."""
    deadline = time.monotonic() + time_budget_seconds
    sent = 0
    while time.monotonic() < deadline:
        fanned = outbox_fan_out()
        delivered = deliveries_send_round()
        sent += delivered
        if not fanned and not delivered:
            return sent, False
    return sent, True


def outbox_fan_out(*, batch_size: int = 1000) -> int:
    """Fan undispatched events out to the endpoints that want them (deliveries, due now). An
    endpoint gets the events that occurred from its `deliver_from` on; a paused one gets its
    deliveries too (sent on resume). With no endpoint at all, the outbox is marked dispatched
    in one statement: a subscriber created later starts from its creation.

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
            .order_by("id")
            .only("pk", "topic", "occurred_at")[:batch_size]
        )
        if not events:
            return 0
        deliveries = [
            WebhookDelivery(endpoint=endpoint, event=event, next_attempt_at=now)
            for event in events
            for endpoint in endpoints
            if endpoint.wants(event.topic) and event.occurred_at >= endpoint.deliver_from
        ]
        WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True, batch_size=1000)
        OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(dispatched_at=now)
    return len(events)


def outbox_dispatch() -> int:
    """Fan out and send until nothing is due (the beat's run, and tests): events fanned out."""
    fanned = 0
    while True:
        batch = outbox_fan_out()
        fanned += batch
        if not batch:
            break
    deliveries_attempt_due()
    return fanned


def deliveries_attempt_due(*, rounds: int = 100) -> int:
    """Send rounds until nothing is due (endpoints backing off wait): deliveries sent."""
    sent = 0
    for _ in range(rounds):
        delivered = deliveries_send_round()
        if not delivered:
            break
        sent += delivered
    return sent


def delivery_attempt(*, delivery_id: int) -> WebhookDelivery:
    """Send this one delivery now, if it is due."""
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    endpoint_send_batch(endpoint_id=delivery.endpoint_id, limit=1, delivery_id=delivery_id)
    return WebhookDelivery.objects.select_related("endpoint", "event").get(pk=delivery_id)


def delivery_requeue(*, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again (a dead or a delivered one too: the receiver lost it; it dedupes
    on the event id): due now, for the next relay run, queued after commit. The endpoint's
    back-off is lifted (someone asked for it). A paused endpoint's delivery waits for resume."""
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    WebhookDelivery.objects.filter(pk=delivery_id).update(
        status=DeliveryStatus.FAILED, next_attempt_at=timezone.now(), delivered_at=None
    )
    WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(retry_at=None)
    transaction.on_commit(
        lambda: task_named("integrations.tasks.webhooks_relay_task").delay(),
        robust=True,  # the beat's relay sends it anyway
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
    default_message = gettext_lazy(
        "Events are kept WEBHOOK_RETENTION_DAYS days: replay from a later time."
    )


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
    WebhookEndpoint.objects.filter(pk=endpoint_id).update(
        is_active=True, retry_at=None, failures_in_a_row=0
    )
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

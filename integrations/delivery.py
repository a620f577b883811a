"""Sending webhook deliveries: per endpoint, in batches, over one kept-alive connection.

A round takes every endpoint that has deliveries due and is not backing off, claims a batch of
its due deliveries (oldest event first, SKIP LOCKED, a short lease) and posts them one after the
other on one connection. The first failure (a network error, a timeout, a non-2xx answer) stops
that endpoint's batch and backs the endpoint off as a whole (10 s, 20 s … 1 h): one dead
subscriber costs one timeout per back-off period, never one per waiting delivery, and never
holds back the others, which are sent in parallel threads. Network calls happen outside any
transaction; every attempt is recorded (DeliveryAttempt).
"""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework.utils.encoders import JSONEncoder

from common.models import OutboxEvent
from common.signing import signature_header
from integrations.models import DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookEndpoint

SIGNATURE_HEADER = "X-Omnistock-Signature"
BATCH_SIZE = 100  # deliveries of one endpoint per round
LEASE = timedelta(seconds=20)  # a claimed batch is left alone this long (a killed worker's too)
DUE = [DeliveryStatus.PENDING, DeliveryStatus.FAILED]


def backoff_delay(failures: int) -> timedelta:
    """10 s, 20 s, 40 s … capped at one hour."""
    return timedelta(seconds=min(10 * 2 ** max(failures - 1, 0), 3600))


def event_body(event: OutboxEvent) -> bytes:
    body = {
        "id": event.pk,
        "topic": event.topic,
        "occurred_at": event.occurred_at,
        "data": event.payload,
    }
    return json.dumps(body, cls=JSONEncoder, separators=(",", ":")).encode()


def endpoints_due(now=None) -> list[int]:
    """Endpoints that are sending (not paused, not backing off) and have deliveries due."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(
            status__in=DUE, next_attempt_at__lte=now, endpoint__is_active=True
        )
        .filter(Q(endpoint__retry_at__isnull=True) | Q(endpoint__retry_at__lte=now))
        .values_list("endpoint_id", flat=True)
        .distinct()
    )


def deliveries_send_round(*, batch_size: int = BATCH_SIZE) -> int:
    """One batch for every endpoint due, endpoints in parallel; returns deliveries sent."""
    endpoint_ids = endpoints_due()
    if not endpoint_ids:
        return 0
    threads = min(settings.OMNISTOCK["WEBHOOK_RELAY_THREADS"], len(endpoint_ids))
    if threads <= 1:
        return sum(endpoint_send_batch(endpoint_id=e, limit=batch_size) for e in endpoint_ids)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return sum(pool.map(_in_thread, endpoint_ids, [batch_size] * len(endpoint_ids)))


def _in_thread(endpoint_id: int, batch_size: int) -> int:
    try:
        return endpoint_send_batch(endpoint_id=endpoint_id, limit=batch_size)
    finally:
        connection.close()  # this thread's own database connection


def _claim(endpoint_id: int, *, limit: int, delivery_id: int | None = None) -> list:
    now = timezone.now()
    with transaction.atomic():
        due = WebhookDelivery.objects.filter(
            endpoint_id=endpoint_id, status__in=DUE, next_attempt_at__lte=now
        )
        if delivery_id is not None:
            due = due.filter(pk=delivery_id)
        batch = list(
            due.select_for_update(skip_locked=True, of=("self",))
            .select_related("event")
            .order_by("event_id")[:limit]
        )
        if batch:
            WebhookDelivery.objects.filter(pk__in=[d.pk for d in batch]).update(
                next_attempt_at=now + LEASE
            )
    return batch


def endpoint_send_batch(
    *, endpoint_id: int, limit: int = BATCH_SIZE, delivery_id: int | None = None
) -> int:
    """Claim and send a batch of one endpoint's due deliveries (or the one `delivery_id`);
    returns how many were delivered."""
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    batch = _claim(endpoint_id, limit=limit, delivery_id=delivery_id)
    if not batch:
        return 0
    sender = _Sender(endpoint)
    outcomes: list[_Outcome] = []
    deadline = time.monotonic() + LEASE.total_seconds() / 2
    try:
        for delivery in batch:
            outcome = sender.post(delivery)
            outcomes.append(outcome)
            if not outcome.ok or time.monotonic() > deadline:
                break
    finally:
        sender.close()
    _record(endpoint, batch, outcomes)
    return sum(1 for o in outcomes if o.ok)


@dataclass
class _Outcome:
    status: int | None
    error: str
    duration_ms: int
    at: object

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _Sender:
    """POSTs to one endpoint over one connection, reopened after an error."""

    def __init__(self, endpoint: WebhookEndpoint):
        self.endpoint = endpoint
        self.url = urlsplit(endpoint.url)
        self.path = (self.url.path or "/") + (f"?{self.url.query}" if self.url.query else "")
        self.connection = None

    def _connect(self):
        timeout = settings.OMNISTOCK["WEBHOOK_TIMEOUT_SECONDS"]
        if self.url.scheme == "https":
            return http.client.HTTPSConnection(self.url.netloc, timeout=timeout)
        if self.url.scheme == "http":
            return http.client.HTTPConnection(self.url.netloc, timeout=timeout)
        raise ValueError("only http(s) URLs are delivered")

    def post(self, delivery: WebhookDelivery) -> _Outcome:
        body = event_body(delivery.event)
        now = timezone.now()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "omnistock-webhooks/1",
            SIGNATURE_HEADER: signature_header(
                self.endpoint.secret, body, also=self.endpoint.signing_secrets(now)[1:]
            ),
            "X-Omnistock-Event-Id": str(delivery.event_id),
            "X-Omnistock-Topic": delivery.event.topic,
        }
        started = time.monotonic()
        status, error = None, ""
        try:
            self.connection = self.connection or self._connect()
            self.connection.request("POST", self.path, body=body, headers=headers)
            response = self.connection.getresponse()
            response.read()
            status = response.status
            if not 200 <= status < 300:
                error = f"HTTP {status}"
            if response.will_close:
                self.close()
        except Exception as exc:  # network errors of every kind are a failed attempt, not a crash
            error = f"{type(exc).__name__}: {exc}"[:500]
            self.close()
        return _Outcome(status, error, int((time.monotonic() - started) * 1000), timezone.now())

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _record(endpoint: WebhookEndpoint, batch: list, outcomes: list[_Outcome]) -> None:
    """Each attempted delivery's outcome, the untried rest released to the endpoint's next
    try, and the endpoint's back-off: in one transaction, a few statements per batch."""
    attempted, untried = batch[: len(outcomes)], batch[len(outcomes) :]
    failed = bool(outcomes) and not outcomes[-1].ok
    failures = endpoint.failures_in_a_row + 1 if failed else 0
    retry_at = outcomes[-1].at + backoff_delay(failures) if failed else None
    for delivery, outcome in zip(attempted, outcomes, strict=True):
        delivery.attempts += 1
        delivery.last_response_status = outcome.status
        delivery.last_error = outcome.error
        if outcome.ok:
            delivery.status, delivery.delivered_at = DeliveryStatus.SUCCEEDED, outcome.at
            delivery.next_attempt_at = None
        elif delivery.attempts >= settings.OMNISTOCK["WEBHOOK_MAX_ATTEMPTS"]:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.DEAD, None
        else:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = outcome.at + backoff_delay(delivery.attempts)
    for delivery in untried:  # not attempted: due again when the endpoint is
        delivery.next_attempt_at = retry_at or timezone.now()
    with transaction.atomic():
        WebhookDelivery.objects.bulk_update(
            batch,
            ["attempts", "last_response_status", "last_error", "status", "delivered_at",
             "next_attempt_at"],
        )  # fmt: skip
        DeliveryAttempt.objects.bulk_create(
            [
                DeliveryAttempt(
                    delivery=delivery,
                    attempted_at=outcome.at,
                    response_status=outcome.status,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                )
                for delivery, outcome in zip(attempted, outcomes, strict=True)
            ]
        )
        if failed or endpoint.failures_in_a_row:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
                failures_in_a_row=failures, retry_at=retry_at
            )

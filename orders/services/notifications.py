"""Messages owed to customers: written in the transaction that owes them (PendingNotification),
sent soon after commit by `order_notifications_send`."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone

from common.tasks import task_named
from orders.models import (
    Order,
    PendingNotification,
)
from orders.notifications import order_notification_send

logger = logging.getLogger(__name__)


def order_notify(order: Order, kind: str, **extra) -> None:
    """Owe the customer a message about `order`: written in this transaction, sent soon after
    it commits (`order_notifications_send`)."""
    notification_owed(order, kind, **extra).save(force_insert=True)
    notifications_send_after_commit()


def notifications_send_after_commit() -> None:
    """Send what this transaction owes soon after it commits. Robust: the change is committed
    whatever happens to the broker (a failed publish is logged; the beat sends the message)."""
    transaction.on_commit(notifications_kick, robust=True)


def notification_owed(order: Order, kind: str, **extra) -> PendingNotification:
    return PendingNotification(order=order, kind=kind, extra=extra)


# A commit that owes messages schedules the sending task NOTIFY_DELAY_SECONDS later, unless
# this process scheduled one less than that long ago: that task has not started yet, so it
# will see this commit's rows. Under load each process publishes one task per period, not one
# per order; a message waits at most that long (plus the queue). The beat task sends anything
# a lost task left behind.
NOTIFY_DELAY_SECONDS = 1.0


_last_kick = [float("-inf")]  # when this process last scheduled the task (time.monotonic())


def notifications_kick() -> None:
    order_notifications_send_task = task_named("orders.tasks.order_notifications_send_task")
    if order_notifications_send_task.app.conf.task_always_eager:
        order_notifications_send_task.delay()  # tasks run in-process: send now
        return
    now = time.monotonic()
    if now - _last_kick[0] < NOTIFY_DELAY_SECONDS:
        return
    order_notifications_send_task.apply_async(countdown=NOTIFY_DELAY_SECONDS)
    _last_kick[0] = now  # only once scheduled: after a failed publish the next commit tries


def order_notifications_send(
    *, batch_size: int = 100, time_budget_seconds: float = 30.0, lease_seconds: int = 300
) -> tuple[int, bool]:
    """Send the order messages that are due, oldest first, deleting each once sent; returns
    (how many were sent, whether some were left for lack of time).

    Rows are claimed in batches (SKIP LOCKED on PostgreSQL, so workers share the queue) by
    moving their `due_at` a lease ahead: a worker that dies mid-batch leaves them for the next
    run after the lease. Messages are deduplicated where they go out (`Notification.dedupe_key`),
    so a message sent twice by such a restart reaches the customer once. A transport failure
    (OSError) or any other error puts the row back with a growing delay; after
    PendingNotification.MAX_ATTEMPTS it stays, with its last error, for staff to see."""
    deadline = time.monotonic() + time_budget_seconds
    sent = 0
    while True:
        batch = _claim_due_notifications(batch_size, lease_seconds)
        if not batch:
            return sent, False
        for index, pending in enumerate(batch):
            if time.monotonic() >= deadline:  # out of time: the rest goes back to the queue
                _release_notifications(batch[index:])
                return sent, True
            try:
                order_notification_send(
                    order_id=pending.order_id, kind=pending.kind, extra=pending.extra
                )
            except SoftTimeLimitExceeded:
                _release_notifications(
                    batch[index:]
                )  # the task is being stopped: not this one's fault
                raise
            except Exception as error:  # noqa: BLE001 - one bad message must not stop the rest
                _retry_notification_later(pending, error)
                continue
            PendingNotification.objects.filter(pk=pending.pk).delete()
            sent += 1


def _release_notifications(claimed: list[PendingNotification]) -> None:
    """Claimed rows this run will not send: due again now, not after their lease."""
    PendingNotification.objects.filter(pk__in=[p.pk for p in claimed]).update(due_at=timezone.now())


def _claim_due_notifications(batch_size: int, lease_seconds: int) -> list[PendingNotification]:
    now = timezone.now()
    with transaction.atomic():
        batch = list(
            PendingNotification.objects.select_for_update(skip_locked=True)
            .filter(due_at__lte=now, attempts__lt=PendingNotification.MAX_ATTEMPTS)
            .order_by("due_at", "pk")[:batch_size]
        )
        PendingNotification.objects.filter(pk__in=[p.pk for p in batch]).update(
            due_at=now + timedelta(seconds=lease_seconds)
        )
    return batch


def _retry_notification_later(pending: PendingNotification, error: Exception) -> None:
    if not isinstance(error, OSError):  # not a transport hiccup: a bug or bad data, say so
        logger.exception("Order notification %s failed", pending.pk)
    attempts = pending.attempts + 1
    PendingNotification.objects.filter(pk=pending.pk).update(
        attempts=attempts,
        last_error=f"{type(error).__name__}: {error}"[:200],
        due_at=timezone.now() + timedelta(seconds=min(30 * 2**attempts, 6 * 3600)),
    )

"""Celery plumbing shared by every app, and the tasks of `common` itself."""

import logging
from datetime import timedelta
from importlib import import_module

from celery import current_app, shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common.idempotency import idempotency_records_purge
from common.models import QueuedTask, SchedulerHeartbeat

logger = logging.getLogger(__name__)

HEARTBEAT = "beat"


def task_named(name: str):
    """The Celery task registered under `name` ("<app>.tasks.<task>"). Services name the task
    they hand work to instead of importing their app's tasks module, which imports them. The
    module is imported here if nothing did yet (a worker imports every app's tasks at start; a
    web process only once it first queues one)."""
    import_module(name.rpartition(".")[0])
    return current_app.tasks[name]


def task_after_commit(name: str, *args) -> None:
    """Queue the task `name` for when the current transaction commits, durably: the task is
    recorded in the transaction (QueuedTask), published after the commit, and published by the
    beat's sweep if that publish failed. The caller's write is answered as committed whatever
    the broker does; the task may run twice (a publish whose row could not be deleted), so
    every task queued this way is safe to run twice."""
    queued = QueuedTask.objects.create(
        name=name, args=list(args), publish_after=timezone.now() + sweep_grace()
    )
    transaction.on_commit(lambda: _publish(queued), robust=True)


def sweep_grace() -> timedelta:
    """The commit publishes its own tasks within milliseconds; the sweep only takes rows older
    than this, so it does not publish a task its commit is publishing."""
    return timedelta(seconds=settings.TASKS_SWEEP_GRACE_SECONDS)


def _publish(queued: QueuedTask) -> bool:
    try:
        task_named(queued.name).delay(*queued.args)
    except Exception as exc:  # the broker is down, or (in-process) the task failed: retry later
        logger.warning("Task %s left for the sweep: %s", queued.name, exc)
        return False
    QueuedTask.objects.filter(pk=queued.pk).delete()
    return True


def queued_tasks_publish(*, limit: int = 500) -> int:
    """The sweep: publish the tasks whose after-commit publish failed. Stops at the first
    failure (the broker is still down) and backs the row off; returns how many went out."""
    published = 0
    with transaction.atomic():
        due = list(
            QueuedTask.objects.select_for_update(skip_locked=True)
            .filter(publish_after__lte=timezone.now())
            .order_by("publish_after", "pk")[:limit]
        )
        for queued in due:
            if not _publish(queued):
                backoff = min(sweep_grace() * 2**queued.attempts, timedelta(minutes=10))
                QueuedTask.objects.filter(pk=queued.pk).update(
                    attempts=F("attempts") + 1, publish_after=timezone.now() + backoff
                )
                break
            published += 1
    return published


@shared_task(time_limit=600)
def idempotency_records_purge_task() -> int:
    return idempotency_records_purge()


@shared_task(time_limit=30, soft_time_limit=25, expires=60)
def scheduler_heartbeat_task() -> None:
    """The beat sends this every 15 s; a worker running it proves both are alive (/healthz).
    Expires after a minute: a backlog of stale heartbeats would hide a worker that is late."""
    SchedulerHeartbeat.objects.update_or_create(
        name=HEARTBEAT, defaults={"last_run_at": timezone.now()}
    )


@shared_task(time_limit=120, soft_time_limit=100)
def queued_tasks_publish_task() -> int:
    return queued_tasks_publish()

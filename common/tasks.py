"""Celery plumbing shared by every app, and the tasks of `common` itself."""

from importlib import import_module

from celery import current_app, shared_task
from django.db import transaction
from django.utils import timezone

from common.idempotency import idempotency_records_purge
from common.models import SchedulerHeartbeat

HEARTBEAT = "beat"


def task_named(name: str):
    """The Celery task registered under `name` ("<app>.tasks.<task>"). Services name the task
    they hand work to instead of importing their app's tasks module, which imports them. The
    module is imported here if nothing did yet (a worker imports every app's tasks at start; a
    web process only once it first queues one)."""
    import_module(name.rpartition(".")[0])
    return current_app.tasks[name]


def task_after_commit(name: str, *args) -> None:
    """Queue the task `name` once the current transaction commits. Not robust: a publish that
    fails is reported to the caller, since no sweep would redo this work (payment captures,
    refunds, provider events). Work that has a sweep queues itself robustly instead (order
    notifications, the outbox relay)."""
    transaction.on_commit(lambda: task_named(name).delay(*args))


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

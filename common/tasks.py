"""Celery plumbing shared by every app, and the tasks of `common` itself."""

from importlib import import_module

from celery import current_app, shared_task
from django.db import transaction

from common.idempotency import idempotency_records_purge


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

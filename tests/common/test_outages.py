"""A broker that is down never turns a committed write into an error: the task waits in the
QueuedTask table and runs once the broker is back. Here against a broker that refuses
connections; tests/common/test_outages_live.py stops and restarts real servers."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from common.models import QueuedTask, SchedulerHeartbeat
from common.tasks import queued_tasks_publish, task_after_commit
from config.celery import app

pytestmark = pytest.mark.django_db(transaction=True)

NOBODY = "redis://127.0.0.1:1/0"  # connection refused at once


@pytest.fixture
def broker_down(settings):
    previous = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    app.conf.update(broker_url=NOBODY, task_always_eager=False)
    app.close()
    app.amqp._producer_pool = None
    settings.CELERY_TASK_ALWAYS_EAGER = False

    def back():
        app.conf.update(previous)
        app.close()
        app.amqp._producer_pool = None
        settings.CELERY_TASK_ALWAYS_EAGER = True

    yield back
    back()


def test_a_task_queued_while_the_broker_is_down_runs_once_it_is_back(broker_down):
    with transaction.atomic():  # a write that owes a task (the heartbeat: its effect is a row)
        task_after_commit("common.tasks.scheduler_heartbeat_task")
    # committed, the publish failed quietly: the task waits in the table, not in the answer
    assert not SchedulerHeartbeat.objects.exists()
    queued = QueuedTask.objects.get()
    assert queued.name == "common.tasks.scheduler_heartbeat_task"

    assert queued_tasks_publish() == 0  # the sweep leaves a fresh row to its commit's publish
    QueuedTask.objects.update(publish_after=timezone.now() - timedelta(seconds=1))
    assert queued_tasks_publish() == 0  # broker still down: backed off, kept
    queued.refresh_from_db()
    assert queued.attempts == 1 and queued.publish_after > timezone.now()

    broker_down()  # back (in-process here: the task runs as it is published)
    QueuedTask.objects.update(publish_after=timezone.now() - timedelta(seconds=1))
    assert queued_tasks_publish() == 1
    assert SchedulerHeartbeat.objects.exists() and not QueuedTask.objects.exists()

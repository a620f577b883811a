"""/healthz is the operator's view (503 when the schedule is late); /healthz/node is the load
balancer's (this node's database and broker only)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from common.models import SchedulerHeartbeat
from common.tasks import scheduler_heartbeat_task

pytestmark = pytest.mark.django_db


def test_a_fresh_heartbeat_is_healthy_and_reported(client):
    scheduler_heartbeat_task()  # what a worker does when the beat sends it

    answer = client.get("/healthz")

    assert answer.status_code == 200
    scheduler = answer.json()["checks"]["scheduler"]
    assert scheduler["ok"] and scheduler["seconds_ago"] < 5
    assert scheduler["last_run_at"].endswith("Z")


def test_a_late_beat_turns_healthz_503_but_not_the_node_check(client, settings):
    settings.SCHEDULER_LATE_AFTER_SECONDS = 120
    SchedulerHeartbeat.objects.create(
        name="beat", last_run_at=timezone.now() - timedelta(seconds=121)
    )

    answer = client.get("/healthz")

    assert answer.status_code == 503 and answer["Retry-After"]
    body = answer.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["scheduler"]["ok"] is False
    assert "late" in body["checks"]["scheduler"]["error"]
    assert client.get("/healthz/node").status_code == 200


def test_a_schedule_that_never_ran_is_reported_as_such(client):
    body = client.get("/healthz").json()

    assert body["checks"]["scheduler"]["ok"] is False
    assert "never ran" in body["checks"]["scheduler"]["error"]

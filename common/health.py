"""What /healthz reports: this node's dependencies, and whether the schedule runs."""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from common.models import SchedulerHeartbeat
from common.tasks import HEARTBEAT


def database_check() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # report, don't crash: this is what health checks are for
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "vendor": connection.vendor}


def broker_check() -> dict:
    broker_url = settings.CELERY_BROKER_URL
    if broker_url.startswith(("redis://", "rediss://")):
        try:
            import redis

            redis.Redis.from_url(broker_url, socket_timeout=2).ping()
        except Exception as exc:
            return {"ok": False, "error": type(exc).__name__}
        return {"ok": True}
    if broker_url == "memory://":
        return {"ok": True, "mode": "in-process (no broker configured)"}
    return {"ok": True, "mode": broker_url.split("://", 1)[0]}


def scheduler_check(*, database_ok: bool) -> dict:
    """Late when the beat's heartbeat has not run for SCHEDULER_LATE_AFTER_SECONDS: the beat or
    every worker is down, or the workers are too far behind. Either way reservations, pickups
    and webhooks stop moving, which an operator must see."""
    late_after = settings.SCHEDULER_LATE_AFTER_SECONDS
    if not database_ok:
        return {"ok": False, "error": "unknown: the database does not answer"}
    heartbeat = SchedulerHeartbeat.objects.filter(name=HEARTBEAT).first()
    if heartbeat is None:
        return {
            "ok": False,
            "last_run_at": None,
            "late_after_seconds": late_after,
            "error": "the schedule never ran: start a Celery worker and beat (make run does)",
        }
    age = timezone.now() - heartbeat.last_run_at
    check = {
        "ok": age <= timedelta(seconds=late_after),
        "last_run_at": heartbeat.last_run_at.isoformat().replace("+00:00", "Z"),
        "seconds_ago": round(age.total_seconds(), 1),
        "late_after_seconds": late_after,
    }
    if not check["ok"]:
        check["error"] = "the schedule is late: is the beat running, and a worker?"
    return check


def node_checks() -> dict[str, dict]:
    """What a load balancer asks of one node: can it serve requests."""
    return {"database": database_check(), "broker": broker_check()}


def all_checks() -> dict[str, dict]:
    checks = node_checks()
    checks["scheduler"] = scheduler_check(database_ok=checks["database"]["ok"])
    return checks

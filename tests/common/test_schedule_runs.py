"""The schedule runs by itself: nothing here calls a task. The service is started as a user
starts it — `manage.py run_embedded` (what `make run` serves: gunicorn + a Celery worker with its
beat on the filesystem broker, SQLite), and the README's production processes (gunicorn,
`celery worker`, `celery beat`) on PostgreSQL and Redis — then driven over HTTP with the demo
keys. A two-second hold expires, a ready order gets its reminder, an order not collected by its
deadline expires, and /healthz reports the beat's last run, turning 503 once the beat stops."""

import json
import os
import re
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings

from demo import data as demo
from tests.live import Http, free_port, manage, processes, service_env, wait_for

REMINDED_STORE, EXPIRING_STORE = "PARIS-RIVOLI", "LYON-REPUBLIQUE"
# The manager's settings for the test: a one-day hold (the 24 h reminder is due at once) at one
# store, a zero-day hold (the deadline is the moment it is ready) at the other; and the SKUs on
# their shelves.
SETUP = f"""
import json
from inventory.models import StockPosition
from stores.models import Location
Location.objects.filter(code="{REMINDED_STORE}").update(pickup_hold_days=1)
Location.objects.filter(code="{EXPIRING_STORE}").update(pickup_hold_days=0)
picks = {{}}
for code in ("{REMINDED_STORE}", "{EXPIRING_STORE}"):
    shelf = (StockPosition.objects.filter(location__code=code, on_hand__gte=4)
             .select_related("sku").order_by("sku__code").first())
    picks[code] = shelf.sku.code
print(json.dumps(picks))
"""
# Every interval job runs each second, the beat is late after 6 s without a heartbeat.
FAST_SCHEDULE = {"SCHEDULER_TICK_SECONDS": "1", "SCHEDULER_LATE_AFTER_SECONDS": "6"}


def _prepare(env: dict[str, str]) -> dict[str, str]:
    manage("migrate", "--noinput", "-v0", env=env)
    manage("load_demo", "-v0", env=env)
    return json.loads(manage("shell", "-c", SETUP, env=env).strip().splitlines()[-1])


def _ready_order(web: Http, till: Http, *, store: str, sku: str, n: int) -> str:
    status, placed = web.post(
        "/api/v1/orders/",
        {
            "customer": {
                "email": f"lou.bernard{n}@gmail.com",
                "first_name": "Lou",
                "language": "en",
            },
            "lines": [{"sku": sku, "quantity": 1, "unit_price": "19.00", "currency": "EUR"}],
            "fulfilment": {"type": "pickup", "store": store},
        },
        key=f"order-{n}",
    )
    assert status == 201, placed
    reference = placed["reference"]
    assert till.post(f"/api/v1/orders/{reference}/picking/", key=f"pick-{n}")[0] == 200
    assert till.post(f"/api/v1/orders/{reference}/ready/", key=f"ready-{n}")[0] == 200
    return reference


def _mails_about(mail_dir: Path, reference: str, subject: str) -> list[str]:
    texts = [path.read_text() for path in mail_dir.glob("*.log")]
    return [t for t in texts if reference in t and re.search(subject.format(ref=reference), t)]


def _walk_the_schedule(base: str, picks: dict[str, str], mail_dir: Path) -> None:
    web = Http(base, demo.DEMO_KEYS["demo-web-storefront"][0])
    till = Http(base, demo.DEMO_KEYS["demo-pos"][0])
    wait_for(lambda: web.get("/healthz")[0] == 200, timeout=60, what="/healthz 200")

    status, hold = till.post(  # a till holds an item for a customer at the counter
        "/api/v1/reservations/",
        {"lines": [{"sku": picks[REMINDED_STORE], "location": REMINDED_STORE, "quantity": 1}],
         "ttl_seconds": 2},
        key="hold-2s",
    )  # fmt: skip
    assert status == 201, hold
    hold_id = hold["reservations"][0]["id"] if "reservations" in hold else hold[0]["id"]
    reminded = _ready_order(web, till, store=REMINDED_STORE, sku=picks[REMINDED_STORE], n=1)
    expiring = _ready_order(web, till, store=EXPIRING_STORE, sku=picks[EXPIRING_STORE], n=2)

    wait_for(
        lambda: till.get(f"/api/v1/reservations/{hold_id}/")[1]["status"] == "expired",
        timeout=60,
        what="the 2-second hold to expire",
    )
    wait_for(
        lambda: web.get(f"/api/v1/orders/{expiring}/")[1]["status"] == "expired",
        timeout=60,
        what="the uncollected order to expire",
    )
    wait_for(
        lambda: (
            "pickup_reminder"
            in [event["kind"] for event in web.get(f"/api/v1/orders/{reminded}/")[1]["events"]]
        ),
        timeout=60,
        what="the pickup reminder",
    )
    # ... and the messages went out, through the worker (the web process sends none itself).
    wait_for(
        lambda: _mails_about(mail_dir, reminded, r"Subject: Reminder: order {ref}"),
        timeout=30,
        what="the reminder email",
    )
    wait_for(
        lambda: _mails_about(mail_dir, expiring, r"Subject: Order {ref} was not collected"),
        timeout=30,
        what="the expiry email",
    )
    assert web.get(f"/api/v1/orders/{reminded}/")[1]["status"] == "ready_for_pickup"
    assert len(_mails_about(mail_dir, reminded, r"Subject: Reminder")) == 1  # once, not per run

    status, health = web.get("/healthz")
    assert status == 200 and health["checks"]["scheduler"]["ok"], health
    assert health["checks"]["scheduler"]["seconds_ago"] < 6


def _common_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return service_env(
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(tmp_path / "mail"),
        CELERY_BEAT_SCHEDULE_FILENAME=str(tmp_path / "beat-schedule"),
        **FAST_SCHEDULE,
        **extra,
    )


@pytest.mark.embedded
def test_the_embedded_mode_runs_the_schedule_by_itself(tmp_path):
    env = _common_env(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CELERY_BROKER_FOLDER=str(tmp_path / "broker"),
    )
    picks = _prepare(env)
    port = free_port()
    launcher = ["manage.py", "run_embedded", "--port", str(port)]
    with processes({"run_embedded": launcher}, env=env, logs=tmp_path / "logs"):
        _walk_the_schedule(f"http://127.0.0.1:{port}", picks, tmp_path / "mail")


@pytest.fixture
def fresh_postgres_database():
    """A database of its own on the test cluster, for processes outside this test's
    transaction; dropped afterwards."""
    admin_url = settings.DATABASES["default"]
    name = f"schedule_{uuid.uuid4().hex[:8]}"
    params = {
        "host": admin_url["HOST"], "port": admin_url["PORT"], "user": admin_url["USER"],
        "password": admin_url["PASSWORD"] or None, "dbname": "postgres", "autocommit": True,
    }  # fmt: skip
    with psycopg.connect(**params) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    host = f"{admin_url['HOST']}:{admin_url['PORT']}"
    yield f"postgres://{admin_url['USER']}@{host}/{name}"
    with psycopg.connect(**params) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
@pytest.mark.redis
def test_the_production_processes_run_the_schedule_and_healthz_sees_a_dead_beat(
    tmp_path, fresh_postgres_database
):
    # A Redis database of its own: other tests' workers must not take these messages.
    redis_url = re.sub(r"/\d+$", "/7", os.environ["TEST_REDIS_URL"])
    env = _common_env(
        tmp_path,
        DATABASE_URL=fresh_postgres_database,
        REDIS_URL=redis_url,
        DEBUG="0",
        SECRET_KEY="test-only-secret-key",
        ALLOWED_HOSTS="127.0.0.1",
    )
    redis.Redis.from_url(redis_url).flushdb()
    picks = _prepare(env)
    port = free_port()
    commands = {  # the README's "Running in production", each process on its own
        "gunicorn": ["-m", "gunicorn", "config.wsgi", "--workers", "2",
                     "--bind", f"127.0.0.1:{port}"],
        "worker": ["-m", "celery", "-A", "config", "worker", "--loglevel=info",
                   "--pool=threads", "--concurrency=2"],
        "beat": ["-m", "celery", "-A", "config", "beat", "--loglevel=info"],
    }  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with processes(commands, env=env, logs=tmp_path / "logs") as running:
        _walk_the_schedule(base, picks, tmp_path / "mail")

        # The operator's signal: the beat stops, /healthz turns 503 while the node check stays up.
        beat_log = tmp_path / "logs" / "beat.log"
        assert "Sending due task scheduler-heartbeat" in beat_log.read_text()
        running["beat"].terminate()
        running["beat"].wait(timeout=20)
        health = Http(base)
        status, body = wait_for(
            lambda: (lambda answer: answer if answer[0] == 503 else None)(health.get("/healthz")),
            timeout=30,
            what="/healthz to see the beat is gone",
        )
        assert body["checks"]["scheduler"]["ok"] is False
        assert "late" in body["checks"]["scheduler"]["error"]
        assert health.get("/healthz/node")[0] == 200

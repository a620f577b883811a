"""Production settings refuse to start without the shared services their guarantees need, and
what gates a write is never read from a stale per-process copy."""

import os
import subprocess
import sys

from django.conf import settings

from common.models import ApiKey

SETUP = "import django; django.setup(); print('started')"


def _start(**env):
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    environ.update(DJANGO_SETTINGS_MODULE="config.settings", SECRET_KEY="test-only-key", **env)
    return subprocess.run(  # noqa: S603 - our own interpreter, a fixed script
        [sys.executable, "-c", SETUP],
        cwd=settings.BASE_DIR,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_debug_off_without_redis_refuses_to_start_and_says_why():
    refused = _start(DEBUG="0")

    assert refused.returncode != 0
    assert "DEBUG=0 needs REDIS_URL" in refused.stderr


def test_debug_off_with_redis_or_an_explicit_single_process_trial_starts():
    assert _start(DEBUG="0", REDIS_URL="redis://127.0.0.1:1/0").stdout.strip() == "started"
    assert _start(DEBUG="0", ALLOW_PER_PROCESS_STATE="1").stdout.strip() == "started"
    assert _start(DEBUG="1").stdout.strip() == "started"  # the embedded mode


def test_a_key_revoked_by_another_process_stops_at_the_next_request(api_client_factory, db):
    client = api_client_factory(scopes=["stock:read"])
    assert client.get("/api/v1/availability/?skus=NONE").status_code != 401

    ApiKey.objects.update(is_active=False)  # the admin of another process: no signal seen here

    assert client.get("/api/v1/availability/?skus=NONE").status_code == 401

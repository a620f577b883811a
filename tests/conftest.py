import itertools
import os

import pytest
from django.db import connection
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from common.auth import ALL_SCOPES
from tests.factories import make_api_key

_keys = itertools.count(1)

# CI replays the same examples on every run (a red CI is then reproducible, never a dice roll);
# developers' runs keep exploring new ones.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # The relay's threads open their own database connections, which cannot see the rows of a
    # test's open transaction: in-process tests send from the test's thread (the PostgreSQL
    # relay test commits its rows and runs the threads).
    settings.OMNISTOCK = {**settings.OMNISTOCK, "WEBHOOK_RELAY_THREADS": 1}
    from django.core.cache import caches

    for alias in ("default", "local", "counters"):
        caches[alias].clear()


@pytest.fixture(autouse=True)
def _require_real_servers(request):
    """Tests marked postgres/redis FAIL (never skip) when the server is not there: `make test`
    starts both, and CI must not pass by silently skipping the concurrency guarantees."""
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.fail(
            "This test needs PostgreSQL: run `make test` (it starts a throwaway cluster) "
            "or deselect with -m 'not postgres'."
        )
    if request.node.get_closest_marker("redis") and not os.environ.get("TEST_REDIS_URL"):
        pytest.fail(
            "This test needs Redis: run `make test` (it starts a throwaway server) "
            "or deselect with -m 'not redis'."
        )


@pytest.fixture
def api_client_factory(db):
    """api_client_factory(scopes=[...], channel="web") -> APIClient authenticated by an API key."""

    def build(*, scopes=None, channel: str = "web") -> APIClient:
        _, raw = make_api_key(
            name=f"test-{next(_keys)}",
            channel=channel,
            scopes=ALL_SCOPES if scopes is None else scopes,
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
        return client

    return build


@pytest.fixture
def web_client(api_client_factory) -> APIClient:
    return api_client_factory(channel="web")


@pytest.fixture
def till_client(api_client_factory) -> APIClient:
    return api_client_factory(channel="store")

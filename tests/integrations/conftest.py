"""Fixtures shared by the integration tests: one Paris store with a till, one SKU, one POS
integration; a real loopback HTTP receiver for outbound webhooks."""

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from integrations.models import PosIntegration, PosTill
from tests.factories import LocationFactory, SkuFactory


@pytest.fixture
def store(db):
    return LocationFactory(code="PARIS01", name="Paris Rivoli")


@pytest.fixture
def sku(db):
    return SkuFactory(code="TEE-M")


@pytest.fixture
def integration(store):
    integration = PosIntegration.objects.create(
        slug="paris-tills", name="Paris tills", secret="s3cret"
    )
    integration.stores.add(store)
    PosTill.objects.create(integration=integration, location=store, code="T1")
    return integration


class Receiver:
    """A real HTTP server on loopback that records what it receives."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.requests = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def committing(django_capture_on_commit_callbacks):
    """Run after-commit hooks as a real commit would (the test transaction never commits)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def receiver():
    created = []

    def build(statuses=()):
        r = Receiver(statuses)
        created.append(r)
        return r

    yield build
    for r in created:
        r.close()

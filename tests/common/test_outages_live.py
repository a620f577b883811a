"""Real servers stopped and restarted under requests, on the README's production processes
(gunicorn, a Celery worker and beat; PostgreSQL and Redis of this test's own):

- Redis stopped: orders, reservations and POS receipts answer 201/202 — they are committed — and
  their work (confirmation emails, the till's sale applied) is done once Redis is back;
- PostgreSQL stopped then started under a steady order load: every answer is 2xx or a JSON 503
  with Retry-After, a client retrying with the same Idempotency-Key ends with exactly one order
  per key, and nothing is lost.
"""

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from common.signing import signature_header
from demo import data as demo
from tests.live import Http, production_stack, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

STORE, SKU = "PARIS-RIVOLI", "TEE-NVY-M"  # on the demo's shelf (demo.README_SHELF)


@pytest.fixture
def production(tmp_path):
    with production_stack(tmp_path) as (bases, cluster, redis_server, mail_dir):
        yield bases[0], cluster, redis_server, mail_dir


def _order(web: Http, n: int, key: str):
    """(status, body, headers) of a home-delivery web order (shipped from the warehouse)."""
    return web.exchange(
        "POST",
        "/api/v1/orders/",
        {
            "customer": {"email": f"outage.{n}@gmail.com", "first_name": "Lou", "language": "en"},
            "lines": [{"sku": SKU, "quantity": 1, "unit_price": "19.00", "currency": "EUR"}],
            "fulfilment": {"type": "delivery", "address": {
                "name": "Lou Petit", "line1": "3 rue Oberkampf", "postcode": "75011",
                "city": "Paris", "country": "FR", "latitude": "48.864", "longitude": "2.374"}},
        },
        key,
    )  # fmt: skip


def _pos_sale(base: str, receipt: str):
    slug, secret = demo.DEMO_POS
    body = json.dumps(
        {
            "event_id": f"outage-{receipt}",
            "type": "sale",
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "store": STORE,
            "till": "T1",
            "data": {
                "receipt": receipt,
                "currency": "EUR",
                "lines": [{"sku": SKU, "quantity": 1, "unit_price": "29.90"}],
                "tenders": [{"kind": "card", "amount": "29.90"}],
            },
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}/api/v1/pos/{slug}/events/",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Omnistock-Signature": signature_header(secret, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def _mail_for(mail_dir: Path, email: str) -> bool:
    return any(email in path.read_text() for path in mail_dir.glob("*.log"))


def test_with_redis_stopped_writes_are_answered_as_committed_and_their_work_runs_after(
    production,
):
    base, _, redis_server, mail_dir = production
    web = Http(base, demo.DEMO_KEYS["demo-web-storefront"][0])
    till = Http(base, demo.DEMO_KEYS["demo-pos"][0])
    back_office = Http(base, demo.DEMO_KEYS["demo-back-office"][0])

    redis_server.stop()
    placed = [_order(web, n, key=f"redis-down-{n}") for n in range(3)]
    hold = till.post(
        "/api/v1/reservations/",
        {"lines": [{"sku": SKU, "location": STORE, "quantity": 1}], "ttl_seconds": 600},
        key="redis-down-hold",
    )
    sale = _pos_sale(base, "R-REDIS-DOWN")
    health = Http(base).get("/healthz")

    assert [answer[0] for answer in placed] == [201, 201, 201], placed
    assert hold[0] == 201, hold
    assert sale[0] == 202, sale
    assert health[0] == 503 and health[1]["checks"]["broker"]["ok"] is False

    redis_server.start()
    for n in range(3):  # the confirmations, owed by the commits, go out once Redis is back
        wait_for(lambda n=n: _mail_for(mail_dir, f"outage.{n}@gmail.com"), timeout=60,
                 what=f"the confirmation of order {n}")  # fmt: skip
    wait_for(  # ... and the till's sale is applied (the POS pending sweep)
        lambda: back_office.get("/api/v1/stock/movements/?reference=R-REDIS-DOWN")[1]["count"],
        timeout=60,
        what="the till's sale applied",
    )
    wait_for(lambda: Http(base).get("/healthz")[0] == 200, timeout=60, what="healthz back")


def test_a_postgres_outage_answers_503_with_retry_after_and_loses_or_doubles_nothing(
    production,
):
    base, cluster, _, _ = production
    web = Http(base, demo.DEMO_KEYS["demo-web-storefront"][0])
    back_office = Http(base, demo.DEMO_KEYS["demo-back-office"][0])
    restock = back_office.post(
        "/api/v1/stock/receipts/",
        {"location": "WH-IDF", "lines": [{"sku": SKU, "quantity": 5000}], "reference": "PO-1"},
        key="restock",
    )
    assert restock[0] == 201, restock
    orders_before = back_office.get("/api/v1/orders/?channel=web&page_size=1")[1]["count"]
    answers: list[tuple[int, dict, dict]] = []
    keys_done: list[str] = []
    stop = threading.Event()

    def shopper(worker: int) -> None:
        """Places orders one after the other; on a 503, retries with the same key."""
        n = 0
        while not stop.is_set():
            key = f"pg-{worker}-{n}"
            while True:
                status, payload, headers = _order(web, worker * 1000 + n, key)
                answers.append((status, payload, headers))
                if status != 503:
                    break
                time.sleep(0.2)
            keys_done.append(key)
            n += 1

    shoppers = [threading.Thread(target=shopper, args=(w,)) for w in range(3)]
    for thread in shoppers:
        thread.start()
    time.sleep(2)
    cluster.stop()
    node = Http(base).get("/healthz/node")
    till_post = _pos_sale(base, "R-PG-DOWN")  # a till's post while the database is down
    time.sleep(2)
    cluster.start()
    time.sleep(3)
    stop.set()
    for thread in shoppers:
        thread.join(timeout=120)

    statuses = {status for status, _, _ in answers}
    assert statuses <= {201, 503}, [a[:2] for a in answers if a[0] not in (201, 503)][:3]
    unavailable = [(payload, headers) for status, payload, headers in answers if status == 503]
    assert unavailable, "the outage was not seen: no 503 answered"
    assert {p["code"] for p, _ in unavailable} <= {"database_unavailable", "service_unavailable"}
    assert all(headers.get("Retry-After") for _, headers in unavailable)
    assert till_post[0] == 503 and till_post[1].get("Retry-After"), till_post
    assert node[0] == 503
    # Exactly one order per key: none lost, none doubled by the retries.
    total = back_office.get("/api/v1/orders/?channel=web&page_size=500")[1]["count"]
    assert total - orders_before == len(keys_done)  # the demo's own orders were there before

"""Scale-out stays proven: two app nodes (two gunicorn instances, as behind a load balancer) on
one PostgreSQL, 40 clients racing through both for the last units of a shelf — exactly as many
holds are granted as there are units, the others are refused with 409, nothing oversold."""

import threading

import pytest

from demo import data as demo
from tests.live import Http, production_stack

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

STORE, SKU = "PARIS-RIVOLI", "TEE-NVY-M"  # 8 on the demo's shelf (demo.README_SHELF)


def test_two_app_nodes_racing_for_the_last_units_oversell_nothing(tmp_path):
    with production_stack(tmp_path, nodes=2) as (bases, _, _, _):
        key = demo.DEMO_KEYS["demo-pos"][0]  # a till may hold the shelf's last units
        shelf = demo.README_SHELF[STORE][SKU]
        answers: list[tuple[int, dict]] = []
        start = threading.Barrier(40)

        def client(n: int) -> None:
            node = Http(bases[n % 2], key)
            start.wait()
            answers.append(
                node.post(
                    "/api/v1/reservations/",
                    {"lines": [{"sku": SKU, "location": STORE, "quantity": 1}]},
                    key=f"race-{n}",
                )
            )

        threads = [threading.Thread(target=client, args=(n,)) for n in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        statuses = sorted(status for status, _ in answers)
        assert statuses.count(201) == shelf, statuses
        assert statuses.count(409) == 40 - shelf
        assert {body["code"] for status, body in answers if status == 409} == {"insufficient_stock"}
        positions = Http(bases[0], key).get(f"/api/v1/stock/positions/?sku={SKU}&location={STORE}")
        position = positions[1]["results"][0]
        assert (position["on_hand"], position["reserved"]) == (shelf, shelf)

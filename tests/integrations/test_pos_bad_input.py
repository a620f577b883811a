"""A till's malformed event gets a JSON 400 and applies nothing: bodies nested 100,000 deep,
lone surrogates in ids, numbers that overflow (1e400), NaN — single events and batches."""

import json

import pytest

from integrations.models import PosEvent, PosEventStatus
from inventory.models import StockMovement
from tests.integrations.test_pos import post, sale
from tests.integrations.test_pos_batch import BATCH_URL

pytestmark = pytest.mark.django_db

DEEP = b"[" * 100_000 + b"]" * 100_000


def _raw_sale(**replace: str) -> bytes:
    """A valid sale's JSON text with some literal tokens replaced (1e400 is no Python value)."""
    raw = json.dumps(sale("E-BAD", quantity=1))
    for old, new in replace.items():
        raw = raw.replace(old, new, 1)
    return raw.encode()


CASES = {
    "nested 100k deep": DEEP,
    "an object nested 30k deep": b'{"a":' * 30_000 + b"1" + b"}" * 30_000,
    "a lone surrogate in the receipt": _raw_sale(**{'"R-E-BAD"': '"R-\\ud800"'}),
    "a lone surrogate in the event id": _raw_sale(**{'"E-BAD"': '"\\udfff"'}),
    "1e400 as a quantity": _raw_sale(**{'"quantity": 1': '"quantity": 1e400'}),
    "1e400 as a price": _raw_sale(**{'"unit_price": "29.90"': '"unit_price": 1e400'}),
    "NaN as a quantity": _raw_sale(**{'"quantity": 1': '"quantity": NaN'}),
    "an integer of 5,000 digits": _raw_sale(**{'"quantity": 1': '"quantity": ' + "9" * 5000}),
}


@pytest.mark.parametrize("raw", CASES.values(), ids=CASES.keys())
def test_a_malformed_event_is_a_400_and_applies_nothing(client, integration, store, sku, raw):
    answer = post(client, None, raw=raw)

    assert answer.status_code == 400, answer.content[:300]
    assert answer.json()["code"] in {"malformed_request", "invalid"}
    assert not StockMovement.objects.exists()
    assert not PosEvent.objects.exclude(status=PosEventStatus.REJECTED).exists()


@pytest.mark.parametrize(
    "raw",
    [DEEP, b'{"events": [' + _raw_sale(**{'"E-BAD"': '"\\ud800"'}) + b"]}"],
    ids=["nested 100k deep", "a lone surrogate inside the batch"],
)
def test_a_malformed_batch_is_a_400_and_applies_nothing(client, integration, store, sku, raw):
    answer = post(client, None, raw=raw, url=BATCH_URL)

    assert answer.status_code == 400, answer.content[:300]
    assert answer.json()["code"] == "malformed_request"
    assert not StockMovement.objects.exists()

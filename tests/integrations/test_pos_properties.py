"""Property: whatever a till (or an attacker with the secret) sends, a refused event changes
nothing in the ledger."""

import json

import pytest
from django.test import TestCase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.signing import signature_header
from integrations.models import PosEvent, PosEventStatus, PosIntegration, PosTill
from inventory.models import StockMovement, StockPosition
from tests.factories import LocationFactory, SkuFactory

pytestmark = pytest.mark.django_db

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
line = st.fixed_dictionaries(
    {
        "sku": st.sampled_from(["TEE-M", "NOPE", "", "x" * 80]) | json_values,
        "quantity": st.one_of(st.integers(-5, 5), st.floats(-2, 2), st.text(max_size=3), st.none()),
        "unit_price": st.one_of(st.text(max_size=6), st.integers(-5, 50), st.none()),
    }
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.one_of(st.text(max_size=120), st.integers(), st.none()),
        "type": st.sampled_from(["sale", "return", "stock_count", "pickup_handover", "x"]),
        "occurred_at": st.one_of(
            st.sampled_from(["2026-11-22T10:00:00+01:00", "yesterday"]), json_values
        ),
        "store": st.sampled_from(["PARIS01", "LYON01", ""]) | json_values,
        "till": st.sampled_from(["T1", "T9"]) | json_values,
        "data": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {
                    "receipt": st.text(max_size=70),
                    "currency": st.sampled_from(["EUR", "eur", "EURO"]),
                    "lines": st.lists(line, max_size=3),
                }
            ),
        ),
    },
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=st.one_of(envelopes, json_values))
def test_a_refused_event_never_changes_the_ledger(client, body):
    store = LocationFactory(code="PARIS01") if not StockPosition.objects.exists() else None
    if store is not None:
        SkuFactory(code="TEE-M")
        integration = PosIntegration.objects.create(slug="p", name="p", secret="k")
        integration.stores.add(store)
        PosTill.objects.create(integration=integration, location=store, code="T1")
        from inventory.models import Sku
        from inventory.services import stock_receive

        stock_receive(
            location_id=store.pk, lines=[(Sku.objects.get().pk, 5)], idempotency_key="seed"
        )
    before = sorted(StockMovement.objects.values_list("pk", flat=True))
    accepted_before = PosEvent.objects.exclude(status=PosEventStatus.REJECTED).count()
    raw = json.dumps(body).encode()

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.generic(
            "POST",
            "/api/v1/pos/p/events/",
            raw,
            content_type="application/json",
            HTTP_X_OMNISTOCK_SIGNATURE=signature_header("k", raw),
        )

    if response.status_code >= 400:
        assert 400 <= response.status_code < 500
        assert set(response.json()) == {"code", "message", "details"}
        assert sorted(StockMovement.objects.values_list("pk", flat=True)) == before
        assert PosEvent.objects.exclude(status=PosEventStatus.REJECTED).count() == accepted_before


valid_sales = st.builds(
    lambda n, quantity: {
        "event_id": f"ok-{n}",
        "type": "sale",
        "occurred_at": "2026-11-22T10:00:00+01:00",
        "store": "PARIS01",
        "till": "T1",
        "data": {
            "receipt": f"R{n}",
            "currency": "EUR",
            "lines": [{"sku": "TEE-M", "quantity": quantity, "unit_price": "9.90"}],
        },
    },
    st.integers(0, 30),
    st.integers(1, 3),
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(items=st.lists(st.one_of(valid_sales, envelopes, json_values), min_size=1, max_size=6))
def test_in_a_batch_only_the_accepted_events_move_stock_and_each_once(client, items):
    """Random batches of valid sales (some repeated), random envelopes and random JSON: the
    stock moves by exactly the accepted events' units, whatever else the batch holds."""
    if not PosIntegration.objects.filter(slug="b").exists():
        store = LocationFactory(code="PARIS01")
        SkuFactory(code="TEE-M")
        integration = PosIntegration.objects.create(slug="b", name="b", secret="k")
        integration.stores.add(store)
        PosTill.objects.create(integration=integration, location=store, code="T1")
    on_hand_before = sum(StockPosition.objects.values_list("on_hand", flat=True))
    raw = json.dumps({"events": items}).encode()

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.generic(
            "POST",
            "/api/v1/pos/b/events/batch/",
            raw,
            content_type="application/json",
            HTTP_X_OMNISTOCK_SIGNATURE=signature_header("k", raw),
        )

    if response.status_code == 400:  # not storable JSON: a NUL or an infinity anywhere
        assert response.json()["code"] == "malformed_request"
        assert "\\u0000" in raw.decode() or "Infinity" in raw.decode()
        assert sum(StockPosition.objects.values_list("on_hand", flat=True)) == on_hand_before
        return
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    accepted_units = sum(
        line["quantity"]
        for item, result in zip(items, results, strict=True)
        if result["status"] == "accepted"
        for line in item["data"]["lines"]
    )
    on_hand_after = sum(StockPosition.objects.values_list("on_hand", flat=True))
    assert on_hand_before - on_hand_after == accepted_units
    for result in results:
        if result["status"] == "rejected":
            assert set(result["error"]) == {"code", "message", "details"}
        if result["status"] == "accepted":
            assert PosEvent.objects.get(pk=result["event"]).status == PosEventStatus.PROCESSED

"""The stock API as a storefront, a till and the back office use it."""

import json

import pytest

from common.models import Scope
from inventory.models import Reservation, StockMovement, StockOperation
from tests.factories import LocationFactory, SkuFactory, WarehouseFactory
from tests.inventory.conftest import position, receive

pytestmark = pytest.mark.django_db


def snapshot():
    return (
        StockOperation.objects.count(),
        StockMovement.objects.count(),
        Reservation.objects.count(),
        sorted(StockMovement.objects.values_list("position_id", "on_hand_delta")),
    )


def post(client, url, body, key="k-1", **extra):
    return client.post(
        url,
        data=json.dumps(body),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
        **extra,
    )


# ---- authentication and errors ---------------------------------------------------------------


def test_missing_or_wrong_api_key_gets_401_json(client, db):
    response = client.get("/api/v1/availability/?skus=A")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"

    response = client.get("/api/v1/availability/?skus=A", HTTP_AUTHORIZATION="Api-Key nope")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_key_without_the_scope_gets_403(api_client_factory, store, sku):
    reader = api_client_factory(scopes=[Scope.STOCK_READ])
    before = snapshot()

    response = post(
        reader,
        "/api/v1/stock/receipts/",
        {"location": store.code, "lines": [{"sku": sku.code, "quantity": 1}]},
    )

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert snapshot() == before


def test_revoked_key_is_refused(api_client_factory, store):
    from common.models import ApiKey

    client = api_client_factory()
    assert client.get("/api/v1/locations/").status_code == 200
    ApiKey.objects.update(is_active=False)
    assert client.get("/api/v1/locations/").status_code == 401


def test_a_key_s_last_use_is_written_once_a_minute_not_on_every_request(api_client_factory, store):
    from common.models import ApiKey

    client = api_client_factory()
    assert ApiKey.objects.get().last_used_at is None
    client.get("/api/v1/locations/")
    first_use = ApiKey.objects.get().last_used_at
    ApiKey.objects.update(last_used_at=None)
    client.get("/api/v1/locations/")

    assert first_use is not None
    assert ApiKey.objects.get().last_used_at is None  # within the minute: not written again


def test_unknown_url_is_json_404(web_client):
    response = web_client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# ---- receipts and bad input ------------------------------------------------------------------


def test_receipt_then_retry_with_the_same_key_returns_the_first_result(web_client, store, sku):
    body = {
        "location": store.code,
        "lines": [{"sku": sku.code, "quantity": 12}],
        "reference": "BL-2026-001",
    }

    first = post(web_client, "/api/v1/stock/receipts/", body, key="bl-001")
    again = post(web_client, "/api/v1/stock/receipts/", body, key="bl-001")

    assert first.status_code == 201 and again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert position(store, sku).on_hand == 12
    assert first.json()["movements"][0]["kind"] == "receipt"


def test_same_key_with_another_body_is_422_and_changes_nothing(web_client, store, sku):
    post(
        web_client,
        "/api/v1/stock/receipts/",
        {"location": store.code, "lines": [{"sku": sku.code, "quantity": 12}]},
        key="bl-002",
    )
    before = snapshot()

    response = post(
        web_client,
        "/api/v1/stock/receipts/",
        {"location": store.code, "lines": [{"sku": sku.code, "quantity": 13}]},
        key="bl-002",
    )

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert snapshot() == before


def test_write_without_idempotency_key_is_refused(web_client, store, sku):
    response = web_client.post(
        "/api/v1/stock/receipts/",
        data=json.dumps({"location": store.code, "lines": [{"sku": sku.code, "quantity": 1}]}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"
    assert StockMovement.objects.count() == 0


def test_an_over_long_idempotency_key_is_a_400_and_reserves_nothing(web_client, store, sku):
    """Up to 200 characters; longer would not fit the ledger's keys with their suffixes."""
    from tests.inventory.conftest import receive

    receive(store, sku, 5)
    before = snapshot()
    body = {"lines": [{"sku": sku.code, "location": store.code, "quantity": 1}]}

    fits = post(web_client, "/api/v1/reservations/", body, key="k" * 200)
    too_long = post(web_client, "/api/v1/reservations/", body, key="k" * 201)

    assert fits.status_code == 201
    assert too_long.status_code == 400
    assert too_long.json()["details"] == {"Idempotency-Key": ["too long"]}
    assert snapshot()[2] == before[2] + 1


@pytest.mark.parametrize("quantity", [0, -3, 1.5, "2", None, True, 10**7])
def test_bad_quantities_get_400_with_field_details_and_nothing_moves(
    web_client, store, sku, quantity
):
    receive(store, sku, 5)
    before = snapshot()

    response = post(
        web_client,
        "/api/v1/reservations/",
        {"lines": [{"sku": sku.code, "location": store.code, "quantity": quantity}]},
    )

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "lines" in body["details"]
    assert snapshot() == before


def test_unknown_sku_and_location_get_404_naming_them(web_client, store, sku):
    before = snapshot()
    response = post(
        web_client,
        "/api/v1/reservations/",
        {"lines": [{"sku": "NOPE", "location": store.code, "quantity": 1}]},
    )
    assert response.status_code == 404
    assert response.json() == {
        "code": "unknown_sku",
        "message": "Unknown SKU code(s): NOPE.",
        "details": {"sku": ["NOPE"]},
    }

    response = post(
        web_client,
        "/api/v1/reservations/",
        {"lines": [{"sku": sku.code, "location": "MARS", "quantity": 1}]},
        key="k-2",
    )
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_location"
    assert snapshot() == before


def test_malformed_json_gets_400(web_client):
    response = web_client.post(
        "/api/v1/reservations/",
        data="{not json",
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="x",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_over_long_strings_are_refused(web_client, store, sku):
    response = post(
        web_client,
        "/api/v1/stock/receipts/",
        {
            "location": store.code,
            "lines": [{"sku": sku.code, "quantity": 1}],
            "reference": "x" * 500,
        },
    )
    assert response.status_code == 400
    assert "reference" in response.json()["details"]
    assert StockMovement.objects.count() == 0


def test_reserving_more_than_available_is_409_naming_the_line(web_client, store, sku):
    receive(store, sku, 2)
    before = snapshot()

    response = post(
        web_client,
        "/api/v1/reservations/",
        {"lines": [{"sku": sku.code, "location": store.code, "quantity": 3}]},
    )

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "insufficient_stock"
    assert body["details"]["lines"][0] == {
        "sku": sku.code,
        "location": store.code,
        "requested": 3,
        "available": 2,
        "available_at_till": 2,
        "on_hand": 2,
        "reserved": 0,
    }
    assert snapshot() == before


def test_reservation_release_and_commit_over_http(web_client, store, sku):
    receive(store, sku, 5)
    created = post(
        web_client,
        "/api/v1/reservations/",
        {
            "lines": [{"sku": sku.code, "location": store.code, "quantity": 3}],
            "reference": "ORDER-1",
            "ttl_seconds": 600,
        },
    )
    assert created.status_code == 201
    reservation_id = created.json()["reservations"][0]["id"]

    released = post(
        web_client, f"/api/v1/reservations/{reservation_id}/release/", {"quantity": 1}, key="rel-1"
    )
    committed = post(web_client, f"/api/v1/reservations/{reservation_id}/commit/", {}, key="com-1")

    assert released.json()["open_quantity"] == 2
    assert committed.json()["status"] == "committed"
    assert (position(store, sku).on_hand, position(store, sku).reserved) == (3, 0)
    again = post(web_client, f"/api/v1/reservations/{reservation_id}/release/", {}, key="rel-2")
    assert again.status_code == 409
    assert again.json()["code"] == "reservation_not_open"


def test_unknown_reservation_is_404(web_client):
    response = post(web_client, "/api/v1/reservations/999999/release/", {})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_adjustment_and_count_over_http(web_client, store, sku):
    receive(store, sku, 5)
    response = post(
        web_client,
        "/api/v1/stock/adjustments/",
        {"location": store.code, "sku": sku.code, "delta": -2, "reason": "damage"},
    )
    assert response.status_code == 201
    response = post(
        web_client,
        "/api/v1/stock/counts/",
        {"location": store.code, "lines": [{"sku": sku.code, "counted": 1}]},
        key="c-1",
    )
    assert response.status_code == 201
    assert response.json()["lines"] == [
        {"sku": sku.code, "expected": 3, "counted": 1, "difference": -2}
    ]
    assert position(store, sku).on_hand == 1


def test_transfer_life_cycle_over_http(web_client, store, sku):
    warehouse = WarehouseFactory()
    receive(warehouse, sku, 10)
    created = post(
        web_client,
        "/api/v1/transfers/",
        {
            "source": warehouse.code,
            "destination": store.code,
            "lines": [{"sku": sku.code, "quantity": 4}],
        },
    )
    assert created.status_code == 201
    transfer_id = created.json()["id"]

    shipped = post(web_client, f"/api/v1/transfers/{transfer_id}/ship/", {}, key="ship")
    received = post(
        web_client,
        f"/api/v1/transfers/{transfer_id}/receive/",
        {"lines": [{"sku": sku.code, "quantity": 4}]},
        key="rcv",
    )

    assert shipped.json()["status"] == "shipped"
    assert received.json()["status"] == "received"
    assert position(store, sku).on_hand == 4
    assert position(warehouse, sku).on_hand == 6
    illegal = post(web_client, f"/api/v1/transfers/{transfer_id}/ship/", {}, key="ship-2")
    assert illegal.status_code == 409
    assert illegal.json()["code"] == "transfer_state"


# ---- availability ----------------------------------------------------------------------------


def test_availability_for_many_skus_per_location_and_network(api_client_factory, store, sku):
    warehouse = WarehouseFactory()
    other = SkuFactory()
    receive(store, sku, 3)
    receive(warehouse, sku, 10)
    from inventory.services import safety_stock_set

    safety_stock_set(location_id=store.pk, quantity=1)

    web = api_client_factory(scopes=[Scope.STOCK_READ], channel="web")
    till = api_client_factory(scopes=[Scope.STOCK_READ], channel="store")
    url = f"/api/v1/availability/?skus={sku.code},{other.code}"

    web_results = web.get(url).json()["results"]
    till_results = till.get(url).json()["results"]

    assert web_results[0] == {
        "sku": sku.code,
        "available": 12,
        "locations": [
            {"location": store.code, "available": 2},
            {"location": warehouse.code, "available": 10},
        ],
    }
    assert web_results[1] == {"sku": other.code, "available": 0, "locations": []}
    assert till_results[0]["locations"][0] == {"location": store.code, "available": 3}


def test_availability_refuses_too_many_skus(web_client):
    codes = ",".join(f"S{i}" for i in range(501))
    response = web_client.get(f"/api/v1/availability/?skus={codes}")
    assert response.status_code == 400


def test_availability_of_100_skus_takes_a_constant_number_of_queries(
    web_client, store, django_assert_max_num_queries
):
    skus = SkuFactory.create_batch(100)
    from inventory.services import stock_receive

    stock_receive(location_id=store.pk, lines=[(s.pk, 2) for s in skus], idempotency_key="bulk")
    url = "/api/v1/availability/?skus=" + ",".join(s.code for s in skus)
    with django_assert_max_num_queries(6):
        response = web_client.get(url)
    assert len(response.json()["results"]) == 100


def test_near_me_lists_nearest_pickup_stores_with_their_promise(web_client, sku):
    paris = LocationFactory(code="PARIS", latitude="48.860600", longitude="2.340500")
    lyon = LocationFactory(code="LYON", latitude="45.763300", longitude="4.835700")
    empty = LocationFactory(code="PARIS2", latitude="48.857500", longitude="2.359200")
    receive(paris, sku, 2)
    receive(lyon, sku, 5)
    del empty

    response = web_client.get(f"/api/v1/availability/near/?sku={sku.code}&lat=48.8566&lon=2.3522")

    results = response.json()["results"]
    assert [r["location"] for r in results] == ["PARIS", "LYON"]
    assert results[0]["distance_km"] < 2 < 380 < results[1]["distance_km"] < 400
    assert results[0]["ready_by"].endswith(("+01:00", "+02:00"))  # the store's own time zone


def test_near_me_needs_a_place(web_client, sku):
    response = web_client.get(f"/api/v1/availability/near/?sku={sku.code}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_movements_can_be_filtered_by_sku_location_and_kind(web_client, store, sku):
    other = SkuFactory()
    receive(store, sku, 5)
    receive(store, other, 5)
    from inventory.services import reservation_create

    reservation_create(
        sku_id=sku.pk, location_id=store.pk, quantity=1, idempotency_key="r", channel="web"
    )

    response = web_client.get(f"/api/v1/stock/movements/?sku={sku.code}&kind=reserve")
    body = response.json()
    assert body["count"] == 1
    assert body["results"][0]["kind"] == "reserve"
    assert web_client.get(f"/api/v1/stock/movements/?location={store.code}").json()["count"] == 3


def test_availability_answer_follows_every_committed_change(
    web_client, store, sku, django_capture_on_commit_callbacks
):
    url = f"/api/v1/availability/?skus={sku.code}"
    with django_capture_on_commit_callbacks(execute=True):
        receive(store, sku, 3)
    assert web_client.get(url).json()["results"][0]["available"] == 3  # now cached

    from inventory.services import reservation_create

    with django_capture_on_commit_callbacks(execute=True):
        reservation_create(
            sku_id=sku.pk, location_id=store.pk, quantity=2, idempotency_key="r", channel="web"
        )

    assert web_client.get(url).json()["results"][0]["available"] == 1


def test_deactivating_a_location_removes_it_from_availability_at_once(web_client, store, sku):
    receive(store, sku, 3)
    url = f"/api/v1/availability/?skus={sku.code}"
    assert web_client.get(url).json()["results"][0]["available"] == 3

    store.is_active = False
    store.save()

    assert web_client.get(url).json()["results"][0] == {
        "sku": sku.code,
        "available": 0,
        "locations": [],
    }


def test_oversized_body_gets_413_and_changes_nothing(web_client, store, sku):
    lines = [{"sku": sku.code, "quantity": 1}] * 40_000  # about 1.3 MB of JSON
    response = post(web_client, "/api/v1/stock/receipts/", {"location": store.code, "lines": lines})
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert StockMovement.objects.count() == 0


def test_unknown_api_url_is_json_404_even_in_debug_mode(web_client, settings):
    settings.DEBUG = True
    response = web_client.get("/api/v1/customers//export/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"

"""Orders API: place, read, cancel, staff transitions, cart check, and every kind of bad input
answered with a clear 4xx and nothing reserved."""

import pytest

from common.models import Scope
from inventory.models import Reservation
from orders import pickup
from orders.models import Order
from tests.factories import LocationFactory
from tests.orders.conftest import committed, line, place_pickup, position, receive

pytestmark = pytest.mark.django_db

HOME = {
    "name": "Camille Martin",
    "line1": "10 rue de la Paix",
    "postcode": "75002",
    "city": "Paris",
    "country": "FR",
    "latitude": "48.868800",
    "longitude": "2.330900",
}


def body(store="PARIS01", lines=None, **overrides):
    payload = {
        "customer": {
            "email": "camille@example.test",
            "phone": "06 12 34 56 78",
            "first_name": "Camille",
        },
        "lines": lines
        or [{"sku": "TSHIRT-M", "quantity": 2, "unit_price": "19.90", "currency": "EUR"}],
        "fulfilment": {"type": "pickup", "store": store},
    }
    payload.update(overrides)
    return payload


def post(client, url, data=None, key="k1"):
    with committed():
        return client.post(url, data or {}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def nothing_reserved():
    return Order.objects.count() == 0 and Reservation.objects.count() == 0


@pytest.fixture
def stocked(store, warehouse, sku):
    receive(store, sku, 5)
    receive(warehouse, sku, 5)


def test_placing_an_order_returns_it_with_its_routing_decision(web_client, stocked, store, sku):
    response = post(web_client, "/api/v1/orders/", body())

    assert response.status_code == 201, response.json()
    order = response.json()
    assert order["status"] == "allocated" and order["pickup_store"] == "PARIS01"
    assert order["total"] == {"amount": "39.80", "currency": "EUR"}
    assert order["routing_decisions"][0]["outcome"] == "pickup_local"
    assert order["routing_decisions"][0]["chosen"][0]["location"] == "PARIS01"
    assert [e["kind"] for e in order["events"]] == ["placed", "allocated"]
    assert order["allocations"][0]["lines"][0]["reservation_status"] == "active"
    assert "pickup_code" not in str(order)
    assert position(store, sku).reserved == 2
    stored = Order.objects.get()
    assert (stored.contact_phone, stored.channel) == ("+33612345678", "web")

    detail = web_client.get(f"/api/v1/orders/{order['reference']}/")
    assert detail.status_code == 200 and detail.json()["reference"] == order["reference"]


def test_a_retried_post_returns_the_same_order_and_another_body_is_refused(
    web_client, stocked, store, sku
):
    first = post(web_client, "/api/v1/orders/", body(), key="same")
    again = post(web_client, "/api/v1/orders/", body(), key="same")
    other = post(
        web_client,
        "/api/v1/orders/",
        body(lines=[{"sku": "TSHIRT-M", "quantity": 1, "unit_price": "19.90", "currency": "EUR"}]),
        key="same",
    )

    assert again.status_code == 201 and again.json()["reference"] == first.json()["reference"]
    assert again["Idempotent-Replayed"] == "true"
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1 and position(store, sku).reserved == 2


def test_a_post_without_idempotency_key_is_refused(web_client, stocked):
    response = web_client.post("/api/v1/orders/", body(), format="json")
    assert response.status_code == 400 and response.json()["code"] == "idempotency_key_required"
    assert nothing_reserved()


@pytest.mark.parametrize(
    ("make_body", "status", "code"),
    [
        (
            lambda: body(
                lines=[{"sku": "NOPE", "quantity": 1, "unit_price": "1.00", "currency": "EUR"}]
            ),
            404,
            "unknown_sku",
        ),
        (lambda: body(store="NOWHERE"), 404, "unknown_location"),
        (lambda: body(store="NOPICKUP"), 400, "pickup_not_offered"),
        (lambda: body(store="CLOSED"), 409, "store_closed"),
        (lambda: body(store="SHUT"), 409, "store_inactive"),
        (
            lambda: body(
                lines=[{"sku": "TSHIRT-M", "quantity": 0, "unit_price": "1.00", "currency": "EUR"}]
            ),
            400,
            "invalid",
        ),
        (
            lambda: body(
                lines=[{"sku": "TSHIRT-M", "quantity": -2, "unit_price": "1.00", "currency": "EUR"}]
            ),
            400,
            "invalid",
        ),
        (
            lambda: body(
                lines=[
                    {"sku": "TSHIRT-M", "quantity": 1, "unit_price": "1.00", "currency": "EUR"},
                    {"sku": "JEANS-32", "quantity": 1, "unit_price": "1.00", "currency": "USD"},
                ]
            ),
            400,
            "currency_mismatch",
        ),
        (
            lambda: body(
                lines=[{"sku": "TSHIRT-M", "quantity": 99, "unit_price": "1.00", "currency": "EUR"}]
            ),
            409,
            "out_of_stock",
        ),
        (lambda: body(customer={"first_name": "nobody"}), 400, "invalid"),
        (lambda: body(fulfilment={"type": "delivery"}), 400, "invalid"),
    ],
    ids=[
        "unknown-sku",
        "unknown-store",
        "no-pickup",
        "closed",
        "inactive",
        "zero",
        "negative",
        "mixed-currencies",
        "out-of-stock",
        "no-customer-identifier",
        "delivery-without-address",
    ],
)
def test_bad_input_gets_a_clear_4xx_and_nothing_is_reserved(
    web_client, stocked, sku2, make_body, status, code
):
    # given stores that cannot take the order
    LocationFactory(code="NOPICKUP", allows_pickup=False)
    LocationFactory(code="CLOSED", hours=[])
    LocationFactory(code="SHUT", is_active=False)

    response = post(web_client, "/api/v1/orders/", make_body())

    assert (response.status_code, response.json()["code"]) == (status, code), response.json()
    assert nothing_reserved()


def test_out_of_stock_names_the_short_lines(web_client, stocked):
    response = post(
        web_client,
        "/api/v1/orders/",
        body(lines=[{"sku": "TSHIRT-M", "quantity": 11, "unit_price": "1.00", "currency": "EUR"}]),
    )
    assert response.json()["details"]["lines"] == [
        {"line": 1, "sku": "TSHIRT-M", "requested": 11, "available": 10, "elsewhere": []}
    ]


def test_out_of_stock_says_what_exists_and_why_it_cannot_be_used(web_client, store, sku):
    """Units on a shelf of a store that does not ship: the customer is told they exist, and
    why a home delivery cannot take them (it used to say "available: 0" and nothing more)."""
    receive(store, sku, 3)  # PARIS01 offers pickup and does not ship

    response = post(
        web_client, "/api/v1/orders/", body(fulfilment={"type": "delivery", "address": HOME})
    )

    assert response.status_code == 409
    assert response.json()["details"]["lines"] == [
        {
            "line": 1,
            "sku": "TSHIRT-M",
            "requested": 2,
            "available": 0,
            "elsewhere": [{"location": "PARIS01", "units": 3, "why": "does not ship"}],
        }
    ]
    assert "3 at PARIS01: does not ship" in response.json()["message"]


def test_home_delivery_through_the_api(web_client, stocked, warehouse, sku):
    response = post(
        web_client, "/api/v1/orders/", body(fulfilment={"type": "delivery", "address": HOME})
    )
    assert response.status_code == 201, response.json()
    assert response.json()["delivery_address"]["city"] == "Paris"
    assert response.json()["allocations"][0]["location"] == "WH01"


def test_staff_drive_click_and_collect_to_hand_over_and_a_wrong_code_is_refused(
    web_client, till_client, stocked, store, sku
):
    reference = post(web_client, "/api/v1/orders/", body()).json()["reference"]
    base = f"/api/v1/orders/{reference}"

    # a web key cannot drive fulfilment; store staff can
    assert post(web_client, f"{base}/picking/", key="p0").status_code == 403
    assert post(till_client, f"{base}/picking/", key="p1").json()["status"] == "picking"
    assert post(till_client, f"{base}/ready/", key="r1").json()["status"] == "ready_for_pickup"

    wrong = post(till_client, f"{base}/collect/", {"code": "ZZZZZZ"}, key="c0")
    assert (wrong.status_code, wrong.json()["code"]) == (400, "wrong_pickup_code")
    assert position(store, sku).reserved == 2

    order = Order.objects.get(reference=reference)
    code = pickup.pickup_code(reference=reference, nonce=order.pickup_nonce)
    paid = {"amount": str(order.total_amount), "currency": "EUR", "till_reference": "T1-42"}
    done = post(
        till_client, f"{base}/collect/", {"code": code.lower(), "paid_at_till": paid}, key="c1"
    )
    assert done.status_code == 200 and done.json()["status"] == "collected"
    assert (position(store, sku).on_hand, position(store, sku).reserved) == (3, 0)


def test_a_hand_over_is_refused_while_money_is_due_and_records_nothing(
    web_client, till_client, stocked, store, sku
):
    reference = post(web_client, "/api/v1/orders/", body()).json()["reference"]  # pay at pickup
    base = f"/api/v1/orders/{reference}"
    post(till_client, f"{base}/picking/", key="p1")
    post(till_client, f"{base}/ready/", key="r1")
    order = Order.objects.get(reference=reference)
    code = pickup.pickup_code(reference=reference, nonce=order.pickup_nonce)
    total = order.total_amount
    short = {"amount": str(total - 15), "currency": "EUR"}

    unpaid = post(till_client, f"{base}/collect/", {"code": code}, key="c1")
    under_paid = post(
        till_client, f"{base}/collect/", {"code": code, "paid_at_till": short}, key="c2"
    )

    assert (unpaid.status_code, unpaid.json()["code"]) == (409, "payment_due")
    assert unpaid.json()["details"] == {"due": str(total), "currency": "EUR"}
    assert (under_paid.status_code, under_paid.json()["code"]) == (409, "payment_due")
    assert under_paid.json()["details"]["due"] == "15.00"
    order.refresh_from_db()
    assert order.status == "ready_for_pickup" and position(store, sku).reserved == 2
    summary = web_client.get(f"/api/v1/payments/orders/{reference}/").json()
    assert (summary["paid"], summary["due"], summary["tenders"]) == ("0.00", str(total), [])

    paid = {"amount": str(total), "currency": "EUR"}
    done = post(till_client, f"{base}/collect/", {"code": code, "paid_at_till": paid}, key="c3")
    assert done.status_code == 200 and done.json()["status"] == "collected"
    summary = web_client.get(f"/api/v1/payments/orders/{reference}/").json()
    assert (summary["paid"], summary["due"]) == (str(total), "0.00")


def test_an_illegal_transition_is_a_409_naming_the_allowed_ones(web_client, till_client, stocked):
    reference = post(web_client, "/api/v1/orders/", body()).json()["reference"]
    response = post(till_client, f"/api/v1/orders/{reference}/deliver/", key="d1")
    assert response.status_code == 409
    assert response.json()["code"] == "illegal_transition"
    assert response.json()["details"]["allowed"] == ["cancelled", "picking"]
    assert Order.objects.get(reference=reference).status == "allocated"


def test_cancel_through_the_api_releases_and_a_replay_returns_the_same_answer(
    web_client, stocked, store, sku
):
    reference = post(web_client, "/api/v1/orders/", body()).json()["reference"]
    first = post(web_client, f"/api/v1/orders/{reference}/cancel/", {"reason": "oops"}, key="x")
    again = post(web_client, f"/api/v1/orders/{reference}/cancel/", {"reason": "oops"}, key="x")
    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert position(store, sku).reserved == 0


def test_another_channel_cannot_read_or_cancel_an_order(api_client_factory, web_client, stocked):
    reference = post(web_client, "/api/v1/orders/", body()).json()["reference"]
    app = api_client_factory(channel="app")
    assert app.get(f"/api/v1/orders/{reference}/").status_code == 404
    assert post(app, f"/api/v1/orders/{reference}/cancel/", key="z").status_code == 404
    assert Order.objects.get(reference=reference).status == "allocated"


def test_scopes_are_enforced(api_client_factory, stocked):
    reader = api_client_factory(scopes=[Scope.ORDERS_READ])
    assert post(reader, "/api/v1/orders/", body()).status_code == 403
    assert nothing_reserved()


def test_reject_a_line_through_the_api_reroutes_it(
    web_client, till_client, stocked, store, warehouse, sku
):
    reference = post(web_client, "/api/v1/orders/", body()).json()["reference"]
    response = post(
        till_client,
        f"/api/v1/orders/{reference}/lines/1/reject/",
        {"location": "PARIS01", "reason": "not_on_shelf", "found_quantity": 0},
        key="rej",
    )
    assert response.status_code == 200, response.json()
    order = response.json()
    assert [d["trigger"] for d in order["routing_decisions"]] == ["placement", "rejection"]
    assert {a["location"] for a in order["allocations"] if a["status"] == "reserved"} == {"WH01"}
    assert position(store, sku).on_hand == 0


def test_return_in_another_store_through_the_api(web_client, till_client, stocked, sku):
    reference = post(
        web_client, "/api/v1/orders/", body(fulfilment={"type": "delivery", "address": HOME})
    ).json()["reference"]
    for step in ("picking", "ship", "deliver"):
        assert post(till_client, f"/api/v1/orders/{reference}/{step}/", key=step).status_code == 200
    lyon = LocationFactory(code="LYON01")
    response = post(
        till_client,
        f"/api/v1/orders/{reference}/returns/",
        {"location": "LYON01", "lines": [{"line": 1, "quantity": 1}]},
        key="ret",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["refund"] == {"amount": "19.90", "currency": "EUR"}
    assert position(lyon, sku).on_hand == 1


def test_cart_check_answers_when_and_offers_alternatives(web_client, store, warehouse, sku, sku2):
    # given the store has the T-shirt only; another store nearby has both
    nearby = LocationFactory(code="PARIS02", latitude="48.870000", longitude="2.340000")
    receive(store, sku, 5)
    receive(nearby, sku, 5)
    receive(nearby, sku2, 5)
    receive(warehouse, sku2, 5)
    cart = {
        "store": "PARIS01",
        "lines": [{"sku": "TSHIRT-M", "quantity": 1}, {"sku": "JEANS-32", "quantity": 1}],
    }

    answer = web_client.post("/api/v1/orders/cart-check/", cart, format="json").json()

    assert answer["can_collect"] is True and answer["mode"] == "transfer"
    assert answer["sources"] == ["WH01"]
    assert [alt["store"] for alt in answer["alternatives"]] == ["PARIS02"]
    in_store_only = web_client.post(
        "/api/v1/orders/cart-check/",
        {"store": "PARIS01", "lines": [{"sku": "TSHIRT-M", "quantity": 1}]},
        format="json",
    ).json()
    assert in_store_only["mode"] == "in_store" and in_store_only["alternatives"] == []
    assert Reservation.objects.count() == 0


def test_cart_check_at_a_store_without_pickup_is_a_clear_error(web_client, sku):
    LocationFactory(code="NOPICKUP", allows_pickup=False)
    response = web_client.post(
        "/api/v1/orders/cart-check/",
        {"store": "NOPICKUP", "lines": [{"sku": "TSHIRT-M", "quantity": 1}]},
        format="json",
    )
    assert (response.status_code, response.json()["code"]) == (400, "pickup_not_offered")


def test_the_openapi_schema_documents_the_orders_endpoints(web_client):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert "/api/v1/orders/" in schema["paths"]
    assert "/api/v1/orders/{reference}/lines/{line}/reject/" in schema["paths"]


def test_placing_an_order_costs_a_bounded_number_of_queries(
    web_client, stocked, django_assert_max_num_queries
):
    # given the reference data (locations, rules, calendars) is warm, as it is in production
    post(web_client, "/api/v1/orders/", body(), key="warm-up")

    # then a click & collect order costs at most this many statements (savepoints included,
    # customer identified by email and phone), however many locations there are
    with django_assert_max_num_queries(34):
        response = web_client.post(
            "/api/v1/orders/", body(), format="json", HTTP_IDEMPOTENCY_KEY="measured"
        )
    assert response.status_code == 201
    assert (
        response.json() == web_client.get(f"/api/v1/orders/{response.json()['reference']}/").json()
    )


def test_an_order_placed_with_a_customer_reference_notifies_the_customer_s_known_contacts(
    web_client, stocked
):
    from django.core import mail

    from tests.customers.factories import IdentifierFactory

    known = IdentifierFactory(value_normalised="known@example.test", value_raw="known@example.test")
    payload = body(customer={"reference": str(known.customer.reference)})

    response = post(web_client, "/api/v1/orders/", payload)

    assert response.status_code == 201, response.json()
    assert [m.to for m in mail.outbox] == [["known@example.test"]]


def test_the_fast_order_rendering_equals_the_documented_serializer(
    web_client, till_client, stocked, warehouse, sku
):
    # given orders in various states: with a transfer, cancelled, shipped with a delivery address
    from orders.api.serializers import OrderOutput, order_representation
    from orders.selectors import order_get

    receive(warehouse, sku, 5)
    pickup_ref = post(web_client, "/api/v1/orders/", body(), key="a").json()["reference"]
    post(web_client, f"/api/v1/orders/{pickup_ref}/cancel/", {"reason": "x"}, key="b")
    delivery_ref = post(
        web_client,
        "/api/v1/orders/",
        body(fulfilment={"type": "delivery", "address": HOME}),
        key="c",
    ).json()["reference"]
    post(till_client, f"/api/v1/orders/{delivery_ref}/picking/", key="d")
    post(till_client, f"/api/v1/orders/{delivery_ref}/ship/", key="e")

    # then both renderings agree on every field
    for reference in (pickup_ref, delivery_ref):
        order = order_get(reference=reference)
        assert order_representation(order) == OrderOutput(order).data


def test_cart_check_when_the_network_cannot_serve_offers_the_stores_that_can(
    web_client, store, sku
):
    # given the chosen store and the warehouse have nothing, a nearby store has 2
    nearby = LocationFactory(code="PARIS02", latitude="48.870000", longitude="2.340000")
    receive(nearby, sku, 2)

    answer = web_client.post(
        "/api/v1/orders/cart-check/",
        {"store": "PARIS01", "lines": [{"sku": "TSHIRT-M", "quantity": 2}]},
        format="json",
    ).json()

    # then the cart cannot be collected there, and the nearby store is offered with its promise
    assert (answer["can_collect"], answer["mode"], answer["ready_by"]) == (
        False,
        "unavailable",
        None,
    )
    assert [alt["store"] for alt in answer["alternatives"]] == ["PARIS02"]
    assert answer["alternatives"][0]["ready_by"] is not None


def test_cart_check_at_a_store_with_no_slot_left_says_so_and_offers_the_stores_that_can(
    web_client, store, sku, customer
):
    # given the chosen store prepares one order a day and has taken it; a nearby store has stock
    store.daily_order_capacity = 1
    store.save()
    nearby = LocationFactory(code="PARIS02", latitude="48.870000", longitude="2.340000")
    receive(store, sku, 5)
    receive(nearby, sku, 5)
    place_pickup(customer, store, [line(sku)])

    answer = web_client.post(
        "/api/v1/orders/cart-check/",
        {"store": "PARIS01", "lines": [{"sku": "TSHIRT-M", "quantity": 1}]},
        format="json",
    ).json()

    # then the storefront is not told it can collect there (placing would be refused)
    assert (answer["can_collect"], answer["mode"], answer["ready_by"]) == (
        False,
        "at_capacity",
        None,
    )
    assert [alt["store"] for alt in answer["alternatives"]] == ["PARIS02"]

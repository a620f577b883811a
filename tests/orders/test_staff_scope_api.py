"""A store associate's session acts through the API exactly as in the admin: on their store's
orders and stock only, and only with their group's permissions (orders.access,
inventory.access). Every write endpoint, table-driven: A's objects allowed, B's refused with
nothing changed."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from inventory.models import Reservation, StockMovement, Transfer
from inventory.services import reservations_create, transfer_request
from inventory.services.reservations import ReservationRequest
from orders import services
from orders.models import Order, OrderEvent
from stores.models import StaffAssignment
from tests.factories import LocationFactory, UserFactory
from tests.orders.conftest import act, key, line, place_pickup, receive

pytestmark = pytest.mark.django_db


@pytest.fixture
def shops(store, sku):
    lyon = LocationFactory(code="LYON01", name="Lyon")
    for shop in (store, lyon):
        receive(shop, sku, 10)
    return store, lyon


@pytest.fixture
def associate_of_paris(shops):
    paris, _ = shops
    user = UserFactory(username="alice", is_staff=True)
    user.groups.add(Group.objects.get(name="Store associate"))
    StaffAssignment.objects.create(user=user, location=paris)
    client = APIClient()
    client.force_login(user)
    return client


def _ledger():
    return (
        StockMovement.objects.count(),
        Reservation.objects.filter(status="active").count(),
        Transfer.objects.count(),
        OrderEvent.objects.count(),
        sorted(Transfer.objects.values_list("pk", "status")),
    )


def _post(client, url, body=None):
    return client.post(url, body or {}, format="json", HTTP_IDEMPOTENCY_KEY=key())


# (name, url builder, body builder, status at the associate's store, status at the other one)
STOCK_WRITES = [
    (
        "receive",
        lambda ctx, code: "/api/v1/stock/receipts/",
        lambda ctx, code: {"location": code, "lines": [{"sku": "TSHIRT-M", "quantity": 2}]},
        201,
        403,
    ),
    (
        "count",
        lambda ctx, code: "/api/v1/stock/counts/",
        lambda ctx, code: {"location": code, "lines": [{"sku": "TSHIRT-M", "counted": 9}]},
        201,
        403,
    ),
    (
        "adjust (the associate has no adjust permission anywhere)",
        lambda ctx, code: "/api/v1/stock/adjustments/",
        lambda ctx, code: {"location": code, "sku": "TSHIRT-M", "delta": -1, "reason": "damage"},
        403,
        403,
    ),
    (
        "set aside (adjusting too)",
        lambda ctx, code: "/api/v1/stock/set-aside/",
        lambda ctx, code: {
            "location": code,
            "sku": "TSHIRT-M",
            "quantity": 1,
            "action": "set_aside",
            "reason": "damage",
        },
        403,
        403,
    ),
    (
        "reserve",
        lambda ctx, code: "/api/v1/reservations/",
        lambda ctx, code: {
            "lines": [{"sku": "TSHIRT-M", "location": code, "quantity": 1}],
            "reference": "hold for Léa",
        },
        201,
        403,
    ),
    (
        "release a reservation",
        lambda ctx, code: f"/api/v1/reservations/{ctx['reservation'][code]}/release/",
        lambda ctx, code: {},
        200,
        403,
    ),
    (
        "request a transfer from the store",
        lambda ctx, code: "/api/v1/transfers/",
        lambda ctx, code: {
            "source": code,
            "destination": ctx["other"][code],
            "lines": [{"sku": "TSHIRT-M", "quantity": 1}],
        },
        201,
        403,
    ),
    (
        "ship a transfer leaving the store",
        lambda ctx, code: f"/api/v1/transfers/{ctx['transfer'][code]}/ship/",
        lambda ctx, code: {},
        200,
        403,
    ),
]


@pytest.mark.parametrize(
    "name,url,body,at_mine,at_theirs", STOCK_WRITES, ids=[row[0] for row in STOCK_WRITES]
)
def test_stock_writes_follow_the_admin_rule(
    associate_of_paris, shops, sku, name, url, body, at_mine, at_theirs
):
    paris, lyon = shops
    ctx = {
        "other": {paris.code: lyon.code, lyon.code: paris.code},
        "reservation": {},
        "transfer": {},
    }
    for shop, other in ((paris, lyon), (lyon, paris)):
        [held] = reservations_create(
            requests=[ReservationRequest(sku_id=sku.pk, location_id=shop.pk, quantity=1)],
            idempotency_key=key(),
            channel="store",
            reference="r",
        )
        ctx["reservation"][shop.code] = held.pk
        ctx["transfer"][shop.code] = transfer_request(
            source_id=shop.pk,
            destination_id=other.pk,
            lines=[(sku.pk, 1)],
            idempotency_key=key(),
            actor="t",
        ).pk

    before = _ledger()
    theirs = _post(associate_of_paris, url(ctx, lyon.code), body(ctx, lyon.code))
    assert theirs.status_code == at_theirs, theirs.json()
    assert _ledger() == before  # refused: nothing changed
    mine = _post(associate_of_paris, url(ctx, paris.code), body(ctx, paris.code))
    assert mine.status_code == at_mine, mine.json()
    if at_mine >= 400:
        assert _ledger() == before


ORDER_WRITES = [
    ("picking", "picking/", None, 200),
    ("cancel (the associate has no cancel permission)", "cancel/", {"reason": "x"}, 403),
]


@pytest.mark.parametrize(
    "name,action,body,at_mine", ORDER_WRITES, ids=[row[0] for row in ORDER_WRITES]
)
def test_order_writes_follow_the_admin_rule(
    associate_of_paris, shops, customer, sku, name, action, body, at_mine
):
    paris, lyon = shops
    mine = place_pickup(customer, paris, [line(sku)])
    theirs = place_pickup(customer, lyon, [line(sku)])
    before = _ledger()

    refused = _post(associate_of_paris, f"/api/v1/orders/{theirs.reference}/{action}", body)
    assert (refused.status_code, refused.json()["code"]) == (404, "order_not_found")
    assert _ledger() == before and Order.objects.get(pk=theirs.pk).status == "allocated"

    done = _post(associate_of_paris, f"/api/v1/orders/{mine.reference}/{action}", body)
    assert done.status_code == at_mine, done.json()


def test_the_associate_reads_and_lists_only_their_store_s_orders(
    associate_of_paris, shops, customer, sku
):
    paris, lyon = shops
    mine = place_pickup(customer, paris, [line(sku)])
    theirs = place_pickup(customer, lyon, [line(sku)])

    assert associate_of_paris.get(f"/api/v1/orders/{mine.reference}/").status_code == 200
    assert associate_of_paris.get(f"/api/v1/orders/{theirs.reference}/").status_code == 404
    listed = associate_of_paris.get("/api/v1/orders/").json()
    assert [row["reference"] for row in listed["results"]] == [mine.reference]


def test_a_line_is_rejected_and_a_return_taken_only_at_the_associate_s_store(
    associate_of_paris, shops, customer, sku
):
    paris, lyon = shops
    order = place_pickup(customer, paris, [line(sku)])
    act(
        services.order_picking_start,
        order_id=order.pk,
        idempotency_key=key(),
        actor="t",
        channel="backoffice",
    )
    reject = f"/api/v1/orders/{order.reference}/lines/1/reject/"
    body = {"reason": "damaged", "found_quantity": 0}

    assert _post(associate_of_paris, reject, {**body, "location": lyon.code}).status_code == 403
    assert Order.objects.get(pk=order.pk).lines.get().status == "open"


def test_the_admin_offers_the_associate_only_the_stock_writes_of_their_group(client, shops):
    paris, _ = shops
    user = UserFactory(username="bob", is_staff=True)
    user.groups.add(Group.objects.get(name="Store associate"))
    StaffAssignment.objects.create(user=user, location=paris)
    client.force_login(user)

    page = client.get("/admin/inventory/stockposition/").content.decode()

    assert 'value="receive_stock"' in page and 'value="count_stock"' in page
    assert 'value="adjust_stock"' not in page and 'value="set_aside_stock"' not in page

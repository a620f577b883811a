"""The shop floor through the admin's HTTP pages: the board in French or in the language the
associate chose, its today / late / all views, returns taken from the back office, the order
page with its card, and the counts and returns an associate recorded."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from inventory import services as stock
from orders import pickup, selectors, services
from orders.models import Order, Return
from stores.models import StaffAssignment, StaffPreference
from tests.factories import UserFactory
from tests.orders.conftest import (
    act,
    committed,
    hand_over,
    key,
    line,
    place_pickup,
    position,
    receive,
)

pytestmark = pytest.mark.django_db

STAFF = {"actor": "staff:alice", "channel": "backoffice"}
FRENCH = {"HTTP_ACCEPT_LANGUAGE": "fr-FR,fr;q=0.9,en;q=0.5"}


@pytest.fixture
def associate(store):
    user = UserFactory(username="alice")
    user.groups.add(Group.objects.get(name="Store associate"))
    StaffAssignment.objects.create(user=user, location=store)
    return user


def _ready(order):
    act(services.order_picking_start, order_id=order.pk, idempotency_key=key(), **STAFF)
    act(services.order_mark_ready, order_id=order.pk, idempotency_key=key(), **STAFF)
    order.refresh_from_db()


def board(client, store, query="", **headers):
    return client.get(f"/admin/orders/order/board/{store.pk}/{query}", **headers).content.decode()


def test_a_french_browser_reads_the_board_and_its_messages_in_french(
    client, associate, customer, store, sku
):
    receive(store, sku, 3)
    order = place_pickup(customer, store, [line(sku, 1)])
    client.force_login(associate)

    page = board(client, store, "?show=all", **FRENCH)
    assert "Tableau des retraits – " in page
    assert "À préparer" in page and "Commencer la préparation" in page
    assert "Start picking" not in page

    with committed():
        client.post(
            f"/admin/orders/order/board/{store.pk}/",
            {"order": order.pk, "action": "picking", "form_key": "k1"},
            **FRENCH,
        )
    assert f"{order.reference} : est en préparation." in board(client, store, **FRENCH)

    # The model and field names are French too (the orders list).
    listing = client.get("/admin/orders/order/", **FRENCH).content.decode()
    assert "Mode de livraison" in listing and "Passée le" in listing
    assert "Fulfilment" not in listing


def test_the_language_the_associate_chose_follows_her_to_another_device(
    client, django_user_model, associate, store
):
    client.force_login(associate)
    assert "Tableau des retraits" in board(client, store, **FRENCH)

    # she prefers English, on a French tablet
    client.post("/i18n/setlang/", {"language": "en", "next": "/admin/"}, **FRENCH)
    assert StaffPreference.objects.get(user=associate).language == "en"
    assert "Pickup board" in board(client, store, **FRENCH)

    # another tablet, no cookie: her choice still wins over the browser
    from django.test import Client

    other = Client()
    other.force_login(associate)
    assert "Pickup board – " in board(other, store, **FRENCH)

    # back to the browser's language
    other.post("/i18n/setlang/", {"language": "", "next": "/admin/"}, **FRENCH)
    assert "Tableau des retraits" in board(other, store, **FRENCH)


def test_an_api_error_keeps_its_code_and_speaks_the_callers_language(web_client):
    english = web_client.get("/api/v1/orders/NOPE0000/")
    french = web_client.get("/api/v1/orders/NOPE0000/", HTTP_ACCEPT_LANGUAGE="fr")
    assert english.status_code == french.status_code == 404
    assert english.json()["code"] == french.json()["code"] == "order_not_found"
    assert english.json()["message"] != french.json()["message"]


def test_the_board_shows_today_late_or_all(customer, store, sku):
    receive(store, sku, 10)
    now = timezone.now()
    late = place_pickup(customer, store, [line(sku, 1)], at=now - timedelta(days=3))
    due = place_pickup(customer, store, [line(sku, 1)])
    later = place_pickup(customer, store, [line(sku, 1)], at=now + timedelta(days=4))
    for order in (late, due, later):
        order.refresh_from_db()
    # the store's clock decides what "today" is: pick a moment when `due` is due today
    moment = due.ready_by - timedelta(minutes=1)

    def shown(show):
        columns = selectors.pickup_board(location_id=store.pk, now=moment, show=show)
        return {o.reference for o in columns["to_prepare"]}, columns["counts"]

    today, counts = shown("today")
    assert today == {late.reference, due.reference}
    assert shown("overdue")[0] == {late.reference}
    assert shown("all")[0] == {late.reference, due.reference, later.reference}
    assert counts == {"today": 2, "overdue": 1, "all": 3}


def test_an_associate_takes_a_return_from_the_back_office(
    client, associate, customer, store, sku, sku2
):
    receive(store, sku, 3)
    receive(store, sku2, 3)
    order = place_pickup(customer, store, [line(sku, 2), line(sku2, 1)])
    _ready(order)
    hand_over(
        order, pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce), **STAFF
    )
    assert position(store, sku).on_hand == 1
    client.force_login(associate)

    # the returns list opens for her (it answered 403) and offers "add"
    assert client.get("/admin/orders/return/").status_code == 200
    # she finds the order by what the scanner types from the pickup QR
    scanned = pickup.qr_payload(reference=order.reference, nonce=order.pickup_nonce)
    found = client.get("/admin/orders/return/add/", {"order": scanned}).content.decode()
    assert f'data-order="{order.reference}"' in found
    assert 'name="quantity_1"' in found and 'name="quantity_2"' in found

    # one unit of line 1 back on sale, the unit of line 2 damaged
    with committed():
        response = client.post(
            "/admin/orders/return/add/",
            {
                "order": order.reference,
                "form_key": "return-1",
                "location": store.pk,
                "quantity_1": "1",
                "quantity_2": "1",
                "unsellable_2": "1",
                "reason_2": "damaged",
            },
        )
    record = Return.objects.get(order=order)
    assert response.status_code == 302 and response["Location"].endswith(f"/{record.pk}/change/")
    assert position(store, sku).on_hand == 2  # back on the shelf
    assert position(store, sku2).unsellable == 1
    assert record.lines.get(order_line__line_no=2).reason == "damaged"
    page = client.get(response["Location"]).content.decode()
    assert f"Return of 2 unit(s) of {order.reference} recorded." in page

    # the same form sent twice records one return
    with committed():
        client.post(
            "/admin/orders/return/add/",
            {"order": order.reference, "form_key": "return-1", "location": store.pk,
             "quantity_1": "1", "quantity_2": "1", "unsellable_2": "1", "reason_2": "damaged"},
        )  # fmt: skip
    assert Return.objects.filter(order=order).count() == 1


def test_a_return_asking_too_much_is_refused_in_plain_words_and_changes_nothing(
    client, associate, customer, store, sku
):
    receive(store, sku, 2)
    order = place_pickup(customer, store, [line(sku, 1)])
    _ready(order)
    hand_over(
        order, pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce), **STAFF
    )
    client.force_login(associate)

    with committed():
        response = client.post(
            "/admin/orders/return/add/",
            {"order": order.reference, "form_key": "r", "location": store.pk, "quantity_1": "5"},
        )
    page = response.content.decode()
    assert response.status_code == 200
    assert "Line 1: at most 1 more units can be returned." in page
    assert not Return.objects.exists() and position(store, sku).on_hand == 1

    unknown = client.get("/admin/orders/return/add/", {"order": "NOPE"}).content.decode()
    assert "No order NOPE." in unknown


def test_the_order_page_has_its_card_actions_and_the_way_back(
    client, associate, customer, store, sku
):
    receive(store, sku, 2)
    order = place_pickup(customer, store, [line(sku, 1)])
    client.force_login(associate)
    url = f"/admin/orders/order/{order.pk}/change/"
    page = client.get(url).content.decode()
    assert "Back to the board" in page
    assert 'value="picking"' in page  # the board's actions, on the order page
    assert "routing-table" in page and "<pre" not in page  # a table, not raw JSON
    assert f"{order.pk}#1 " not in page  # no "1#1 1 × 149" row headings
    assert f"Times in {store.timezone}" in page

    with committed():
        response = client.post(
            f"/admin/orders/order/board/{store.pk}/",
            {"order": order.pk, "action": "picking", "form_key": "o1", "next": url},
        )
    assert response["Location"] == url  # back on the order page
    assert Order.objects.get(pk=order.pk).status == "picking"


def test_an_associate_sees_the_counts_she_recorded(client, associate, store, sku):
    receive(store, sku, 4)
    with committed():
        stock.stock_count_apply(
            location_id=store.pk, counts=[(sku.pk, 3)], idempotency_key="count-1",
            actor="staff:alice",
        )  # fmt: skip
    client.force_login(associate)
    page = client.get("/admin/inventory/stockcount/")
    assert page.status_code == 200
    text = page.content.decode()
    assert store.code in text and "alice" in text

"""Staff change stock only through admin actions that write movements; the ledger is provable."""

import pytest
from django.core.management import CommandError, call_command

from inventory.models import StockMovement, StockPosition
from tests.factories import UserFactory
from tests.inventory.conftest import position, receive

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_superuser=True))
    return client


def test_receive_action_creates_a_receipt_movement(staff_client, store, sku):
    receive(store, sku, 2)
    pos = position(store, sku)
    url = "/admin/inventory/stockposition/"

    form_page = staff_client.post(url, {"action": "receive_stock", "_selected_action": [pos.pk]})
    assert form_page.status_code == 200
    key = form_page.context["form"].initial["idempotency_key"]
    data = {
        "action": "receive_stock",
        "_selected_action": [pos.pk],
        "apply": "1",
        "idempotency_key": key,
        "quantity": "5",
        "reference": "BL-9",
    }
    staff_client.post(url, data)
    staff_client.post(url, data)  # a double submit of the same form applies once

    assert position(store, sku).on_hand == 7
    movement = StockMovement.objects.order_by("-pk").first()
    assert (movement.kind, movement.quantity, movement.operation.actor) == (
        "receipt",
        5,
        f"staff:{form_page.wsgi_request.user.username}",
    )


def test_adjust_action_refused_below_zero_shows_an_error_and_changes_nothing(
    staff_client, store, sku
):
    receive(store, sku, 1)
    pos = position(store, sku)
    before = StockMovement.objects.count()

    response = staff_client.post(
        "/admin/inventory/stockposition/",
        {
            "action": "adjust_stock",
            "_selected_action": [pos.pk],
            "apply": "1",
            "idempotency_key": "admin:adj:1",
            "delta": "-3",
            "reason": "shrinkage",
        },
        follow=True,
    )

    assert "Not enough stock" in response.content.decode()
    assert StockMovement.objects.count() == before
    assert position(store, sku).on_hand == 1


def test_position_quantities_cannot_be_edited_in_the_admin(staff_client, store, sku):
    receive(store, sku, 3)
    pos = position(store, sku)

    staff_client.post(
        f"/admin/inventory/stockposition/{pos.pk}/change/",
        {"on_hand": "99", "safety_stock_override": ""},
    )

    assert position(store, sku).on_hand == 3


def test_movements_are_read_only_in_the_admin(staff_client, store, sku):
    receive(store, sku, 3)
    movement = StockMovement.objects.get()
    response = staff_client.post(
        f"/admin/inventory/stockmovement/{movement.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403
    assert StockMovement.objects.filter(pk=movement.pk).exists()


def test_reconcile_proves_positions_equal_their_movements_and_rebuilds_them(store, sku, capsys):
    receive(store, sku, 5)
    call_command("stock_reconcile")
    assert "every one equal" in capsys.readouterr().out

    # A position tampered with outside the services is detected, then rebuilt from the ledger.
    StockPosition.objects.filter(location=store, sku=sku).update(on_hand=42)
    with pytest.raises(CommandError):
        call_command("stock_reconcile")
    call_command("stock_reconcile", "--rebuild")
    assert position(store, sku).on_hand == 5
    call_command("stock_reconcile")


def test_store_staff_see_only_their_stores_stock_and_cannot_act_elsewhere(client, store, sku):
    from django.contrib.auth.models import Permission

    from stores.models import StaffAssignment
    from tests.factories import LocationFactory

    other = LocationFactory(code="LYON01")
    receive(store, sku, 2)
    receive(other, sku, 2)
    associate = UserFactory()
    associate.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_stockposition", "change_stockposition"])
    )
    StaffAssignment.objects.create(user=associate, location=store)
    client.force_login(associate)

    listing = client.get("/admin/inventory/stockposition/")
    foreign = position(other, sku)
    client.post(
        "/admin/inventory/stockposition/",
        {
            "action": "receive_stock",
            "_selected_action": [foreign.pk],
            "apply": "1",
            "idempotency_key": "admin:x",
            "quantity": "5",
            "reference": "",
        },
    )

    shown = list(listing.context["cl"].queryset)
    assert shown == [position(store, sku)]
    assert position(other, sku).on_hand == 2  # the other store's stock did not move

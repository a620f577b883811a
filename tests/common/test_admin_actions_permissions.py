"""Permissions mean what they say in the admin: staff who may only view are offered no action
that writes, on any page (the stock actions used to check no permission at all)."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.test import RequestFactory

pytestmark = pytest.mark.django_db

# Actions that only read (a report download): a view permission is enough.
READ_ONLY_ACTIONS = {"report_as_csv"}


def _staff(permissions) -> User:
    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.set(permissions)
    return User.objects.get(pk=user.pk)  # a fresh instance: no cached permissions


def _offered(user) -> dict[str, set[str]]:
    request = RequestFactory().get("/admin/")
    request.user = user
    return {
        f"{model._meta.app_label}.{model.__name__}": set(model_admin.get_actions(request))
        for model, model_admin in admin.site._registry.items()
    }


def test_a_view_only_staff_member_is_offered_no_write_action_anywhere():
    viewer = _staff(Permission.objects.filter(codename__startswith="view_"))

    offered = {page: actions - READ_ONLY_ACTIONS for page, actions in _offered(viewer).items()}

    assert {page: actions for page, actions in offered.items() if actions} == {}


def test_the_actions_come_with_the_permissions_that_allow_them():
    editor = _staff(Permission.objects.all())
    offered = _offered(editor)

    assert {"receive_stock", "adjust_stock"} <= offered["inventory.StockPosition"]
    assert "retry_deliveries" in offered["integrations.WebhookDelivery"]
    assert "replay_events" in offered["integrations.PosEvent"]
    assert "issue_codes" in offered["loyalty.Campaign"]

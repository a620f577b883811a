"""Upgrading to the `payments:refund` scope keeps tills refunding and stops storefronts."""

import importlib

import pytest
from django.apps import apps

from common.models import ApiKey

pytestmark = pytest.mark.django_db

migration = importlib.import_module("common.migrations.0004_grant_refund_scope_to_retailer_keys")


def _key(name, channel, scopes):
    key = ApiKey(name=name, channel=channel, scopes=scopes)
    key.set_key(ApiKey.generate_raw_key())
    key.save()
    return key


def test_retailer_keys_that_could_refund_keep_it_and_storefronts_lose_it():
    till = _key("till", "store", ["payments:write", "pos:events"])
    backoffice = _key("crm", "backoffice", ["payments:write"])
    reader = _key("reader", "store", ["payments:read"])
    web = _key("web", "web", ["payments:write", "orders:write"])

    migration.grant_refund_to_retailer_keys(apps, None)
    migration.grant_refund_to_retailer_keys(apps, None)  # re-running adds nothing twice

    for key in (till, backoffice, reader, web):
        key.refresh_from_db()
    assert till.scopes == ["payments:write", "pos:events", "payments:refund"]
    assert backoffice.scopes == ["payments:write", "payments:refund"]
    assert reader.scopes == ["payments:read"]
    assert web.scopes == ["payments:write", "orders:write"]

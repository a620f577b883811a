"""A CRM or a call-centre tool merges duplicates and undoes a mistaken merge through the API;
a till records a consent given at the counter."""

import pytest

from customers.models import Customer, CustomerMerge
from tests.customers.conftest import identify, snapshot_db

pytestmark = pytest.mark.django_db


@pytest.fixture
def crm(api_client_factory):
    return api_client_factory(scopes=["customers:merge", "customers:read"], channel="backoffice")


def _post(client, url, body, key="m-1"):
    return client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_merge_then_undo_through_the_api(crm):
    survivor = identify(email="lea.martin@gmail.com", first_name="Léa").customer
    duplicate = identify(phone="+33612345678").customer
    body = {
        "survivor": str(survivor.reference),
        "absorbed": duplicate.number,
        "reason": "same person, phone given at the till",
    }

    merged = _post(crm, "/api/v1/customers/merges/", body)
    retried = _post(crm, "/api/v1/customers/merges/", body)

    assert merged.status_code == 201, merged.json()
    assert retried.json() == merged.json() and CustomerMerge.objects.count() == 1
    merge = merged.json()
    assert (merge["survivor"], merge["absorbed"]) == (
        str(survivor.reference),
        str(duplicate.reference),
    )
    found = crm.get(f"/api/v1/customers/{duplicate.reference}/").json()
    assert found["reference"] == str(survivor.reference)  # the duplicate resolves to the survivor
    assert crm.get(f"/api/v1/customers/merges/{merge['id']}/").json()["id"] == merge["id"]

    undone = _post(
        crm, f"/api/v1/customers/merges/{merge['id']}/undo/", {"reason": "not her"}, key="u-1"
    )
    again = _post(
        crm, f"/api/v1/customers/merges/{merge['id']}/undo/", {"reason": "not her"}, key="u-2"
    )

    assert undone.status_code == 200 and undone.json()["unmerged_at"] is not None
    assert (again.status_code, again.json()["code"]) == (409, "unmerge_refused")
    assert Customer.objects.get(pk=duplicate.pk).status == "active"


def test_a_blocked_merge_needs_force_and_a_reason_and_changes_nothing_until_then(crm):
    a = identify(card="CARD-A", email="x1@mail.fr").customer
    b = identify(card="CARD-B", email="x2@mail.fr").customer
    before = snapshot_db()
    body = {"survivor": a.number, "absorbed": b.number, "reason": "same person"}

    blocked = _post(crm, "/api/v1/customers/merges/", body, key="b-1")
    myself = _post(crm, "/api/v1/customers/merges/", {**body, "absorbed": a.number}, key="b-2")
    unknown = _post(crm, "/api/v1/customers/merges/", {**body, "absorbed": "0" * 10}, key="b-3")

    assert (blocked.status_code, blocked.json()["code"]) == (409, "merge_blocked")
    assert blocked.json()["details"]["blockers"]
    assert (myself.status_code, myself.json()["code"]) == (409, "merge_refused")
    assert unknown.status_code == 404
    assert snapshot_db() == before

    forced = _post(crm, "/api/v1/customers/merges/", {**body, "force": True}, key="b-4")
    assert forced.status_code == 201 and forced.json()["forced"] is True


def test_merges_need_their_scope(api_client_factory):
    storefront = api_client_factory(scopes=["customers:write", "customers:read"], channel="web")
    a, b = identify(email="a1@mail.fr").customer, identify(email="b1@mail.fr").customer

    response = _post(
        storefront,
        "/api/v1/customers/merges/",
        {"survivor": a.number, "absorbed": b.number, "reason": "x"},
    )

    assert response.status_code == 403 and not CustomerMerge.objects.exists()


def test_a_till_records_a_consent_at_the_counter_without_profile_rights(api_client_factory):
    till = api_client_factory(scopes=["customers:consent"], channel="store")
    customer = identify(email="lea@mail.fr").customer
    change = {"purpose": "marketing", "channel": "sms", "granted": True, "wording_version": "t1"}

    recorded = _post(
        till, f"/api/v1/customers/{customer.reference}/consents/", {"changes": [change]}
    )
    profile = till.patch(
        f"/api/v1/customers/{customer.reference}/", {"first_name": "X"}, format="json"
    )

    assert recorded.status_code == 201
    sms = next(c for c in recorded.json() if (c["purpose"], c["channel"]) == ("marketing", "sms"))
    assert sms["granted"] is True
    assert customer.consent_events.get().sales_channel == "store"
    assert profile.status_code == 403

"""The customer API: scopes, idempotency, error shapes, and that refused calls change nothing."""

import json

import pytest

from common.models import IdempotencyRecord
from customers import services
from customers.models import Customer, CustomerIdentifier, ErasureRecord
from customers.registry import register_erasure_blocker
from tests.customers.conftest import identify, snapshot_db
from tests.factories import LocationFactory

pytestmark = pytest.mark.django_db

POS_SCOPES = ["customers:resolve"]
CRM_SCOPES = ["customers:resolve", "customers:read", "customers:write"]
DPO_SCOPES = ["customers:read", "customers:privacy"]


def post(client, url, data, key="k-1"):
    return client.post(url, data, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.fixture
def pos(api_client_factory):
    return api_client_factory(scopes=POS_SCOPES, channel="store")


@pytest.fixture
def crm(api_client_factory):
    return api_client_factory(scopes=CRM_SCOPES, channel="call_centre")


@pytest.fixture
def dpo(api_client_factory):
    return api_client_factory(scopes=DPO_SCOPES, channel="backoffice")


@pytest.fixture
def camille():
    return identify(
        email="camille@mail.fr",
        phone="0612345678",
        card="4000123",
        first_name="Camille",
        last_name="Martin",
    ).customer


def test_a_till_resolves_a_scanned_card_in_one_call(pos, camille):
    response = pos.get("/api/v1/customers/resolve/", {"loyalty_card": "4000 123"})

    assert response.status_code == 200
    body = response.json()
    assert body["customer"]["reference"] == str(camille.reference)
    assert body["customer"]["number"] == camille.number
    assert body["matched_by"] == {"kind": "loyalty_card", "source": "", "value": "4000123"}


def test_resolve_by_phone_in_national_form_and_by_customer_number(pos, camille):
    assert pos.get("/api/v1/customers/resolve/", {"phone": "06 12 34 56 78"}).json()["customer"][
        "reference"
    ] == str(camille.reference)
    assert pos.get("/api/v1/customers/resolve/", {"reference": camille.number}).json()["customer"][
        "reference"
    ] == str(camille.reference)


def test_resolve_errors_are_json_with_code_message_details(pos, camille):
    unknown = pos.get("/api/v1/customers/resolve/", {"email": "nobody@mail.fr"})
    junk = pos.get("/api/v1/customers/resolve/", {"phone": "0000000000"})
    malformed = pos.get("/api/v1/customers/resolve/", {"email": "not-an-email"})
    nothing = pos.get("/api/v1/customers/resolve/")

    assert (unknown.status_code, unknown.json()["code"]) == (404, "customer_not_found")
    assert (junk.status_code, junk.json()["details"]) == (404, {"ignored": ["0000000000"]})
    assert (malformed.status_code, malformed.json()["code"]) == (400, "invalid_identifier")
    assert set(malformed.json()) == {"code", "message", "details"}
    assert (nothing.status_code, nothing.json()["code"]) == (400, "invalid")


def test_identify_creates_then_finds_and_a_retry_replays_the_first_answer(pos):
    body = {"email": "New@Mail.fr", "phone": "06 11 22 33 44", "first_name": "Nina"}

    created = post(pos, "/api/v1/customers/identify/", body, key="sale-1")
    replay = post(pos, "/api/v1/customers/identify/", body, key="sale-1")
    found = post(pos, "/api/v1/customers/identify/", {"email": "new@mail.fr"}, key="sale-2")

    assert created.status_code == 201 and created.json()["created"] is True
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert found.status_code == 200 and found.json()["created"] is False
    assert found.json()["customer"]["reference"] == created.json()["customer"]["reference"]
    assert Customer.objects.count() == 1
    customer = Customer.objects.get()
    assert customer.created_channel == "store"
    assert customer.events.first().actor.startswith("api:test-")


def test_identify_needs_an_idempotency_key_and_refuses_junk_only(pos):
    missing = pos.post("/api/v1/customers/identify/", {"email": "a.b@mail.fr"}, format="json")
    junk = post(pos, "/api/v1/customers/identify/", {"phone": "0000000000", "email": "null"})

    assert (missing.status_code, missing.json()["code"]) == (400, "idempotency_key_required")
    assert (junk.status_code, junk.json()["code"]) == (400, "no_usable_identifier")
    assert Customer.objects.count() == 0


def test_identify_with_a_preferred_store_code(pos):
    LocationFactory(code="PARIS01")

    ok = post(
        pos, "/api/v1/customers/identify/", {"loyalty_card": "77001", "preferred_store": "PARIS01"}
    )
    bad = post(
        pos,
        "/api/v1/customers/identify/",
        {"loyalty_card": "77002", "preferred_store": "NOPE"},
        key="k-2",
    )

    assert ok.json()["customer"]["preferred_store"] == "PARIS01"
    assert bad.status_code == 404 and Customer.objects.count() == 1


def test_a_pos_key_may_resolve_and_identify_but_not_read_export_or_erase(pos, camille):
    ref = camille.reference
    assert pos.get(f"/api/v1/customers/{ref}/").status_code == 403
    assert pos.get(f"/api/v1/customers/{ref}/export/").status_code == 403
    assert post(pos, f"/api/v1/customers/{ref}/erase/", {"reason": "x"}).status_code == 403
    assert pos.get(f"/api/v1/customers/{ref}/history/").status_code == 403
    assert ErasureRecord.objects.count() == 0
    # and a call without a key is not authenticated
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/customers/resolve/", {"email": "a@b.fr"}).status_code == 401


def test_profile_read_and_update(crm, camille):
    LocationFactory(code="LYON01")
    url = f"/api/v1/customers/{camille.reference}/"

    updated = crm.patch(
        url,
        {"last_name": "Martin-Durand", "language": "en", "preferred_store": "LYON01"},
        format="json",
    )
    read = crm.get(url)

    assert updated.status_code == 200
    body = read.json()
    assert (body["last_name"], body["language"], body["preferred_store"]) == (
        "Martin-Durand",
        "en",
        "LYON01",
    )
    assert {i["kind"] for i in body["identifiers"]} == {"email", "phone", "loyalty_card"}
    assert crm.patch(url, {"language": "de"}, format="json").status_code == 400


def test_a_merged_reference_answers_with_its_survivor(crm, camille):
    other = identify(email="camille.pro@mail.fr").customer
    services.customer_merge(survivor=camille, absorbed=other, actor="staff:x")

    body = crm.get(f"/api/v1/customers/{other.reference}/").json()

    assert body["reference"] == str(camille.reference)


def test_add_and_remove_identifiers(crm, camille):
    url = f"/api/v1/customers/{camille.reference}/identifiers/"

    added = post(crm, url, {"kind": "external", "source": "ecommerce", "value": "ACC-7"})
    assert added.status_code == 201
    removed = crm.delete(f"{url}{added.json()['id']}/")

    assert removed.status_code == 204
    assert not CustomerIdentifier.objects.filter(kind="external").exists()
    assert crm.delete(f"{url}999999/").status_code == 404


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"kind": "email", "value": "taken@mail.fr"}, 409, "identifier_taken"),
        ({"kind": "email", "value": "bad@@mail"}, 400, "invalid_identifier"),
        ({"kind": "phone", "value": "12"}, 400, "invalid_identifier"),
        ({"kind": "phone", "value": "0000000000"}, 400, "invalid_identifier"),
        ({"kind": "fax", "value": "0612345678"}, 400, "invalid_identifier"),
        ({"kind": "external", "value": "X"}, 400, "invalid_identifier"),
    ],
)
def test_refused_identifiers_answer_4xx_and_change_nothing(crm, camille, body, status, code):
    identify(email="taken@mail.fr")
    before = snapshot_db()

    response = post(crm, f"/api/v1/customers/{camille.reference}/identifiers/", body)

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert snapshot_db() == before


def test_unknown_reference_is_a_404(crm):
    for ref in ["5b1c4bde-0d4e-4e0e-9a65-000000000000", "1234567890", "garbage"]:
        response = crm.get(f"/api/v1/customers/{ref}/")
        assert (response.status_code, response.json()["code"]) == (404, "customer_not_found")


def test_consents_read_and_change(crm, camille):
    url = f"/api/v1/customers/{camille.reference}/consents/"

    changed = post(
        crm,
        url,
        {
            "changes": [
                {
                    "purpose": "marketing",
                    "channel": "sms",
                    "granted": True,
                    "wording_version": "2026-01",
                }
            ]
        },
    )
    bad = post(
        crm,
        url,
        {
            "changes": [
                {"purpose": "marketing", "channel": "fax", "granted": True, "wording_version": "v"}
            ]
        },
        key="k-2",
    )
    state = crm.get(url).json()

    assert changed.status_code == 201
    assert bad.status_code == 400 and camille.consent_events.count() == 1
    sms = next(s for s in state if (s["purpose"], s["channel"]) == ("marketing", "sms"))
    assert sms["granted"] is True and sms["sales_channel"] == "call_centre"
    assert sum(s["granted"] for s in state) == 1


def test_history_pages_with_a_cursor(crm, camille):
    url = f"/api/v1/customers/{camille.reference}/history/"

    first = crm.get(url, {"limit": 2}).json()
    second = crm.get(url, {"limit": 2, "cursor": first["next_cursor"]}).json()
    everything = crm.get(url).json()

    assert [e["kind"] for e in everything["results"]][-1] == "created"
    assert len(everything["results"]) == 4 and everything["next_cursor"] is None
    assert first["results"] + second["results"] == everything["results"]
    assert crm.get(url, {"cursor": "zzz"}).status_code == 400


def test_export_and_erase_with_the_privacy_scope(dpo, camille, sandbox_registry):
    ref = camille.reference
    export = dpo.get(f"/api/v1/customers/{ref}/export/")
    assert export.status_code == 200 and export.json()["customer"]["first_name"] == "Camille"

    # an open order blocks the erasure, with its reason, and nothing changes
    register_erasure_blocker("orders.open", lambda c: ["Order W-1 is still open."])
    before = snapshot_db()
    blocked = post(dpo, f"/api/v1/customers/{ref}/erase/", {"reason": "GDPR #1"}, key="e-1")
    assert (blocked.status_code, blocked.json()["code"]) == (409, "erasure_blocked")
    assert blocked.json()["details"] == {"blockers": ["Order W-1 is still open."]}
    assert snapshot_db() == before

    del sandbox_registry.erasure_blockers["orders.open"]
    erased = post(dpo, f"/api/v1/customers/{ref}/erase/", {"reason": "GDPR #1"}, key="e-2")
    replay = post(dpo, f"/api/v1/customers/{ref}/erase/", {"reason": "GDPR #1"}, key="e-2")
    again = post(dpo, f"/api/v1/customers/{ref}/erase/", {"reason": "GDPR #1"}, key="e-3")

    assert erased.status_code == 200 and erased.json()["status"] == "erased"
    assert replay.status_code == 200 and replay.json() == erased.json()
    assert (again.status_code, again.json()["code"]) == (410, "customer_erased")
    assert dpo.get(f"/api/v1/customers/{ref}/").status_code == 410
    assert ErasureRecord.objects.count() == 1


def test_erasure_deletes_stored_api_responses_that_quote_the_person(pos, crm, dpo):
    # given a till identified her and customer service added an email (responses kept for replay)
    created = post(pos, "/api/v1/customers/identify/", {"email": "zoe@mail.fr"}, key="id-1")
    ref = created.json()["customer"]["reference"]
    post(crm, f"/api/v1/customers/{ref}/identifiers/", {"kind": "email", "value": "z2@mail.fr"})
    other = post(pos, "/api/v1/customers/identify/", {"email": "else@mail.fr"}, key="id-2")
    assert IdempotencyRecord.objects.count() == 3

    post(dpo, f"/api/v1/customers/{ref}/erase/", {"reason": "GDPR #9"}, key="e-1")

    stored = json.dumps(list(IdempotencyRecord.objects.values_list("response_body", flat=True)))
    assert "zoe@mail.fr" not in stored and "z2@mail.fr" not in stored
    assert other.json()["customer"]["reference"] in stored  # someone else's answer is kept


def test_resolve_by_email_costs_a_fixed_number_of_queries(pos, camille, django_assert_num_queries):
    pos.get("/api/v1/customers/resolve/", {"email": "camille@mail.fr"})  # warm the key cache
    # the API key, then the indexed lookup
    with django_assert_num_queries(2):
        response = pos.get("/api/v1/customers/resolve/", {"email": "camille@mail.fr"})
    assert response.status_code == 200

"""Goodwill store credit from a CRM or a call-centre tool, through the API."""

import pytest

from payments.models import EntryKind, WalletEntry
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _credit(client, customer, body, key="g-1"):
    return client.post(
        f"/api/v1/payments/customers/{customer.reference}/store-credit/",
        body,
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_a_call_centre_credits_goodwill_once_and_the_customer_spends_it_anywhere(
    api_client_factory,
):
    customer = CustomerFactory()
    crm = api_client_factory(scopes=["store_credit:issue"], channel="call_centre")
    body = {"amount": "15.00", "currency": "EUR", "reason": "late parcel, ticket 4411"}

    first = _credit(crm, customer, body)
    retry = _credit(crm, customer, body)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert first.json()["credited"] == "15.00" and first.json()["balance_after"] == "15.00"
    entry = WalletEntry.objects.get()
    assert (entry.kind, entry.reason, entry.channel) == (
        EntryKind.GOODWILL,
        "late parcel, ticket 4411",
        "call_centre",
    )
    till = api_client_factory(scopes=["payments:read"], channel="store")
    wallets = till.get(f"/api/v1/payments/customers/{customer.reference}/store-credit/").json()
    assert wallets["wallets"][0]["available"] == "15.00"


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"amount": "-5.00", "currency": "EUR", "reason": "x"}, 400, "invalid_amount"),
        ({"amount": 5.5, "currency": "EUR", "reason": "x"}, 400, "invalid"),
        ({"amount": "5.00", "currency": "EUR"}, 400, "invalid"),
        ({"amount": "5.001", "currency": "EUR", "reason": "x"}, 400, "invalid"),
    ],
)
def test_bad_goodwill_is_refused_and_credits_nothing(api_client_factory, body, status, code):
    customer = CustomerFactory()
    crm = api_client_factory(scopes=["store_credit:issue"], channel="backoffice")

    response = _credit(crm, customer, body)

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert not WalletEntry.objects.exists()


def test_goodwill_needs_its_scope_and_a_known_customer(api_client_factory):
    customer = CustomerFactory()
    storefront = api_client_factory(
        scopes=["payments:read", "payments:write", "payments:refund"], channel="web"
    )
    crm = api_client_factory(scopes=["store_credit:issue"], channel="backoffice")
    body = {"amount": "5.00", "currency": "EUR", "reason": "sorry"}

    assert _credit(storefront, customer, body).status_code == 403
    unknown = crm.post(
        "/api/v1/payments/customers/00000000-0000-0000-0000-000000000000/store-credit/",
        body,
        format="json",
        HTTP_IDEMPOTENCY_KEY="g-2",
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "customer_not_found")
    assert not WalletEntry.objects.exists()

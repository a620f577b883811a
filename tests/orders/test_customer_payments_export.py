"""The GDPR export and the unified history hold what paid a person's orders, and their store
credit, as the customer service and the person see them through the API."""

import pytest

from payments.services import stored_value as sv
from tests.orders.test_payment_wiring import _paid_two_lines, _refund_lines

pytestmark = pytest.mark.django_db


def test_the_export_and_the_history_show_payments_refunds_and_store_credit(
    api_client_factory, customer, store, sku, sku2
):
    order, card = _paid_two_lines(customer, store, sku, sku2)  # 70.00 on a gift card, collected
    till = api_client_factory(scopes=["payments:refund"], channel="store")
    assert _refund_lines(till, order, [(1, 1)], "r-1").status_code == 201  # 20.00 back
    sv.wallet_credit(
        customer=customer,
        amount="5.00",
        currency="EUR",
        idempotency_key="gw",
        channel="call_centre",
        actor="cs",
        kind="goodwill",
    )
    dpo = api_client_factory(scopes=["customers:privacy", "customers:read"], channel="backoffice")

    export = dpo.get(f"/api/v1/customers/{customer.reference}/export/").json()

    [exported] = export["orders"]
    [tender] = exported["payments"]
    assert (tender["kind"], tender["captured"], tender["refunded"]) == (
        "gift_card",
        "70.00",
        "20.00",
    )
    assert tender["gift_card"] == f"…{card.card.code_last4}"
    assert card.code not in str(export)  # the bearer code itself is never exported
    assert [e["kind"] for e in tender["events"] if e["kind"] in ("captured", "refunded")] == [
        "captured",
        "refunded",
    ]
    [wallet] = export["payments.store_credit"]
    assert (wallet["balance"], wallet["entries"][0]["kind"]) == ("5.00", "goodwill")

    history = dpo.get(f"/api/v1/customers/{customer.reference}/history/").json()
    kinds = [entry["kind"] for entry in history["results"]]
    assert {"payment_captured", "payment_refunded", "store_credit_goodwill"} <= set(kinds)
    refund = next(e for e in history["results"] if e["kind"] == "payment_refunded")
    assert refund["data"] == {
        "order": order.reference,
        "tender": "gift_card",
        "amount": "20.00",
        "currency": "EUR",
    }

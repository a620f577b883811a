"""A till captures the consent of the customer at the counter, with the sale."""

import pytest

from customers.models import ConsentEvent
from customers.selectors import customer_has_consent, customer_resolve_one
from tests.integrations.test_pos import post, sale
from tests.inventory.conftest import receive

pytestmark = pytest.mark.django_db


def test_a_sale_records_the_consents_given_at_the_counter_once(client, integration, store, sku):
    receive(store, sku, 5)
    customer = {
        "email": "lea.martin@gmail.com",
        "consents": [
            {"purpose": "marketing", "channel": "email", "granted": True, "wording_version": "v3"},
            {"purpose": "marketing", "channel": "sms", "granted": False, "wording_version": "v3"},
        ],
    }

    assert post(client, sale("C1", customer=customer)).status_code == 202
    assert post(client, sale("C1", customer=customer)).status_code == 200  # retried

    person = customer_resolve_one(kind="email", value="lea.martin@gmail.com")
    assert customer_has_consent(person, "marketing", "email")
    assert not customer_has_consent(person, "marketing", "sms")
    log = ConsentEvent.objects.filter(customer=person).order_by("pk")
    assert [(e.channel, e.granted, e.sales_channel, e.wording_version) for e in log] == [
        ("email", True, "store", "v3"),
        ("sms", False, "store", "v3"),
    ]
    assert log[0].actor == "pos:paris-tills/T1"


def test_a_consent_without_its_wording_is_refused_with_the_event(client, integration, store, sku):
    receive(store, sku, 5)
    customer = {
        "email": "lea@gmail.com",
        "consents": [{"purpose": "marketing", "channel": "email", "granted": True}],
    }

    response = post(client, sale("C2", customer=customer))

    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert not ConsentEvent.objects.exists()

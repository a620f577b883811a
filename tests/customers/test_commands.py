"""The nightly commands: duplicate candidates, consent reconciliation."""

import pytest
from django.core.management import CommandError, call_command

from customers import services
from customers.models import Consent, MergeSuggestion
from customers.services import ConsentChange
from tests.customers.conftest import identify
from tests.customers.factories import AddressFactory, CustomerFactory

pytestmark = pytest.mark.django_db


def test_find_duplicates_records_suggestions_once(capsys):
    a = CustomerFactory(first_name="Zoé", last_name="Moreau")
    b = CustomerFactory(first_name="Zoe", last_name="Moreau")
    AddressFactory(customer=a, postcode="33000")
    AddressFactory(customer=b, postcode="33000")

    call_command("customers_find_duplicates")
    call_command("customers_find_duplicates")

    suggestion = MergeSuggestion.objects.get()
    assert (suggestion.customer_a_id, suggestion.customer_b_id, suggestion.rule) == (
        a.pk,
        b.pk,
        "name_postcode",
    )
    assert "1 new merge suggestion" in capsys.readouterr().out


def test_consent_reconcile_detects_and_repairs_a_state_that_drifted_from_the_log():
    customer = identify(email="drift@mail.fr").customer
    services.consent_record(
        customer=customer,
        sales_channel="web",
        actor="a",
        changes=[ConsentChange("marketing", "sms", True, "v1")],
    )
    call_command("customers_consent_reconcile")  # agrees: no error

    Consent.objects.update(granted=False)  # e.g. someone edited the table by hand

    with pytest.raises(CommandError):
        call_command("customers_consent_reconcile")
    call_command("customers_consent_reconcile", "--repair")
    assert Consent.objects.get().granted is True
    call_command("customers_consent_reconcile")

"""Customer service in the admin: search by any identifier, the 360° view, merge, unmerge, erase."""

import pytest

from customers import services
from customers.models import Customer, CustomerMerge, ErasureRecord, MergeSuggestion
from customers.services import ConsentChange
from tests.customers.conftest import identify, snapshot_db

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/customers/customer/"


def _found(response):
    return {c.pk for c in response.context["cl"].result_list}


@pytest.fixture
def camille():
    customer = identify(
        email="camille@mail.fr",
        phone="+33612345678",
        card="CARD-55",
        external=("crm", "CRM-1"),
        first_name="Camille",
        last_name="Martin",
    ).customer
    services.consent_record(
        customer=customer,
        sales_channel="store",
        actor="a",
        changes=[ConsentChange("marketing", "sms", True, "v3")],
    )
    return customer


@pytest.mark.parametrize(
    "term", ["06 12 34 56 78", " CAMILLE@Mail.fr", "card 55", "CRM-1", "Martin"]
)
def test_search_finds_a_customer_by_any_identifier_as_typed(admin_client, camille, term):
    identify(email="other@mail.fr", first_name="Paul", last_name="Durand")

    response = admin_client.get(CHANGELIST, {"q": term})

    assert response.status_code == 200
    assert _found(response) == {camille.pk}


def test_search_by_number_and_reference(admin_client, camille):
    assert _found(admin_client.get(CHANGELIST, {"q": camille.number})) == {camille.pk}
    assert _found(admin_client.get(CHANGELIST, {"q": str(camille.reference)})) == {camille.pk}


def test_the_360_view_shows_identifiers_consents_history_and_journal(admin_client, camille):
    other = identify(email="camille.old@mail.fr").customer
    merge = services.customer_merge(survivor=camille, absorbed=other, actor="staff:x")

    response = admin_client.get(f"{CHANGELIST}{camille.pk}/change/")

    page = response.content.decode()
    assert response.status_code == 200
    for text in [
        "+33612345678",
        "CARD55",
        "camille.old@mail.fr",
        "v3",
        "Consent marketing by sms",
        "Customer record created",
        f"merge #{merge.pk}",
    ]:
        assert text in page, text


def test_merge_from_a_suggestion_then_undo_it_from_the_journal(admin_client, camille):
    web = identify(email="camille.web@mail.fr").customer
    identify(card="CARD-55", email="camille.web@mail.fr")  # conflict -> suggestion
    suggestion = MergeSuggestion.objects.get()

    admin_client.post(
        "/admin/customers/mergesuggestion/",
        {"action": "_merge_older_survives", "_selected_action": [suggestion.pk]},
    )

    web.refresh_from_db()
    assert web.merged_into_id == camille.pk
    merge = CustomerMerge.objects.get()

    response = admin_client.post(
        "/admin/customers/customermerge/",
        {
            "action": "unmerge",
            "_selected_action": [merge.pk],
            "apply": "1",
            "reason": "two different people",
        },
    )

    assert response.status_code == 302
    web.refresh_from_db()
    assert web.merged_into_id is None and web.identifiers.count() == 1
    merge.refresh_from_db()
    assert merge.unmerge_reason == "two different people"


def test_a_blocked_merge_becomes_an_admin_message_and_changes_nothing(admin_client, camille):
    other = identify(card="CARD-66").customer
    before = snapshot_db()

    response = admin_client.post(
        CHANGELIST,
        {
            "action": "merge_customers",
            "_selected_action": [camille.pk, other.pk],
            "apply": "1",
            "survivor": camille.pk,
            "reason": "",
        },
        follow=True,
    )

    page = response.content.decode()
    assert "Both records hold a loyalty card" in page and "merge_blocked" not in page
    assert snapshot_db() == before

    # forcing it with a reason goes through
    admin_client.post(
        CHANGELIST,
        {
            "action": "merge_customers",
            "_selected_action": [camille.pk, other.pk],
            "apply": "1",
            "survivor": camille.pk,
            "reason": "lost her first card",
            "force": "on",
        },
    )
    other.refresh_from_db()
    assert other.merged_into_id == camille.pk
    assert CustomerMerge.objects.get().forced


def test_erase_action_asks_for_a_reason_then_erases(admin_client, camille):
    form = admin_client.post(
        CHANGELIST, {"action": "erase_customers", "_selected_action": [camille.pk]}
    )
    assert form.status_code == 200 and "reason" in form.content.decode()

    admin_client.post(
        CHANGELIST,
        {
            "action": "erase_customers",
            "_selected_action": [camille.pk],
            "apply": "1",
            "reason": "GDPR request #7",
        },
    )

    camille.refresh_from_db()
    assert camille.status == "erased" and camille.first_name == ""
    assert ErasureRecord.objects.get().actor == "staff:admin"


def test_editing_the_profile_goes_through_the_service(admin_client, camille):
    response = admin_client.post(
        f"{CHANGELIST}{camille.pk}/change/",
        {
            "first_name": "Camille",
            "last_name": "Martin-Roux",
            "language": "en",
            "preferred_store": "",
            **{
                f"{prefix}-{k}": v
                for prefix in ("identifiers", "addresses", "consent_events")
                for k, v in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
            },
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    camille.refresh_from_db()
    assert (camille.last_name, camille.name_key, camille.language) == (
        "Martin-Roux",
        "camille martin roux",
        "en",
    )
    assert camille.events.filter(kind="profile_updated", actor="staff:admin").exists()
    assert Customer.objects.count() == 1


def test_erasure_renames_the_admin_log_entries_that_name_the_person(admin_client, camille):
    from django.contrib.admin.models import LogEntry

    admin_client.post(
        f"{CHANGELIST}{camille.pk}/change/",
        {
            "first_name": "Camille",
            "last_name": "Martin-Roux",
            "language": "fr",
            "preferred_store": "",
            **{
                f"{prefix}-{k}": v
                for prefix in ("identifiers", "addresses", "consent_events")
                for k, v in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
            },
        },
    )
    assert LogEntry.objects.filter(object_repr__contains="Camille").exists()

    services.customer_erase(customer=camille, actor="staff:dpo", reason="GDPR request #8")

    assert list(LogEntry.objects.values_list("object_repr", flat=True)) == ["(erased customer)"]

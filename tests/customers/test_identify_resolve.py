"""Identify-or-create and resolve: matching rules, normalisation, placeholder values."""

import pytest

from customers import selectors
from customers.exceptions import InvalidIdentifier, NoUsableIdentifier
from customers.identifiers import customer_number_is_valid, luhn_check_digit
from customers.models import (
    Customer,
    CustomerEvent,
    CustomerIdentifier,
    JunkIdentifierPattern,
    MergeSuggestion,
)
from tests.customers.conftest import identify, snapshot_db
from tests.factories import LocationFactory

pytestmark = pytest.mark.django_db


def test_a_new_person_is_created_with_normalised_identifiers_and_a_valid_number():
    # when a web checkout sends what it knows
    result = identify(
        email="  Camille.Martin@Laposte.NET ",
        phone="06 12 34 56 78",
        first_name="Camille",
        last_name="Martin",
    )

    # then one customer exists, with identifiers stored normalised and the raw form kept
    assert result.created
    customer = result.customer
    assert customer_number_is_valid(customer.number)
    rows = {
        (r.kind, r.value_normalised, r.value_raw, r.is_primary) for r in customer.identifiers.all()
    }
    assert rows == {
        ("email", "camille.martin@laposte.net", "Camille.Martin@Laposte.NET", True),
        ("phone", "+33612345678", "06 12 34 56 78", True),
    }
    assert list(customer.events.values_list("kind", flat=True).order_by("pk")) == [
        "created",
        "identifier_added",
        "identifier_added",
    ]


def test_the_same_email_in_another_form_finds_the_same_person_and_attaches_the_new_phone():
    # given a customer known by email
    first = identify(email="camille@mail.fr").customer

    # when the till identifies her by the same email, typed differently, plus her phone
    again = identify(email=" CAMILLE@mail.FR", phone="+33 6 12 34 56 78", channel="store")

    # then it is her, and she now has the phone
    assert not again.created and again.customer.pk == first.pk
    assert again.matched_by.kind == "email"
    assert [i.value for i in again.attached] == ["+33612345678"]
    assert Customer.objects.count() == 1
    assert selectors.customer_resolve_one(kind="phone", value="0612345678").pk == first.pk


def test_a_loyalty_card_wins_over_an_email_that_belongs_to_someone_else():
    # given two customers: one with the card, one with the email
    card_owner = identify(card="LC 0042 1234").customer
    email_owner = identify(email="shared@mail.fr").customer
    before = set(CustomerIdentifier.objects.values_list("kind", "customer_id"))

    # when a till sends both
    result = identify(card="lc00421234", email="shared@mail.fr", channel="store")

    # then the card's owner is returned, nothing is merged or moved, a suggestion is recorded
    assert result.customer.pk == card_owner.pk and result.matched_by.kind == "loyalty_card"
    assert [i.value for i in result.conflicts] == ["shared@mail.fr"]
    assert set(CustomerIdentifier.objects.values_list("kind", "customer_id")) == before
    suggestion = MergeSuggestion.objects.get()
    assert {suggestion.customer_a_id, suggestion.customer_b_id} == {card_owner.pk, email_owner.pk}
    assert suggestion.rule == "identify_conflict" and suggestion.status == "open"

    # and the same call again does not pile up suggestions
    identify(card="lc00421234", email="shared@mail.fr", channel="store")
    assert MergeSuggestion.objects.count() == 1


def test_priority_is_card_then_external_then_email_then_phone():
    by_phone = identify(phone="0611111112").customer
    by_email = identify(email="p@mail.fr").customer
    by_external = identify(external=("ecommerce", "ACC-1")).customer

    result = identify(phone="0611111112", email="p@mail.fr", external=("ecommerce", "ACC-1"))
    assert result.customer.pk == by_external.pk

    result = identify(phone="0611111112", email="p@mail.fr")
    assert result.customer.pk == by_email.pk
    assert by_phone.pk != by_email.pk


@pytest.mark.parametrize(
    "junk",
    [
        {"phone": "0000000000"},
        {"email": "noemail@magasin.fr"},
        {"email": "NO-EMAIL@x.fr"},
        {"card": "null"},
        {"card": "-1"},
        {"phone": "null"},
        {"email": "test@example.com"},
        {"phone": "06 00 00 00 00"},
        {"external": ("pos:PARIS01", "0")},
    ],
)
def test_placeholder_values_never_match_and_are_never_stored(junk):
    # given a customer who was identified once with a placeholder next to a real email
    real = {"card": "REALCARD1"} if "card" not in junk else {"email": "real@mail.fr"}
    first = identify(**real, **junk)
    assert [i.raw for i in first.ignored]
    assert first.customer.identifiers.count() == 1

    # when another person's till sale carries the same placeholder alone
    before = snapshot_db()
    with pytest.raises(NoUsableIdentifier):
        identify(**junk)

    # then nobody is created or matched
    assert snapshot_db() == before


def test_the_store_own_phone_number_is_a_placeholder():
    LocationFactory(code="PARIS01", phone="01 42 60 00 01")

    result = identify(email="client@mail.fr", phone="+33142600001", channel="store")

    assert [i.value for i in result.ignored] == ["+33142600001"]
    assert not CustomerIdentifier.objects.filter(kind="phone").exists()
    assert selectors.customer_resolve_one(kind="phone", value="0142600001") is None


def test_extra_junk_patterns_come_from_settings_and_from_the_admin_table(settings):
    settings.CUSTOMERS_EXTRA_JUNK_VALUES = {"email": [r"caisse\d*@boutique\.fr"]}
    JunkIdentifierPattern.objects.create(kind="loyalty_card", pattern=r"9999\d+")

    result = identify(email="caisse3@boutique.fr", card="99991234", phone="0622334455")

    assert sorted(i.kind for i in result.ignored) == ["email", "loyalty_card"]
    assert list(result.customer.identifiers.values_list("kind", flat=True)) == ["phone"]


@pytest.mark.parametrize(
    "bad",
    [
        {"email": "not-an-email"},
        {"email": "jean@@mail.fr"},
        {"phone": "12345"},
        {"phone": "+33 6 12"},
        {"card": "!!"},
        {"external": ("", "X1")},
    ],
)
def test_malformed_identifiers_are_refused_and_nothing_is_written(bad):
    identify(email="existing@mail.fr")
    before = snapshot_db()

    with pytest.raises(InvalidIdentifier):
        identify(**{"card": "GOODCARD1", **bad})

    assert snapshot_db() == before


def test_an_existing_profile_is_completed_never_overwritten():
    customer = identify(email="c@mail.fr", first_name="Camille").customer

    identify(email="c@mail.fr", first_name="Kamel", last_name="Martin")

    customer.refresh_from_db()
    assert (customer.first_name, customer.last_name, customer.name_key) == (
        "Camille",
        "Martin",
        "camille martin",
    )
    assert CustomerEvent.objects.filter(kind="profile_updated").count() == 1


def test_resolve_by_each_kind_and_by_reference_or_number():
    customer = identify(
        email="r@mail.fr", phone="0612345679", card="CARD77", external=("crm", "C-9")
    ).customer

    assert selectors.customer_resolve_one(kind="email", value="R@MAIL.FR").pk == customer.pk
    assert selectors.customer_resolve_one(kind="phone", value="+33612345679").pk == customer.pk
    assert selectors.customer_resolve_one(kind="loyalty_card", value="card 77").pk == customer.pk
    assert (
        selectors.customer_resolve_one(kind="external", value="C-9", source="CRM").pk == customer.pk
    )
    assert selectors.customer_resolve_one(kind="external", value="C-9", source="ecommerce") is None
    assert selectors.customer_resolve_one(kind="email", value="unknown@mail.fr") is None
    assert selectors.customer_resolve_one(kind="email", value="garbage") is None
    assert selectors.customer_get(reference=str(customer.reference)).pk == customer.pk
    assert selectors.customer_get(reference=customer.number).pk == customer.pk


def test_resolving_one_email_is_one_query(django_assert_num_queries):
    identify(email="fast@mail.fr")
    selectors.customer_resolve_one(kind="email", value="other@mail.fr")  # placeholder rules cached

    with django_assert_num_queries(1):
        assert selectors.customer_resolve_one(kind="email", value="fast@mail.fr") is not None


def test_a_junk_pattern_or_store_phone_saved_now_applies_at_once_despite_the_cache():
    identify(email="warm@mail.fr")  # the placeholder rules are now cached

    JunkIdentifierPattern.objects.create(kind="email", pattern=r"magasin@.*")
    LocationFactory(code="LYON01", phone="04 72 00 00 01")
    result = identify(email="magasin@boutique.fr", phone="0472000001", card="REAL-CARD")

    assert sorted(i.kind for i in result.ignored) == ["email", "phone"]


def test_luhn_check_digit_catches_a_mistyped_digit():
    assert luhn_check_digit("7992739871") == "3"  # the textbook example
    number = identify(email="n@mail.fr").customer.number
    wrong = number[:3] + str((int(number[3]) + 1) % 10) + number[4:]
    assert not customer_number_is_valid(wrong)

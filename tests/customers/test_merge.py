"""Merge, the journal, unmerge, blockers, duplicate candidates, and the registry's merge hooks."""

import pytest

from common.exceptions import InvalidInput
from customers import selectors, services
from customers.exceptions import CustomerErased, MergeBlocked, MergeRefused, UnmergeRefused
from customers.models import (
    Address,
    ConsentEvent,
    Customer,
    CustomerEvent,
    CustomerIdentifier,
    MergeSuggestion,
)
from customers.registry import register_merge_blocker, register_merge_handler
from customers.services import ConsentChange
from tests.customers.conftest import identify, snapshot_db
from tests.customers.factories import AddressFactory, CustomerFactory, IdentifierFactory

pytestmark = pytest.mark.django_db


def _owners():
    return dict(CustomerIdentifier.objects.values_list("value_normalised", "customer_id"))


@pytest.fixture
def pair():
    """Two records of one person: the web account and a till profile."""
    web = identify(
        email="alice@mail.fr", external=("ecommerce", "W-1"), first_name="Alice"
    ).customer
    till = identify(phone="0612121212", card="CARD-1", first_name="Alice").customer
    AddressFactory(customer=till, postcode="69001")
    services.consent_record(
        customer=till,
        changes=[ConsentChange("marketing", "sms", True, "v1")],
        sales_channel="store",
        actor="test",
    )
    return web, till


def test_merge_moves_every_row_and_the_absorbed_reference_resolves_to_the_survivor(pair):
    web, till = pair
    till_rows = {
        "customers.customeridentifier": set(till.identifiers.values_list("pk", flat=True)),
        "customers.address": set(till.addresses.values_list("pk", flat=True)),
        "customers.consentevent": set(till.consent_events.values_list("pk", flat=True)),
        "customers.customerevent": set(till.events.values_list("pk", flat=True)),
    }

    # when customer service merges the till profile into the web account
    merge = services.customer_merge(survivor=web, absorbed=till, actor="staff:anna", reason="same")

    # then every row of the absorbed record now belongs to the survivor
    assert not CustomerIdentifier.objects.filter(customer=till).exists()
    assert not Address.objects.filter(customer=till).exists()
    assert not ConsentEvent.objects.filter(customer=till).exists()
    assert selectors.customer_resolve_one(kind="loyalty_card", value="CARD-1").pk == web.pk
    # and the absorbed reference and number keep resolving, to the survivor
    assert selectors.customer_get(reference=str(till.reference)).pk == web.pk
    assert selectors.customer_get(reference=till.number).pk == web.pk
    till.refresh_from_db()
    assert (till.status, till.merged_into_id) == ("merged", web.pk)
    # and the journal lists exactly which rows moved
    journal = {}
    for row in merge.rows.all():
        assert row.field_name == "customer"
        journal.setdefault(row.model_label, set()).add(int(row.object_pk))
    assert journal == {k: v for k, v in till_rows.items() if v}
    assert (merge.actor, merge.reason, merge.forced) == ("staff:anna", "same", False)
    # and the consents of both records are one state, equal to the log
    assert selectors.customer_has_consent(web, "marketing", "sms")
    assert selectors.customer_has_consent(till, "marketing", "sms")  # answers for its survivor
    assert selectors.consent_cache_mismatches() == []


def test_unmerge_puts_every_row_back_on_its_original_customer(pair):
    web, till = pair
    before = _owners()
    merge = services.customer_merge(survivor=web, absorbed=till, actor="staff:anna")
    # a new identifier added to the survivor after the merge stays with it
    services.identifier_add(
        customer=web,
        kind="email",
        value="alice.pro@mail.fr",
        sales_channel="backoffice",
        actor="staff:anna",
    )

    services.customer_unmerge(merge=merge, actor="staff:bob", reason="two different Alices")

    after = _owners()
    assert after.pop("alice.pro@mail.fr") == web.pk
    assert after == before
    till.refresh_from_db()
    assert (till.status, till.merged_into_id) == ("active", None)
    assert till.addresses.count() == 1
    assert not selectors.customer_has_consent(web, "marketing", "sms")
    assert selectors.customer_has_consent(till, "marketing", "sms")
    assert selectors.consent_cache_mismatches() == []
    merge.refresh_from_db()
    assert merge.unmerged_by == "staff:bob" and merge.unmerged_at is not None
    with pytest.raises(UnmergeRefused):
        services.customer_unmerge(merge=merge, actor="staff:bob", reason="again")


def test_primary_identifiers_of_the_absorbed_record_step_down_and_come_back_on_unmerge():
    a = identify(email="a1@mail.fr").customer
    b = identify(email="a2@mail.fr").customer

    merge = services.customer_merge(survivor=a, absorbed=b, actor="staff:x")
    assert list(
        a.identifiers.filter(is_primary=True).values_list("value_normalised", flat=True)
    ) == ["a1@mail.fr"]

    services.customer_unmerge(merge=merge, actor="staff:x", reason="mistake")
    assert b.identifiers.get().is_primary


@pytest.mark.parametrize(
    "refused",
    ["self", "absorbed_erased", "survivor_erased", "absorbed_merged"],
)
def test_impossible_merges_are_refused_and_change_nothing(refused):
    a, b, c = (identify(email=f"cust-{n}@mail.fr").customer for n in "abc")
    if refused == "absorbed_merged":
        services.customer_merge(survivor=c, absorbed=b, actor="t")
    if refused.endswith("erased"):
        services.customer_erase(
            customer=b if refused.startswith("absorbed") else a, actor="t", reason="GDPR request"
        )
    before = snapshot_db()

    with pytest.raises(MergeRefused):
        services.customer_merge(survivor=a, absorbed=a if refused == "self" else b, actor="t")

    assert snapshot_db() == before


def test_two_loyalty_cards_block_a_merge_unless_staff_force_it_with_a_reason():
    a = identify(card="CARD-A", email="x1@mail.fr").customer
    b = identify(card="CARD-B", email="x2@mail.fr").customer
    before = snapshot_db()

    with pytest.raises(MergeBlocked) as blocked:
        services.customer_merge(survivor=a, absorbed=b, actor="staff:x")
    assert blocked.value.details["blockers"] == [
        "Both records hold a loyalty card (two different card numbers)."
    ]
    with pytest.raises(MergeBlocked):
        services.customer_merge(
            survivor=a, absorbed=b, actor="batch", automatic=True, force=True, reason="x"
        )
    with pytest.raises(InvalidInput):
        services.customer_merge(survivor=a, absorbed=b, actor="staff:x", force=True, reason=" ")
    assert snapshot_db() == before

    merge = services.customer_merge(
        survivor=a, absorbed=b, actor="staff:x", force=True, reason="customer lost her first card"
    )
    assert merge.forced and len(merge.blockers_overridden) == 1
    assert a.identifiers.filter(kind="loyalty_card").count() == 2


def test_two_ecommerce_accounts_block_but_other_external_ids_do_not():
    a = identify(external=("ecommerce", "E1")).customer
    b = identify(external=("ecommerce", "E2")).customer
    c = identify(external=("crm", "C1")).customer

    with pytest.raises(MergeBlocked):
        services.customer_merge(survivor=a, absorbed=b, actor="t")
    services.customer_merge(survivor=a, absorbed=c, actor="t")


def test_an_unmerge_waits_until_a_later_merge_of_the_survivor_is_undone():
    a, b, c = (identify(email=f"chain{n}@mail.fr").customer for n in "abc")
    first = services.customer_merge(survivor=b, absorbed=a, actor="t")
    second = services.customer_merge(survivor=c, absorbed=b, actor="t")
    # the oldest reference follows the chain a -> b -> c
    assert selectors.customer_get(reference=str(a.reference)).pk == c.pk

    with pytest.raises(UnmergeRefused):
        services.customer_unmerge(merge=first, actor="t", reason="oops")

    services.customer_unmerge(merge=second, actor="t", reason="oops")
    services.customer_unmerge(merge=first, actor="t", reason="oops")
    assert _owners() == {"chaina@mail.fr": a.pk, "chainb@mail.fr": b.pk, "chainc@mail.fr": c.pk}


def test_an_erased_survivor_cannot_be_unmerged():
    a, b = (identify(email=f"e{n}@mail.fr").customer for n in "ab")
    merge = services.customer_merge(survivor=a, absorbed=b, actor="t")
    services.customer_erase(customer=a, actor="t", reason="GDPR")

    with pytest.raises(UnmergeRefused):
        services.customer_unmerge(merge=merge, actor="t", reason="oops")
    with pytest.raises(CustomerErased):
        selectors.customer_get(reference=str(b.reference))


def test_other_apps_merge_handlers_and_blockers_take_part(sandbox_registry):
    # given a "wallet" app that combines balances and records what it did
    wallets = {}
    calls = []

    def merge_wallets(survivor, absorbed):
        moved = wallets.pop(absorbed.pk, 0)
        wallets[survivor.pk] = wallets.get(survivor.pk, 0) + moved
        return {"moved": moved}

    def unmerge_wallets(survivor, absorbed, payload):
        calls.append(payload)
        wallets[survivor.pk] -= payload["moved"]
        wallets[absorbed.pk] = payload["moved"]

    register_merge_handler("wallet.balances", merge=merge_wallets, unmerge=unmerge_wallets)
    a, b = (identify(email=f"w{n}@mail.fr").customer for n in "ab")
    wallets.update({a.pk: 10, b.pk: 5})

    merge = services.customer_merge(survivor=a, absorbed=b, actor="t")
    assert wallets == {a.pk: 15} and merge.handler_results["wallet.balances"] == {"moved": 5}

    services.customer_unmerge(merge=merge, actor="t", reason="oops")
    assert wallets == {a.pk: 10, b.pk: 5} and calls == [{"moved": 5}]

    # and a registered blocker refuses a merge with its own reason
    register_merge_blocker("loyalty.tiers", lambda s, a: ["Both hold a gold loyalty account."])
    with pytest.raises(MergeBlocked) as blocked:
        services.customer_merge(survivor=a, absorbed=b, actor="t")
    assert blocked.value.details["blockers"] == ["Both hold a gold loyalty account."]


def test_a_merge_closes_the_open_suggestion_for_the_pair():
    a = identify(card="CARDZ").customer
    b = identify(email="z@mail.fr").customer
    identify(card="CARDZ", email="z@mail.fr")
    suggestion = MergeSuggestion.objects.get()

    services.customer_merge(survivor=a, absorbed=b, actor="staff:x")

    suggestion.refresh_from_db()
    assert suggestion.status == "merged" and suggestion.resolved_by == "staff:x"
    assert CustomerEvent.objects.filter(customer=a, kind="merged").count() == 1


def test_duplicate_candidates_follow_the_documented_rules():
    # same name + same postcode
    p1 = CustomerFactory(first_name="Léa", last_name="Durand")
    p2 = CustomerFactory(first_name="Lea", last_name="DURAND")
    AddressFactory(customer=p1, postcode="75011")
    AddressFactory(customer=p2, postcode="75011")
    # same name + phones with the same last 6 digits
    q1 = CustomerFactory(first_name="Hugo", last_name="Bernard")
    q2 = CustomerFactory(first_name="Hugo", last_name="Bernard")
    IdentifierFactory(customer=q1, kind="phone", value_normalised="+33612345678")
    IdentifierFactory(customer=q2, kind="phone", value_normalised="+33712345678")
    # same name + same email local part
    r1 = CustomerFactory(first_name="Inès", last_name="Petit")
    r2 = CustomerFactory(first_name="Ines", last_name="Petit")
    IdentifierFactory(customer=r1, value_normalised="ines.petit@gmail.com")
    IdentifierFactory(customer=r2, value_normalised="ines.petit@orange.fr")
    # same name only: not a candidate
    s1 = CustomerFactory(first_name="Jean", last_name="Roux")
    CustomerFactory(first_name="Jean", last_name="Roux")
    AddressFactory(customer=s1, postcode="13001")

    found = {(c.customer_a, c.customer_b, c.rule) for c in selectors.duplicate_candidates()}

    assert found == {
        (p1.pk, p2.pk, "name_postcode"),
        (q1.pk, q2.pk, "name_phone_tail"),
        (r1.pk, r2.pk, "name_email_local"),
    }

    # refreshing records them once; a dismissed pair is not suggested again
    assert services.duplicate_suggestions_refresh() == 3
    services.merge_suggestion_dismiss(
        suggestion=MergeSuggestion.objects.get(customer_a=p1), actor="staff:x"
    )
    assert services.duplicate_suggestions_refresh() == 0
    assert MergeSuggestion.objects.filter(status="open").count() == 2
    assert Customer.objects.count() == 8

"""Consents: an append-only log per purpose and channel; the current state is derived from it."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.exceptions import InvalidInput
from customers import selectors, services
from customers.models import Consent, ConsentEvent, Customer
from customers.services import ConsentChange
from tests.customers.conftest import identify, snapshot_db

pytestmark = pytest.mark.django_db


def test_a_consent_change_is_logged_with_who_when_where_and_wording():
    customer = identify(email="c1@mail.fr").customer

    services.consent_record(
        customer=customer,
        sales_channel="store",
        actor="api:pos-paris",
        changes=[ConsentChange("marketing", "sms", True, "2026-01")],
    )

    event = ConsentEvent.objects.get()
    assert (
        event.purpose,
        event.channel,
        event.granted,
        event.wording_version,
        event.sales_channel,
        event.actor,
    ) == ("marketing", "sms", True, "2026-01", "store", "api:pos-paris")
    assert selectors.customer_has_consent(customer, "marketing", "sms")
    assert not selectors.customer_has_consent(customer, "marketing", "email")  # never asked


def test_withdrawing_keeps_the_history_and_the_latest_decision_wins():
    customer = identify(email="c2@mail.fr").customer
    grant = ConsentChange("marketing", "email", True, "v1")
    withdraw = ConsentChange("marketing", "email", False, "v2")

    services.consent_record(customer=customer, changes=[grant], sales_channel="web", actor="a")
    services.consent_record(customer=customer, changes=[withdraw], sales_channel="app", actor="a")

    assert not selectors.customer_has_consent(customer.pk, "marketing", "email")
    assert list(customer.consent_events.order_by("pk").values_list("granted", flat=True)) == [
        True,
        False,
    ]
    state = {(r["purpose"], r["channel"]): r for r in selectors.consent_state(customer=customer)}
    assert state[("marketing", "email")]["wording_version"] == "v2"
    assert len(state) == 12  # 3 purposes x 4 channels, all answered
    assert selectors.consent_cache_mismatches() == []


@pytest.mark.parametrize(
    "bad",
    [
        ConsentChange("spam", "sms", True, "v1"),
        ConsentChange("marketing", "fax", True, "v1"),
        ConsentChange("marketing", "sms", True, ""),
        ConsentChange("marketing", "sms", "yes", "v1"),
    ],
)
def test_invalid_consent_changes_are_refused_and_nothing_is_logged(bad):
    customer = identify(email="c3@mail.fr").customer
    services.consent_record(
        customer=customer,
        sales_channel="web",
        actor="a",
        changes=[ConsentChange("analytics", "push", True, "v1")],
    )
    before = snapshot_db()

    with pytest.raises(InvalidInput):
        services.consent_record(
            customer=customer,
            changes=[ConsentChange("analytics", "push", False, "v2"), bad],
            sales_channel="web",
            actor="a",
        )

    assert snapshot_db() == before
    assert selectors.customer_has_consent(customer, "analytics", "push")


def test_an_erased_customer_never_has_consent():
    customer = identify(email="c4@mail.fr").customer
    services.consent_record(
        customer=customer,
        sales_channel="web",
        actor="a",
        changes=[ConsentChange("marketing", "sms", True, "v1")],
    )

    services.customer_erase(customer=customer, actor="staff:x", reason="GDPR request 1")

    assert not selectors.customer_has_consent(customer, "marketing", "sms")
    # the log is kept as the proof of what was consented when, and ends with the withdrawal
    log = list(ConsentEvent.objects.filter(customer=customer).order_by("pk"))
    assert [(e.granted, e.wording_version, e.actor) for e in log] == [
        (True, "v1", "a"),
        (False, "erasure", "customers:erase"),
    ]
    assert list(Consent.objects.values_list("granted", flat=True)) == [False]
    assert selectors.consent_cache_mismatches() == []


_runs = itertools.count()
_changes = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["marketing", "analytics"]),
        st.sampled_from(["sms", "email"]),
        st.booleans(),
        st.sampled_from(["change", "merge", "unmerge"]),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=_changes)
def test_the_current_state_always_equals_the_log_through_changes_merges_and_unmerges(steps):
    # hypothesis runs many examples in one test transaction: fresh people for each
    run = next(_runs)
    people = [identify(external=("crm", f"H-{run}-{i}")).customer for i in range(3)]
    merges = []
    for who, purpose, channel, granted, action in steps:
        person = people[who]
        if action == "change":
            services.consent_record(
                customer=person,
                sales_channel="web",
                actor="h",
                changes=[ConsentChange(purpose, channel, granted, "v")],
            )
        elif action == "merge":
            target = people[(who + 1) % 3]
            live = [
                selectors.customer_follow(Customer.objects.get(pk=p.pk)) for p in (person, target)
            ]
            if live[0].pk != live[1].pk:
                merges.append(
                    services.customer_merge(survivor=live[1], absorbed=live[0], actor="h")
                )
        elif merges:
            merge = merges.pop()
            services.customer_unmerge(merge=merge, actor="h", reason="h")

        assert selectors.consent_cache_mismatches() == []
    for merge in reversed(merges):
        services.customer_unmerge(merge=merge, actor="h", reason="h")
    assert selectors.consent_cache_mismatches() == []

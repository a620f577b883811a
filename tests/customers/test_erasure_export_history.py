"""Right to erasure, right of access (export), and the unified history."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from common.exceptions import InvalidInput
from customers import selectors, services
from customers.exceptions import CustomerErased, ErasureBlocked
from customers.models import (
    Customer,
    CustomerEvent,
    CustomerIdentifier,
    ErasureRecord,
    MergeSuggestion,
)
from customers.registry import (
    HistoryEntry,
    register_erasure_blocker,
    register_erasure_handler,
    register_export_contributor,
    register_history_provider,
)
from customers.services import ConsentChange
from tests.customers.conftest import identify, snapshot_db
from tests.customers.factories import AddressFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    customer = identify(
        email="alice@mail.fr",
        phone="0612121212",
        card="CARD-9",
        first_name="Alice",
        last_name="Martin",
    ).customer
    AddressFactory(customer=customer, line1="1 rue de la Paix", postcode="75002")
    services.consent_record(
        customer=customer,
        sales_channel="web",
        actor="a",
        changes=[ConsentChange("marketing", "email", True, "v1")],
    )
    return customer


# ---- erasure ---------------------------------------------------------------------------------


def test_erasure_anonymises_the_person_frees_identifiers_and_keeps_the_record(alice):
    twin = identify(email="alice.old@mail.fr", first_name="Alice", last_name="Martin").customer
    services.customer_merge(survivor=alice, absorbed=twin, actor="staff:x")
    bob = identify(email="bob@mail.fr").customer
    identify(email="bob@mail.fr", phone="06 12 12 12 12")  # the phone is Alice's: a suggestion
    assert MergeSuggestion.objects.filter(customer_b=bob).exists()

    record = services.customer_erase(
        customer=alice, actor="staff:dpo", reason="GDPR request #12", sales_channel="backoffice"
    )

    alice.refresh_from_db()
    twin.refresh_from_db()
    assert (alice.status, alice.first_name, alice.last_name, alice.name_key) == (
        "erased",
        "",
        "",
        "",
    )
    assert (twin.first_name, twin.last_name) == ("", "")  # the merged record too
    assert alice.erased_at is not None and Customer.objects.filter(pk=alice.pk).exists()
    assert not alice.identifiers.exists() and not alice.addresses.exists()
    assert not alice.events.exists()
    # the consent log stays, as the proof, closed by withdrawals: nothing is granted any more
    assert alice.consent_events.exists()
    assert not alice.consents.filter(granted=True).exists()
    # the erasure is recorded without personal data
    assert (record.actor, record.reason) == ("staff:dpo", "GDPR request #12")
    text = json.dumps(record.summary)
    assert "alice" not in text.lower() and "0612121212" not in text and "Martin" not in text
    assert record.summary["customers.identifiers"] == {"identifiers_deleted": 4}
    # no suggestion quotes her identifiers any more
    assert not MergeSuggestion.objects.exists()
    # the identifiers are free: someone else may use them now
    newcomer = identify(email="alice@mail.fr", card="CARD-9").customer
    assert newcomer.created_at and newcomer.pk != alice.pk
    assert selectors.customer_resolve_one(kind="email", value="alice@mail.fr").pk == newcomer.pk
    with pytest.raises(CustomerErased):
        selectors.customer_get(reference=str(alice.reference))


def test_erasure_is_refused_with_the_reason_while_an_order_is_open(alice, sandbox_registry):
    # given the orders app says one order is still open
    register_erasure_blocker(
        "orders.open", lambda c: ["Order W-1001 is still open."] if c.pk == alice.pk else []
    )
    before = snapshot_db()

    with pytest.raises(ErasureBlocked) as blocked:
        services.customer_erase(customer=alice, actor="staff:dpo", reason="GDPR")

    assert blocked.value.details == {"blockers": ["Order W-1001 is still open."]}
    assert snapshot_db() == before
    assert not ErasureRecord.objects.exists()


def test_other_apps_erasure_handlers_run_and_report_counts(alice, sandbox_registry):
    anonymised = []
    register_erasure_handler(
        "orders.addresses", lambda c: anonymised.append(c.pk) or {"shipping_addresses": 3}
    )

    record = services.customer_erase(customer=alice, actor="staff:dpo", reason="GDPR")

    assert anonymised == [alice.pk]
    assert record.summary["orders.addresses"] == {"shipping_addresses": 3}


def test_erasing_twice_or_without_a_reason_is_refused(alice):
    with pytest.raises(InvalidInput):
        services.customer_erase(customer=alice, actor="staff:dpo", reason="  ")
    assert CustomerIdentifier.objects.filter(customer=alice).count() == 3

    services.customer_erase(customer=alice, actor="staff:dpo", reason="GDPR")
    with pytest.raises(CustomerErased):
        services.customer_erase(customer=alice, actor="staff:dpo", reason="GDPR")
    assert ErasureRecord.objects.count() == 1


# ---- export ----------------------------------------------------------------------------------


def test_export_holds_everything_about_the_person_from_every_app(alice, sandbox_registry):
    register_export_contributor("orders", lambda c: [{"order": "W-1001", "total": "42.00 EUR"}])

    export = selectors.customer_export(customer=alice)

    json.dumps(export)  # serialisable as it is
    assert export["customer"]["first_name"] == "Alice"
    assert {i["value"] for i in export["identifiers"]} == {"alice@mail.fr", "+33612121212", "CARD9"}
    assert export["addresses"][0]["line1"] == "1 rue de la Paix"
    assert export["consents"]["log"][0]["wording_version"] == "v1"
    assert [e["kind"] for e in export["history"]][:1] == ["created"]
    assert export["orders"] == [{"order": "W-1001", "total": "42.00 EUR"}]


# ---- history ---------------------------------------------------------------------------------


def test_history_is_newest_first_across_providers_and_pages_without_gaps(alice, sandbox_registry):
    # given an orders app with 7 orders, two of them at the same instant as a customers event
    base = timezone.now() + timedelta(minutes=1)
    tie = CustomerEvent.objects.create(
        customer=alice, kind="profile_updated", occurred_at=base, data={"fields": ["first_name"]}
    )
    orders = [(base if i < 2 else base - timedelta(minutes=i), 100 + i) for i in range(7)]

    def orders_history(customer, *, before, limit):
        rows = [(at, pk) for at, pk in orders if customer.pk == alice.pk]
        if before is not None:
            rows = [
                r
                for r in rows
                if (r[0], "orders", r[1]) < (before.occurred_at, before.provider, before.pk)
            ]
        rows.sort(reverse=True)
        return [
            HistoryEntry(at, "orders", pk, "order_placed", f"Order {pk}") for at, pk in rows[:limit]
        ]

    register_history_provider("orders", orders_history)

    # when customer service pages through it 3 entries at a time
    seen, cursor = [], None
    while True:
        page = selectors.customer_history(customer=alice, cursor=cursor, limit=3)
        assert len(page.entries) <= 3
        seen += page.entries
        cursor = page.next_cursor
        if cursor is None:
            break

    # then every entry appears once, newest first, ties in a fixed order
    keys = [(e.occurred_at, e.provider, e.pk) for e in seen]
    assert keys == sorted(keys, reverse=True)
    assert len(set(keys)) == len(keys)
    expected_customers = alice.events.count() + alice.consent_events.count()
    assert len(seen) == 7 + expected_customers
    assert [e.pk for e in seen[:3]] == [101, 100, tie.pk]  # "orders" > "customers.events"
    assert {e.kind for e in seen} >= {
        "created",
        "identifier_added",
        "consent_changed",
        "order_placed",
    }


def test_a_forged_history_cursor_is_refused(alice):
    with pytest.raises(InvalidInput):
        selectors.customer_history(customer=alice, cursor="not-a-cursor")

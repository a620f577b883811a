"""Two channels identifying the same new person at the same second create ONE customer."""

import threading

import pytest
from django.db import connection, connections

from customers import services
from customers.models import Customer, CustomerIdentifier, MergeSuggestion

THREADS = 10

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _run_in_threads(calls):
    """Start every call at the same instant (barrier), each on its own connection."""
    barrier = threading.Barrier(len(calls))
    results, errors = [None] * len(calls), []

    def worker(index, call):
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


def test_ten_concurrent_identifies_with_the_same_email_create_one_customer():
    assert connection.vendor == "postgresql"

    # when ten channels send the same new email at the same instant
    def call(channel):
        return lambda: services.customer_identify_or_create(
            identifiers=[("email", "Same.Person@Mail.fr", "")],
            sales_channel=channel,
            actor=f"test:{channel}",
        )

    channels = ["web", "app", "store", "call_centre", "marketplace"] * 2
    results, errors = _run_in_threads([call(c) for c in channels])

    # then all of them got the same, single customer
    assert errors == []
    assert Customer.objects.count() == 1
    assert CustomerIdentifier.objects.filter(value_normalised="same.person@mail.fr").count() == 1
    assert {r.customer.pk for r in results} == {Customer.objects.get().pk}
    assert sum(r.created for r in results) == 1


def test_overlapping_identifiers_in_any_order_neither_duplicate_nor_deadlock():
    # when half the calls send (email, phone) and the other half (phone, email)
    def call(index):
        pair = [("email", "duo@mail.fr", ""), ("phone", "0611223344", "")]
        return lambda: services.customer_identify_or_create(
            identifiers=pair if index % 2 else pair[::-1], sales_channel="web", actor="test"
        )

    results, errors = _run_in_threads([call(i) for i in range(THREADS)])

    # then one customer holds both identifiers, and no call failed
    assert errors == []
    customer = Customer.objects.get()
    assert sorted(customer.identifiers.values_list("kind", flat=True)) == ["email", "phone"]
    assert {r.customer.pk for r in results} == {customer.pk}
    assert MergeSuggestion.objects.count() == 0

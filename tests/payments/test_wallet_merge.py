"""Store credit follows the RCU customer: merge adds balances up, unmerge splits them back."""

import pytest

from customers import selectors as customer_selectors
from customers import services as customer_services
from customers.exceptions import MergeBlocked
from payments import selectors
from payments.models import EntryKind, StoreCreditWallet
from payments.services import stored_value as sv
from tests.customers.factories import CustomerFactory
from tests.payments.conftest import D, balances, hold, key

pytestmark = pytest.mark.django_db


def credit(customer, amount, currency="EUR"):
    return sv.wallet_credit(
        customer=customer,
        amount=amount,
        currency=currency,
        idempotency_key=key("credit"),
        channel="web",
        actor="t",
    )


def wallet(customer, currency="EUR"):
    return StoreCreditWallet.objects.get(customer=customer, currency=currency)


def test_merge_adds_balances_up_and_unmerge_splits_them_back():
    # given two records of one person, each with store credit (one also in another currency)
    survivor, absorbed = CustomerFactory(), CustomerFactory()
    credit(survivor, "10.00")
    credit(absorbed, "7.50")
    credit(absorbed, "3.00", currency="GBP")
    # when they are merged
    merge = customer_services.customer_merge(survivor=survivor, absorbed=absorbed, actor="t")
    # then the survivor holds everything, and the absorbed record's wallets are empty
    assert balances(wallet(survivor)) == (D("17.50"), D("0.00"))
    assert balances(wallet(survivor, "GBP")) == (D("3.00"), D("0.00"))
    assert balances(wallet(absorbed)) == (D("0.00"), D("0.00"))
    absorbed.refresh_from_db()
    assert sv.wallet_for(customer=absorbed, currency="EUR") == wallet(survivor)
    assert selectors.ledger_mismatches() == []
    # when the merge is undone
    customer_services.customer_unmerge(merge=merge, actor="t", reason="two people")
    # then each gets back exactly what it had, through compensating entries
    assert balances(wallet(survivor)) == (D("10.00"), D("0.00"))
    assert balances(wallet(absorbed)) == (D("7.50"), D("0.00"))
    assert balances(wallet(absorbed, "GBP")) == (D("3.00"), D("0.00"))
    assert balances(wallet(survivor, "GBP")) == (D("0.00"), D("0.00"))
    kinds = list(wallet(absorbed).entries.order_by("pk").values_list("kind", flat=True))
    assert kinds == [EntryKind.CREDIT, EntryKind.MERGE_OUT, EntryKind.MERGE_IN]
    assert selectors.ledger_mismatches() == []


def test_unmerge_after_the_survivor_spent_the_credit_moves_back_what_is_left():
    survivor, absorbed = CustomerFactory(), CustomerFactory()
    credit(absorbed, "20.00")
    merge = customer_services.customer_merge(survivor=survivor, absorbed=absorbed, actor="t")
    sv.hold_capture(hold=hold(wallet(survivor), "15.00", channel="store"))
    customer_services.customer_unmerge(merge=merge, actor="t", reason="two people")
    assert balances(wallet(survivor)) == (D("0.00"), D("0.00"))
    assert balances(wallet(absorbed)) == (D("5.00"), D("0.00"))
    last = wallet(absorbed).entries.order_by("-pk").first()
    assert "15.00 EUR had been spent since" in last.reason
    assert selectors.ledger_mismatches() == []


def test_a_wallet_with_a_payment_in_progress_blocks_an_automatic_merge():
    survivor, absorbed = CustomerFactory(), CustomerFactory()
    credit(absorbed, "20.00")
    hold(wallet(absorbed), "5.00")
    with pytest.raises(MergeBlocked):
        customer_services.customer_merge(
            survivor=survivor, absorbed=absorbed, actor="t", automatic=True
        )
    assert balances(wallet(absorbed)) == (D("20.00"), D("5.00"))
    assert not StoreCreditWallet.objects.filter(customer=survivor).exists()


def test_store_credit_blocks_erasure_and_is_in_the_export():
    customer = CustomerFactory()
    credit(customer, "4.00")
    export = customer_selectors.customer_export(customer=customer)
    assert export["payments.store_credit"][0]["balance"] == "4.00"
    assert export["payments.store_credit"][0]["entries"][0]["amount"] == "4.00"
    blockers = customer_services.erasure_blockers(customer=customer)
    assert any("Store credit of 4.00 EUR" in reason for reason in blockers)

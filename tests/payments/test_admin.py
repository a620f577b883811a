"""Staff issue, block and adjust through forms that call the services; ledgers are read-only."""

import pytest
from django.contrib.messages import get_messages

from payments import codes, selectors
from payments.models import EntryKind, GiftCard, GiftCardEntry, GiftCardStatus
from tests.customers.factories import CustomerFactory
from tests.factories import UserFactory
from tests.payments.conftest import D, balances, issue, snapshot_payments

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_superuser=True))
    return client


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_issue_a_goodwill_card_shows_the_code_once(staff_client):
    # given the issue form
    page = staff_client.get("/admin/payments/giftcard/add/")
    key = page.context["form"].initial["idempotency_key"]
    data = {
        "idempotency_key": key,
        "amount": "20.00",
        "currency": "EUR",
        "source": "goodwill",
        "reason": "late delivery",
    }
    # when it is submitted twice (a double click)
    first = staff_client.post("/admin/payments/giftcard/add/", data, follow=True)
    second = staff_client.post("/admin/payments/giftcard/add/", data, follow=True)
    # then one card exists, and only the first answer showed its code
    card = GiftCard.objects.get()
    assert (card.balance, card.source) == (D("20.00"), "goodwill")
    assert card.issued_by == f"staff:{first.wsgi_request.user.username}"
    shown = [str(m) for m in first.context["messages"] if str(m).startswith("Code: ")]
    assert len(shown) == 1
    code = shown[0].split()[1]
    assert selectors.gift_card_by_code(code=code) == card
    assert not any(str(m).startswith("Code: ") for m in second.context["messages"])
    # and the card page never shows it
    detail = staff_client.get(f"/admin/payments/giftcard/{card.pk}/change/")
    assert (
        code not in detail.content.decode() and codes.normalise(code) not in detail.content.decode()
    )


def test_block_and_adjust_through_actions_write_entries(staff_client):
    card, _ = issue("30.00")
    url = "/admin/payments/giftcard/"
    staff_client.post(
        url,
        {
            "action": "block_cards",
            "_selected_action": [card.pk],
            "apply": "1",
            "idempotency_key": "k1",
            "reason": "stolen",
        },
    )
    staff_client.post(
        url,
        {
            "action": "adjust_balances",
            "_selected_action": [card.pk],
            "apply": "1",
            "idempotency_key": "k2",
            "amount": "-10.00",
            "reason": "partial fraud",
        },
    )
    card.refresh_from_db()
    assert card.status == GiftCardStatus.BLOCKED and "stolen" in card.block_reason
    assert balances(card) == (D("20.00"), D("0.00"))
    entry = GiftCardEntry.objects.filter(kind=EntryKind.ADJUSTMENT).get()
    assert (entry.amount, entry.reason) == (D("-10.00"), "partial fraud")


def test_a_refused_adjustment_shows_the_error_and_changes_nothing(staff_client):
    card, _ = issue("5.00")
    before = snapshot_payments()
    response = staff_client.post(
        "/admin/payments/giftcard/",
        {
            "action": "adjust_balances",
            "_selected_action": [card.pk],
            "apply": "1",
            "idempotency_key": "k3",
            "amount": "-9.00",
            "reason": "oops",
        },
        follow=True,
    )
    assert any("cannot be taken" in m for m in _messages(response))  # in words, no code
    assert snapshot_payments() == before


def test_goodwill_store_credit_from_the_wallet_list(staff_client):
    from payments.services import stored_value as sv

    customer = CustomerFactory()
    sv.wallet_credit(
        customer=customer,
        amount="1.00",
        currency="EUR",
        idempotency_key="c",
        channel="web",
        actor="t",
    )
    wallet = sv.wallet_for(customer=customer, currency="EUR")
    staff_client.post(
        "/admin/payments/storecreditwallet/",
        {
            "action": "goodwill_credit",
            "_selected_action": [wallet.pk],
            "apply": "1",
            "idempotency_key": "g",
            "amount": "4.00",
            "reason": "sorry",
        },
    )
    assert balances(wallet) == (D("5.00"), D("0.00"))


def test_balances_and_ledgers_cannot_be_edited_or_deleted_in_the_admin(staff_client):
    card, code = issue("5.00")
    entry = card.entries.get()
    assert (
        staff_client.post(
            f"/admin/payments/giftcard/{card.pk}/change/", {"balance": "500"}
        ).status_code
        == 403
    )
    assert staff_client.post(f"/admin/payments/giftcard/{card.pk}/delete/").status_code == 403
    assert staff_client.post(f"/admin/payments/giftcardentry/{entry.pk}/delete/").status_code == 403
    assert balances(card) == (D("5.00"), D("0.00"))
    # customer service finds a card by its full code
    listing = staff_client.get("/admin/payments/giftcard/", {"q": codes.display(code)})
    assert list(listing.context["cl"].result_list) == [card]

"""Loyalty accounts and their card numbers."""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction

from customers.identifiers import normalise_card
from customers.models import Customer, IdentifierKind
from customers.services import identifier_add
from loyalty.exceptions import (
    NoLoyaltyAccount,
)
from loyalty.models import (
    LoyaltyAccount,
)
from loyalty.selectors import customer_live


def _luhn_digit(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def card_number_new() -> str:
    """16 digits: prefix 29 (in-store range), 13 random digits and a Luhn check digit."""
    body = "29" + "".join(secrets.choice("0123456789") for _ in range(13))
    return body + _luhn_digit(body)


def account_open(
    *, customer: Customer, channel: str, actor: str, card_number: str | None = None
) -> LoyaltyAccount:
    """Enrol a customer: an account and its card number, attached to the customer record as its
    `loyalty_card` identifier (so the till resolves the person by scanning it). Opening an
    account the customer already has returns it.

    Raises InvalidIdentifier (malformed card), IdentifierTaken (card of someone else)."""

    customer = customer_live(customer)
    existing = LoyaltyAccount.objects.filter(customer=customer).first()
    if existing is not None:
        return existing
    number = normalise_card(card_number) if card_number else card_number_new()
    try:
        with transaction.atomic():
            identifier_add(
                customer=customer,
                kind=IdentifierKind.LOYALTY_CARD,
                value=number,
                is_primary=True,
                sales_channel=channel,
                actor=actor,
            )
            return LoyaltyAccount.objects.create(customer=customer, card_number=number)
    except IntegrityError:
        # A concurrent enrolment won: its card stands, this one's identifier is rolled back.
        account = LoyaltyAccount.objects.filter(customer=customer).first()
        if account is None:
            raise
        return account


def account_for(customer: Customer) -> LoyaltyAccount:
    account = LoyaltyAccount.objects.filter(customer=customer_live(customer)).first()
    if account is None:
        raise NoLoyaltyAccount()
    return account

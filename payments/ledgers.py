"""The two stored-value ledgers, gift cards and store credit: the same balance, entries and holds
on different tables. Services (`payments.services.stored_value`) and selectors both use them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from payments.models import (
    BalanceAccount,
    BalanceHold,
    GiftCard,
    GiftCardEntry,
    GiftCardHold,
    LedgerEntry,
    StoreCreditWallet,
    WalletEntry,
    WalletHold,
)

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Ledger:
    name: str
    account: type[BalanceAccount]
    entry: type[LedgerEntry]
    hold: type[BalanceHold]


GIFT_CARDS = Ledger("gift_card", GiftCard, GiftCardEntry, GiftCardHold)
WALLETS = Ledger("store_credit", StoreCreditWallet, WalletEntry, WalletHold)
_BY_MODEL = {
    model: ledger
    for ledger in (GIFT_CARDS, WALLETS)
    for model in (ledger.account, ledger.entry, ledger.hold)
}


def ledger_of(obj) -> Ledger:
    return _BY_MODEL[type(obj)]

"""How store credit follows the RCU customer (registered in PaymentsConfig.ready()).

- merge: each wallet of the absorbed record gives its available balance to the survivor's wallet
  in the same currency (a MERGE_OUT and a MERGE_IN entry); the payload lists every move.
- unmerge: each move is reversed by compensating entries — as much of it as the survivor's wallet
  still has available. If the survivor spent part of it since, the shortfall is reported in the
  entries' reason and left to customer service (no money is created).
- blocker: a wallet with an open hold (a payment in progress) is not merged automatically.
- erasure: refused while a wallet holds money or has an open hold (it would forfeit the
  customer's money); otherwise wallets stay, linked to the anonymised customer, for accounting.
- export: wallets, their entries and holds (amounts, dates, references); history: the entries.

All of it runs inside the customers service's transaction, with both customer rows locked.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from common.channels import SalesChannel
from common.exceptions import Conflict
from customers.registry import HistoryEntry
from payments.models import EntryKind, StoreCreditWallet, WalletEntry, WalletHold
from payments.services.stored_value import WALLETS, account_update, entry_create, wallet_for

ACTOR = "customers:merge"


def _move(*, source_id: int, target_id: int, amount: Decimal, key: str, reason: str) -> None:
    # Wallet rows are updated in primary-key order: two merges can never deadlock.
    out_first = source_id < target_id
    steps = [(source_id, -amount, EntryKind.MERGE_OUT), (target_id, amount, EntryKind.MERGE_IN)]
    for account_id, delta, kind in steps if out_first else reversed(steps):
        row = account_update(
            WALLETS,
            account_id,
            d_balance=delta,
            need_available=-delta if delta < 0 else None,
        )
        if row is None:  # a payment took store credit between our read and this update
            raise Conflict(
                "The store credit changed while the records were merged; retry the merge.",
                details={"wallet": [account_id]},
            )
        entry_create(
            WALLETS,
            account_id=account_id,
            amount=delta,
            balance_after=row[0],
            kind=kind,
            idempotency_key=f"{key}:{kind}",
            channel=SalesChannel.BACKOFFICE,
            actor=ACTOR,
            reason=reason,
        )


def merge_wallets(survivor, absorbed) -> dict:
    moves = []
    for wallet in StoreCreditWallet.objects.filter(customer=absorbed).order_by("pk"):
        wallet.refresh_from_db()
        amount = wallet.available
        if amount <= 0:
            continue
        target = wallet_for(customer=survivor, currency=wallet.currency)
        key = f"wallet-merge:{uuid.uuid4()}"
        _move(
            source_id=wallet.pk,
            target_id=target.pk,
            amount=amount,
            key=key,
            reason=f"Customer {absorbed.number} merged into {survivor.number}",
        )
        moves.append(
            {
                "from": wallet.pk,
                "to": target.pk,
                "amount": str(amount),
                "currency": wallet.currency,
                "key": key,
            }
        )
    return {"moves": moves}


def unmerge_wallets(survivor, absorbed, payload) -> None:
    for move in reversed((payload or {}).get("moves", [])):
        amount = Decimal(move["amount"])
        target = StoreCreditWallet.objects.get(pk=move["to"])
        back = min(amount, target.available)
        if back <= 0:
            continue
        reason = f"Merge of {absorbed.number} into {survivor.number} undone"
        if back < amount:
            reason += f"; {amount - back} {move['currency']} had been spent since (shortfall)"
        _move(
            source_id=target.pk,
            target_id=move["from"],
            amount=back,
            key=f"{move['key']}:undo",
            reason=reason,
        )


def open_holds_blocker(survivor, absorbed) -> list[str]:
    return [
        f"Store credit of {absorbed.number} in {w.currency} has a payment in progress "
        f"({w.held} held); merge once it is captured or released."
        for w in StoreCreditWallet.objects.filter(customer=absorbed, held__gt=0)
    ]


def erasure_blocker(customer) -> list[str]:
    return [
        f"Store credit of {w.balance} {w.currency} remains; refund or forfeit it first."
        for w in StoreCreditWallet.objects.filter(customer=customer, balance__gt=0)
    ]


def export_wallets(customer) -> list[dict]:
    wallets = StoreCreditWallet.objects.filter(customer=customer).order_by("currency")
    entries = WalletEntry.objects.filter(account__customer=customer).order_by("created_at", "pk")
    holds: dict[int, list[dict]] = {}
    for hold in WalletHold.objects.filter(account__customer=customer).order_by("created_at", "pk"):
        holds.setdefault(hold.account_id, []).append(
            {
                "at": hold.created_at.isoformat(),
                "amount": str(hold.amount),
                "captured": str(hold.captured_amount),
                "refunded": str(hold.refunded_amount),
                "status": hold.status,
                "channel": hold.channel,
                "reference": hold.reference,
            }
        )
    by_wallet: dict[int, list[dict]] = {}
    for e in entries:
        by_wallet.setdefault(e.account_id, []).append(
            {
                "at": e.created_at.isoformat(),
                "kind": e.kind,
                "amount": str(e.amount),
                "balance_after": str(e.balance_after),
                "channel": e.channel,
                "reference": e.reference,
            }
        )
    return [
        {
            "currency": w.currency,
            "balance": str(w.balance),
            "held": str(w.held),
            "entries": by_wallet.get(w.pk, []),
            "holds": holds.get(w.pk, []),
        }
        for w in wallets
    ]


def store_credit_history(customer, *, before, limit) -> list[HistoryEntry]:
    """Store credit received and spent, in the person's unified history."""
    entries = WalletEntry.objects.filter(account__customer=customer).select_related("account")
    if before is not None:
        entries = entries.filter(before.older_q("payments.store_credit", time_field="created_at"))
    return [
        HistoryEntry(
            occurred_at=entry.created_at,
            provider="payments.store_credit",
            pk=entry.pk,
            kind=f"store_credit_{entry.kind}",
            summary=f"Store credit {entry.get_kind_display().lower()}: {entry.amount} "
            f"{entry.account.currency} (balance {entry.balance_after})",
            sales_channel=entry.channel,
            data={
                "amount": str(entry.amount),
                "currency": entry.account.currency,
                "balance_after": str(entry.balance_after),
                "reference": entry.reference,
            },
        )
        for entry in entries.order_by("-created_at", "-pk")[:limit]
    ]

"""What loyalty does when the customer reference merges, unmerges or erases a customer."""

from __future__ import annotations

import secrets
from datetime import datetime

from django.utils import timezone

from customers.models import Customer
from loyalty.models import (
    LotKind,
    LoyaltyAccount,
    MovementKind,
    PointsLot,
    PointsOperation,
    PointsSpend,
    SourceType,
    SpendStatus,
)
from loyalty.services.ledger import (
    account_balance_change,
    account_lock,
    accounts_lock,
    lot_change,
    lot_create,
)


def accounts_merge(survivor: Customer, absorbed: Customer) -> dict:
    """Runs inside customers.customer_merge with both customers locked.

    The survivor has no account: the absorbed one becomes the survivor's (its card identifier
    moves with the customer links). Both have one: each open lot of the absorbed account is moved
    as a MERGE_IN lot of the survivor with its own earn date, pending date and expiry (a
    MERGE_OUT movement empties the original)."""
    source = LoyaltyAccount.objects.filter(customer=absorbed).first()
    if source is None:
        return {}
    target = LoyaltyAccount.objects.filter(customer=survivor).first()
    if target is None:
        LoyaltyAccount.objects.filter(pk=source.pk).update(customer=survivor)
        return {"account_moved": source.pk}
    locked = accounts_lock(source.pk, target.pk)
    source, target = locked[source.pk], locked[target.pk]
    now = timezone.now()
    key = f"merge:{source.pk}->{target.pk}:{secrets.token_hex(8)}"
    operation = PointsOperation.objects.create(
        idempotency_key=key, kind="merge", request_hash="", actor="customers:merge"
    )
    moves = lots_move(operation, source, target, now)
    return {"from": source.pk, "to": target.pk, "moves": moves, "key": key}


def lots_move(
    operation: PointsOperation,
    source: LoyaltyAccount,
    target: LoyaltyAccount,
    now: datetime,
    only: dict[int, int] | None = None,
) -> list[list[int]]:
    lots = PointsLot.objects.filter(account=source, remaining__gt=0, expires_at__gt=now)
    if only is not None:
        lots = lots.filter(pk__in=list(only))
    moves = []
    for lot in lots.order_by("expires_at", "pk"):
        points = lot.remaining if only is None else min(lot.remaining, only[lot.pk])
        if points <= 0:
            continue
        if not lot_change(operation, lot.pk, source.pk, -points, MovementKind.MERGE_OUT, at=now):
            raise RuntimeError(f"lot {lot.pk} changed during a merge")  # accounts are locked
        account_balance_change(source.pk, -points)
        new = lot_create(
            operation,
            target,
            kind=LotKind.MERGE_IN,
            source_type=SourceType.LOT,
            source_ref=str(lot.pk),
            amount=points,
            earned_at=lot.earned_at,
            available_at=lot.available_at,
            expires_at=lot.expires_at,
            channel=lot.channel,
            store=lot.store,
            origin_lot=lot,
        )
        moves.append([lot.pk, new.pk, points])
    return moves


def accounts_unmerge(survivor: Customer, absorbed: Customer, payload: dict) -> None:
    """Reverse a merge: a moved account goes back; moved lots go back as much as is left of them
    (points spent since stay spent: no points are created)."""
    payload = payload or {}
    if payload.get("account_moved"):
        LoyaltyAccount.objects.filter(pk=payload["account_moved"]).update(customer=absorbed)
        return
    if not payload.get("moves"):
        return
    locked = accounts_lock(payload["from"], payload["to"])
    source, target = locked[payload["to"]], locked[payload["from"]]
    operation = PointsOperation.objects.create(
        idempotency_key=f"{payload['key']}:undo",
        kind="unmerge",
        request_hash="",
        actor="customers:unmerge",
    )
    back = {new_lot: points for _, new_lot, points in payload["moves"]}
    lots_move(operation, source, target, timezone.now(), only=back)


def open_holds_blocker(survivor: Customer, absorbed: Customer) -> list[str]:
    return [
        f"Points hold {spend.pk} of {absorbed.number} is open ({spend.points} points for "
        f"{spend.reference}); merge once it is captured or released."
        for spend in PointsSpend.objects.filter(account__customer=absorbed, status=SpendStatus.HELD)
    ]


def account_erase(customer: Customer) -> dict:
    """GDPR erasure: the remaining points are forfeited — a FORFEIT movement per lot, and a
    warning in the erasure's answer — the card number is replaced; the ledger stays (no personal
    data in it) for accounting. Points are forfeited rather than blocking the erasure because
    they have no cash value (store credit, which is money owed, blocks it: payments)."""
    account = LoyaltyAccount.objects.filter(customer=customer).first()
    if account is None:
        return {}
    account = account_lock(account.pk)
    now = timezone.now()
    operation = PointsOperation.objects.create(
        idempotency_key=f"erase:{account.pk}:{secrets.token_hex(8)}",
        kind="erase",
        request_hash="",
        actor="customers:erase",
    )
    forfeited = 0
    for lot_id, remaining in PointsLot.objects.filter(account=account, remaining__gt=0).values_list(
        "pk", "remaining"
    ):
        lot_change(operation, lot_id, account.pk, -remaining, MovementKind.FORFEIT, at=now)
        forfeited += remaining
    if forfeited:
        account_balance_change(account.pk, -forfeited)
    LoyaltyAccount.objects.filter(pk=account.pk).update(
        card_number=f"ERASED{account.pk}", is_active=False
    )
    summary: dict = {"loyalty_points_forfeited": forfeited}
    if forfeited:
        summary["warning"] = (
            f"{forfeited} loyalty points were forfeited (recorded in the points ledger as "
            "'forfeit'); points have no cash value and are not refunded."
        )
    return summary

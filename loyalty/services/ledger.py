"""The points ledger's plumbing: settings, validation, idempotent operations
(`points_operation_run`), the account locks and the two writes every operation is made of
(a lot change and the account's cached balance)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db.models import F

from common.idempotency import idempotency_key_check, request_fingerprint, run_once
from customers.models import Customer
from loyalty.exceptions import (
    InvalidPoints,
)
from loyalty.models import (
    LoyaltyAccount,
    MovementKind,
    PointsLot,
    PointsMovement,
    PointsOperation,
    ProgramSettings,
)
from loyalty.selectors import customer_live
from stores.models import Location

MAX_POINTS = 10_000_000


def program_settings() -> ProgramSettings:
    """The one settings row (defaults when none was saved in the admin)."""
    return ProgramSettings.objects.order_by("pk").first() or ProgramSettings()


def validate_points(value, *, field: str = "points") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPoints(details={field: ["not a whole number"]})
    if value <= 0:
        raise InvalidPoints(details={field: ["must be > 0"]})
    if value > MAX_POINTS:
        raise InvalidPoints(f"At most {MAX_POINTS} points at once.", details={field: ["too large"]})
    return value


def points_operation_run(
    *,
    kind: str,
    idempotency_key: str,
    params: dict,
    channel: str,
    actor: str,
    body: Callable[[PointsOperation], dict],
) -> tuple[PointsOperation, bool]:
    """Run `body` once per key in one transaction; its dict is stored as the operation result.
    Returns (operation, replayed)."""
    key = idempotency_key_check(idempotency_key)
    fingerprint = request_fingerprint(kind, params)

    def perform() -> PointsOperation:
        # The unique key first: a concurrent duplicate waits here for the first to commit,
        # then fails and replays its result.
        operation = PointsOperation.objects.create(
            idempotency_key=key,
            kind=kind,
            request_hash=fingerprint,
            channel=channel,
            actor=actor[:150],
        )
        operation.result = body(operation)
        operation.save(update_fields=["result"])
        return operation

    return run_once(
        find=lambda: PointsOperation.objects.filter(idempotency_key=key).first(),
        same_request=lambda earlier: (earlier.kind, earlier.request_hash) == (kind, fingerprint),
        perform=perform,
        reused_message="This idempotency key was already used for a different points change.",
        key_first=True,
    )


def account_lock_live(customer: Customer) -> LoyaltyAccount | None:
    """Lock the account that holds this person's points now. A merge may commit while we wait
    for the lock (it locks the accounts too): the customer is then re-read after the lock is
    granted, and we move on to the survivor's account."""
    for _ in range(5):
        customer = customer_live(customer)
        account_id = (
            LoyaltyAccount.objects.filter(customer=customer, is_active=True)
            .values_list("pk", flat=True)
            .first()
        )
        if account_id is None:
            return None
        locked = (
            LoyaltyAccount.objects.select_for_update(of=("self",))
            .select_related("tier")
            .get(pk=account_id)
        )
        # A new statement after the lock: under READ COMMITTED it sees a merge that committed
        # while we waited.
        owner = Customer.objects.filter(pk=locked.customer_id).values("merged_into_id").first()
        if locked.customer_id == customer.pk and owner and owner["merged_into_id"] is None:
            return locked
    raise RuntimeError("customer merged repeatedly while locking its account")  # pragma: no cover


def accounts_lock(*ids: int) -> dict[int, LoyaltyAccount]:
    rows = LoyaltyAccount.objects.select_for_update().filter(pk__in=sorted(set(ids))).order_by("pk")
    return {row.pk: row for row in rows}


def account_lock(account_id: int) -> LoyaltyAccount:
    return accounts_lock(account_id)[account_id]


def lot_change(
    operation: PointsOperation,
    lot_id: int,
    account_id: int,
    delta: int,
    kind: str,
    *,
    at: datetime,
    spend_id: int | None = None,
    spendable_at: datetime | None = None,
) -> bool:
    """Change one lot's remaining by `delta` if it stays within bounds (and, when
    `spendable_at` is given, only if the lot is spendable then); append the movement."""
    lots = PointsLot.objects.filter(pk=lot_id)
    if delta < 0:
        lots = lots.filter(remaining__gte=-delta)
    else:
        lots = lots.filter(remaining__lte=F("amount") - delta)
    if spendable_at is not None:
        lots = lots.filter(available_at__lte=spendable_at, expires_at__gt=spendable_at)
    if not lots.update(remaining=F("remaining") + delta):
        return False
    PointsMovement.objects.create(
        operation=operation,
        account_id=account_id,
        lot_id=lot_id,
        kind=kind,
        delta=delta,
        spend_id=spend_id,
        occurred_at=at,
    )
    return True


def account_balance_change(account_id: int, delta: int) -> None:
    accounts = LoyaltyAccount.objects.filter(pk=account_id)
    if delta < 0:
        accounts = accounts.filter(points_remaining__gte=-delta)
    if not accounts.update(points_remaining=F("points_remaining") + delta):
        raise RuntimeError(f"loyalty account {account_id} cache would go negative")  # a bug


def lot_create(
    operation: PointsOperation,
    account: LoyaltyAccount,
    *,
    kind: str,
    source_type: str,
    source_ref: str,
    amount: int,
    earned_at: datetime,
    available_at: datetime,
    expires_at: datetime,
    channel: str = "",
    store: Location | None = None,
    origin_lot: PointsLot | None = None,
) -> PointsLot:
    lot = PointsLot.objects.create(
        account=account,
        kind=kind,
        source_type=source_type,
        source_ref=source_ref[:120],
        amount=amount,
        remaining=amount,
        earned_at=earned_at,
        available_at=available_at,
        expires_at=expires_at,
        channel=channel,
        store=store,
        origin_lot=origin_lot,
        operation=operation,
    )
    PointsMovement.objects.create(
        operation=operation,
        account=account,
        lot=lot,
        kind=MovementKind.CREDIT,
        delta=amount,
        occurred_at=earned_at,
    )
    account_balance_change(account.pk, amount)
    return lot


def lots_take_fefo(
    operation: PointsOperation,
    account: LoyaltyAccount,
    points: int,
    *,
    kind: str,
    at: datetime,
    spend_id: int | None = None,
    spendable_only: bool = True,
    first_lot_id: int | None = None,
) -> int:
    """Take up to `points` from the account's lots, soonest to expire first (after `first_lot_id`
    when given). The account must be locked. Returns the points taken."""
    lots = PointsLot.objects.filter(account=account, remaining__gt=0, expires_at__gt=at)
    if spendable_only:
        lots = lots.filter(available_at__lte=at)
    ordered = list(lots.order_by("expires_at", "pk").values_list("pk", "remaining"))
    if first_lot_id is not None:
        ordered.sort(key=lambda row: row[0] != first_lot_id)
    taken = 0
    for lot_id, remaining in ordered:
        if taken == points:
            break
        part = min(remaining, points - taken)
        if lot_change(
            operation,
            lot_id,
            account.pk,
            -part,
            kind,
            at=at,
            spend_id=spend_id,
            spendable_at=at if spendable_only else None,
        ):
            taken += part
    if taken:
        account_balance_change(account.pk, -taken)
    return taken

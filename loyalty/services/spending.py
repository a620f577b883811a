"""Spending points: hold, then capture or release (payment tenders and rewards), refunds of
spent points and staff adjustments."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import F
from django.utils import timezone

from common.channels import SalesChannel
from common.exceptions import InvalidInput
from customers.models import Customer
from loyalty.exceptions import (
    InsufficientPoints,
    InvalidPoints,
    NoLoyaltyAccount,
    RefundExceedsSpent,
    RewardUnavailable,
    SpendNotFound,
    SpendNotHeld,
)
from loyalty.models import (
    LotKind,
    MovementKind,
    PointsLot,
    PointsMovement,
    PointsOperation,
    PointsSpend,
    Reward,
    SourceType,
    SpendPurpose,
    SpendStatus,
)
from loyalty.selectors import points_summary
from loyalty.services.accounts import account_for
from loyalty.services.ledger import (
    account_balance_change,
    account_lock,
    account_lock_live,
    lot_change,
    lot_create,
    lots_take_fefo,
    points_operation_run,
    program_settings,
    validate_points,
)
from stores.models import Location


def points_hold(
    *,
    customer: Customer,
    points: int,
    reference: str,
    channel: str,
    idempotency_key: str,
    store: Location | None = None,
    purpose: str = SpendPurpose.TENDER,
    actor: str = "",
    ttl_minutes: int | None = None,
) -> PointsSpend:
    """Hold `points` of the spendable balance (soonest-expiring lots first) for an order or a till
    ticket. Raises InvalidPoints, NoLoyaltyAccount, InsufficientPoints (409: pending points are
    not spendable); nothing is held then."""
    points = validate_points(points)
    if not reference:
        raise InvalidInput("A reference is required.", details={"reference": ["blank"]})
    if purpose not in SpendPurpose.values:
        raise InvalidInput("Unknown purpose.", details={"purpose": [str(purpose)]})
    ttl = program_settings().hold_ttl_minutes if ttl_minutes is None else ttl_minutes
    params = {
        "customer": customer.pk,
        "points": points,
        "reference": reference,
        "purpose": purpose,
        "store": store.pk if store else None,
    }

    def body(operation: PointsOperation) -> dict:
        locked = account_lock_live(customer)
        if locked is None:
            raise NoLoyaltyAccount()
        now = timezone.now()
        spend = PointsSpend.objects.create(
            account=locked,
            purpose=purpose,
            reference=reference[:120],
            points=points,
            channel=channel,
            store=store,
            expires_at=now + timedelta(minutes=ttl) if ttl else None,
            operation=operation,
        )
        taken = lots_take_fefo(
            operation, locked, points, kind=MovementKind.HOLD, at=now, spend_id=spend.pk
        )
        if taken < points:
            # Short: every spendable point was taken, so `taken` is what was spendable.
            pending = points_summary(account=locked, at=now)["pending"]
            raise InsufficientPoints(
                f"Only {taken} points are spendable; {points} were asked.",
                details={"available": taken, "pending": pending, "requested": points},
            )
        return {"spend": spend.pk}

    operation, _ = points_operation_run(
        kind="hold",
        idempotency_key=idempotency_key,
        params=params,
        channel=channel,
        actor=actor,
        body=body,
    )
    return PointsSpend.objects.get(pk=operation.result["spend"])


def points_give_back(
    operation: PointsOperation, spend: PointsSpend, points: int, at: datetime
) -> None:
    """Return `points` of a hold to the lots it took them from, latest-taken first (so the part
    kept is the soonest-expiring). The account must be locked."""
    taken = list(
        PointsMovement.objects.filter(spend=spend, kind=MovementKind.HOLD)
        .order_by("-pk")
        .values_list("lot_id", "delta")
    )
    left = points
    for lot_id, delta in taken:
        if left == 0:
            break
        part = min(-delta, left)
        if not lot_change(
            operation,
            lot_id,
            spend.account_id,
            part,
            MovementKind.RELEASE,
            at=at,
            spend_id=spend.pk,
        ):
            raise RuntimeError(f"lot {lot_id} cannot take back {part} points")  # a bug
        left -= part
    account_balance_change(spend.account_id, points)


def spend_get(spend_id: int) -> PointsSpend:
    spend = PointsSpend.objects.filter(pk=spend_id).first()
    if spend is None:
        raise SpendNotFound(details={"hold": [str(spend_id)]})
    return spend


def spend_close(spend: PointsSpend, status: str, captured: int, now: datetime, expired_before=None):
    filters = {"pk": spend.pk, "status": SpendStatus.HELD}
    if expired_before is not None:
        filters["expires_at__lte"] = expired_before
    return bool(
        PointsSpend.objects.filter(**filters).update(
            status=status, captured_points=captured, closed_at=now
        )
    )


def points_capture(
    *, spend_id: int, idempotency_key: str, points: int | None = None, actor: str = ""
) -> PointsSpend:
    """Spend all (or, with `points`, part) of a hold; the rest goes back to its lots.

    Raises SpendNotFound, SpendNotHeld (already captured, released or expired), InvalidPoints."""
    spend = spend_get(spend_id)
    if points is not None:
        points = validate_points(points)
        if points > spend.points:
            raise InvalidPoints(
                "Cannot capture more than was held.", details={"points": [f"> {spend.points}"]}
            )
    capture = spend.points if points is None else points

    def body(operation: PointsOperation) -> dict:
        account_lock(spend.account_id)
        now = timezone.now()
        if not spend_close(spend, SpendStatus.CAPTURED, capture, now):
            raise SpendNotHeld(details={"status": [PointsSpend.objects.get(pk=spend.pk).status]})
        if capture < spend.points:
            points_give_back(operation, spend, spend.points - capture, now)
        return {"spend": spend.pk}

    points_operation_run(
        kind="capture",
        idempotency_key=idempotency_key,
        params={"spend": spend.pk, "points": capture},
        channel=spend.channel,
        actor=actor,
        body=body,
    )
    return PointsSpend.objects.get(pk=spend.pk)


def points_release(*, spend_id: int, idempotency_key: str, actor: str = "") -> PointsSpend:
    """Give a whole hold back to its lots. Raises SpendNotFound, SpendNotHeld."""
    spend = spend_get(spend_id)

    def body(operation: PointsOperation) -> dict:
        account_lock(spend.account_id)
        now = timezone.now()
        if not spend_close(spend, SpendStatus.RELEASED, 0, now):
            raise SpendNotHeld(details={"status": [PointsSpend.objects.get(pk=spend.pk).status]})
        points_give_back(operation, spend, spend.points, now)
        return {"spend": spend.pk}

    points_operation_run(
        kind="release",
        idempotency_key=idempotency_key,
        params={"spend": spend.pk},
        channel=spend.channel,
        actor=actor,
        body=body,
    )
    return PointsSpend.objects.get(pk=spend.pk)


def points_holds_expire(*, now: datetime | None = None, batch: int = 500) -> int:
    """Release holds past their expiry (abandoned carts, a till that never confirmed). Safe to
    run twice: each hold's key is `spend:<id>:expire` and its close is conditional."""
    now = now or timezone.now()
    ids = list(
        PointsSpend.objects.filter(status=SpendStatus.HELD, expires_at__lte=now)
        .order_by("expires_at", "pk")
        .values_list("pk", flat=True)[:batch]
    )
    expired = 0
    for spend_id in ids:
        spend = PointsSpend.objects.get(pk=spend_id)

        def body(operation: PointsOperation, spend: PointsSpend = spend) -> dict:
            account_lock(spend.account_id)
            if not spend_close(spend, SpendStatus.EXPIRED, 0, now, expired_before=now):
                return {"expired": False}
            points_give_back(operation, spend, spend.points, now)
            return {"expired": True}

        operation, replayed = points_operation_run(
            kind="hold_expire",
            idempotency_key=f"spend:{spend_id}:expire",
            params={"spend": spend_id},
            channel=SalesChannel.BACKOFFICE,
            actor="system:holds_expire",
            body=body,
        )
        expired += int(bool(operation.result.get("expired")) and not replayed)
    return expired


def points_spend_for_reward(
    *,
    customer: Customer,
    points: int,
    reward_ref: str,
    channel: str,
    idempotency_key: str,
    store: Location | None = None,
    actor: str = "",
) -> PointsSpend:
    """Buy a reward with points: a hold captured at once (same FEFO, same guarantees)."""
    spend = points_hold(
        customer=customer,
        points=points,
        reference=reward_ref,
        channel=channel,
        idempotency_key=f"{idempotency_key}:hold",
        store=store,
        purpose=SpendPurpose.REWARD,
        actor=actor,
        ttl_minutes=0,
    )
    return points_capture(
        spend_id=spend.pk, idempotency_key=f"{idempotency_key}:capture", actor=actor
    )


def reward_buy(
    *,
    customer: Customer,
    reward_code: str,
    channel: str,
    idempotency_key: str,
    store: Location | None = None,
    actor: str = "",
) -> PointsSpend:
    """Buy a catalogue reward with points (its cost, soonest-expiring lots first).
    Raises RewardUnavailable, NoLoyaltyAccount, InsufficientPoints; nothing is spent then."""
    reward = Reward.objects.filter(code=reward_code, is_active=True).first()
    if reward is None or (reward.channels and channel not in reward.channels):
        raise RewardUnavailable(details={"reward": [str(reward_code)]})
    return points_spend_for_reward(
        customer=customer,
        points=reward.points_cost,
        reward_ref=f"reward:{reward.code}",
        channel=channel,
        idempotency_key=idempotency_key,
        store=store,
        actor=actor,
    )


def points_refund_spent(
    *, spend_id: int, points: int, refund_ref: str, channel: str, actor: str = ""
) -> PointsLot:
    """Points spent on an order that is refunded come back as a NEW lot (spendable at once, with
    a fresh validity): never more than the spend captured minus what was already given back.
    Idempotent per (spend, refund_ref). Raises SpendNotFound, InvalidPoints, RefundExceedsSpent."""
    points = validate_points(points)
    spend = spend_get(spend_id)
    if not refund_ref:
        raise InvalidInput("A refund reference is required.", details={"refund_ref": ["blank"]})

    def body(operation: PointsOperation) -> dict:
        account = account_lock(spend.account_id)
        if not PointsSpend.objects.filter(
            pk=spend.pk,
            status=SpendStatus.CAPTURED,
            refunded_points__lte=F("captured_points") - points,
        ).update(refunded_points=F("refunded_points") + points):
            fresh = PointsSpend.objects.get(pk=spend.pk)
            raise RefundExceedsSpent(
                details={"refundable": fresh.captured_points - fresh.refunded_points}
            )
        now = timezone.now()
        lot = lot_create(
            operation,
            account,
            kind=LotKind.REFUND,
            source_type=SourceType.SPEND,
            source_ref=f"{spend.pk}:{refund_ref}",
            amount=points,
            earned_at=now,
            available_at=now,
            expires_at=now + timedelta(days=program_settings().validity_days),
            channel=channel,
        )
        return {"lot": lot.pk}

    operation, _ = points_operation_run(
        kind="refund_spent",
        idempotency_key=f"refund-spent:{spend.pk}:{refund_ref}",
        params={"spend": spend.pk, "points": points},
        channel=channel,
        actor=actor,
        body=body,
    )
    return PointsLot.objects.get(pk=operation.result["lot"])


def points_adjust(
    *,
    customer: Customer,
    points: int,
    reason: str,
    idempotency_key: str,
    actor: str,
    channel: str = SalesChannel.BACKOFFICE,
) -> PointsLot:
    """A goodwill credit: a new lot, spendable at once, with the normal validity."""
    points = validate_points(points)
    account_for(customer)
    if not reason.strip():
        raise InvalidInput("A reason is required.", details={"reason": ["blank"]})

    def body(operation: PointsOperation) -> dict:
        locked = account_lock_live(customer)
        if locked is None:
            raise NoLoyaltyAccount()
        now = timezone.now()
        lot = lot_create(
            operation,
            locked,
            kind=LotKind.ADJUSTMENT,
            source_type=SourceType.MANUAL,
            source_ref=reason[:120],
            amount=points,
            earned_at=now,
            available_at=now,
            expires_at=now + timedelta(days=program_settings().validity_days),
            channel=channel,
        )
        return {"lot": lot.pk}

    operation, _ = points_operation_run(
        kind="adjust",
        idempotency_key=idempotency_key,
        params={"customer": customer.pk, "points": points, "reason": reason},
        channel=channel,
        actor=actor,
        body=body,
    )
    return PointsLot.objects.get(pk=operation.result["lot"])

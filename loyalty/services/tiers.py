"""Points expiry and tiers."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from common.channels import SalesChannel
from loyalty.models import (
    LotKind,
    LoyaltyAccount,
    MovementKind,
    PointsLot,
    PointsMovement,
    PointsOperation,
    PointsReversal,
    Tier,
    TierChange,
)
from loyalty.services.ledger import (
    account_balance_change,
    account_lock,
    lot_change,
    points_operation_run,
    program_settings,
)


def points_expire(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Expire what is left of lots past their expiry: one operation per lot, keyed on the lot's
    last movement (`lot:<id>:expire:after:<movement id>`), so running twice expires once, and a
    lot given points back by a late hold release is expired again by the next run. Returns the
    points expired."""
    now = now or timezone.now()
    due = list(
        PointsLot.objects.filter(remaining__gt=0, expires_at__lte=now)
        .order_by("expires_at", "pk")
        .values_list("pk", "account_id", "remaining")[:batch]
    )
    expired = 0
    for lot_id, account_id, _remaining in due:
        movements = PointsMovement.objects.filter(lot_id=lot_id).order_by("-pk")
        last = movements.values_list("pk", flat=True).first()

        def body(operation: PointsOperation, lot_id=lot_id, account_id=account_id) -> dict:
            account_lock(account_id)
            left = PointsLot.objects.get(pk=lot_id).remaining
            if left == 0:
                return {"points": 0}
            lot_change(operation, lot_id, account_id, -left, MovementKind.EXPIRE, at=now)
            account_balance_change(account_id, -left)
            PointsLot.objects.filter(pk=lot_id).update(expired_at=now)
            return {"points": left}

        operation, replayed = points_operation_run(
            kind="expire",
            idempotency_key=f"lot:{lot_id}:expire:after:{last}",
            params={"lot": lot_id},
            channel=SalesChannel.BACKOFFICE,
            actor="system:expire",
            body=body,
        )
        if not replayed:
            expired += operation.result.get("points", 0)
    return expired


def qualifying_points(*, account: LoyaltyAccount, at: datetime) -> int:
    """Points earned on purchases over the rolling period ending at `at`, net of returns."""
    since = at - timedelta(days=program_settings().tier_period_days)
    lots = PointsLot.objects.filter(
        account=account, kind=LotKind.EARN, earned_at__gt=since, earned_at__lte=at
    )
    earned = lots.aggregate(total=Sum("amount"))["total"] or 0
    reversed_ = (
        PointsReversal.objects.filter(lot__in=lots).aggregate(total=Sum("points_due"))["total"] or 0
    )
    return earned - reversed_


def tier_for(points: int) -> Tier | None:
    return Tier.objects.filter(threshold_points__lte=points).order_by("-threshold_points").first()


def tier_set(account: LoyaltyAccount, tier: Tier | None, points: int, reason: str, at: datetime):
    TierChange.objects.create(
        account=account,
        from_tier=account.tier,
        to_tier=tier,
        qualifying_points=points,
        reason=reason,
        occurred_at=at,
    )
    period = timedelta(days=program_settings().tier_period_days)
    account.tier = tier
    account.tier_review_at = at + period if tier is not None else None
    account.save(update_fields=["tier", "tier_review_at"])


def tier_upgrade_check(*, account: LoyaltyAccount, at: datetime) -> Tier | None:
    """Upgrade at once when the rolling earned points reach a higher tier (never downgrade
    here). The account must be locked by the caller. Returns the new tier or None."""
    current = account.tier.threshold_points if account.tier else -1
    if not Tier.objects.filter(threshold_points__gt=current).exists():
        return None  # already at the top (or no tiers): no need to add up the period
    points = qualifying_points(account=account, at=at)
    best = tier_for(points)
    if best is not None and best.threshold_points > current:
        tier_set(account, best, points, "upgrade", at)
        return best
    return None


def tiers_review(*, now: datetime | None = None, batch: int = 1000) -> int:
    """At the end of the period a tier was held for, re-qualify: keep, lower (or raise) it to
    what the points earned over the last period give, and start a new period. Returns changes."""
    now = now or timezone.now()
    ids = list(
        LoyaltyAccount.objects.filter(tier_review_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:batch]
    )
    changed = 0
    for account_id in ids:
        with transaction.atomic():
            account = account_lock(account_id)
            if account.tier_review_at is None or account.tier_review_at > now:
                continue
            points = qualifying_points(account=account, at=now)
            tier = tier_for(points)
            if tier != account.tier:
                tier_set(account, tier, points, "review", now)
                changed += 1
            else:
                account.tier_review_at = now + timedelta(days=program_settings().tier_period_days)
                account.save(update_fields=["tier_review_at"])
    return changed

"""Reads with rules in them: balances (spendable / pending / held), lots, history, the proof that
the cached balances equal the ledger."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Q, Sum
from django.utils import timezone

from customers.models import Customer
from customers.selectors import customer_follow
from loyalty.models import (
    LoyaltyAccount,
    PointsLot,
    PointsMovement,
    PointsSpend,
    Reward,
    SpendStatus,
)


def customer_live(customer: Customer) -> Customer:
    """The record that holds this person now, read from the database (a Customer instance loaded
    before a merge still says it is active): follows `merged_into` to the survivor."""
    fresh = Customer.objects.filter(pk=customer.pk).first() or customer
    return customer_follow(fresh)


def account_get(*, customer: Customer) -> LoyaltyAccount | None:
    return LoyaltyAccount.objects.select_related("tier").filter(customer=customer).first()


def points_summary(*, account: LoyaltyAccount, at: datetime | None = None) -> dict[str, int]:
    """available: spendable now; pending: earned, spendable after the return window; held: in
    open holds (already out of the lots). Two queries."""
    at = at or timezone.now()
    live = Q(account=account, remaining__gt=0, expires_at__gt=at)
    totals = PointsLot.objects.aggregate(
        available=Sum("remaining", filter=live & Q(available_at__lte=at)),
        pending=Sum("remaining", filter=live & Q(available_at__gt=at)),
    )
    held = (
        PointsSpend.objects.filter(account=account, status=SpendStatus.HELD).aggregate(
            total=Sum("points")
        )["total"]
        or 0
    )
    return {
        "available": totals["available"] or 0,
        "pending": totals["pending"] or 0,
        "held": held,
    }


def lots_open(*, account: LoyaltyAccount, at: datetime | None = None) -> list[PointsLot]:
    at = at or timezone.now()
    return list(
        PointsLot.objects.filter(account=account, remaining__gt=0, expires_at__gt=at).order_by(
            "expires_at", "pk"
        )
    )


def movements_list(
    *, account: LoyaltyAccount, before_id: int | None = None, limit: int = 50
) -> list[PointsMovement]:
    movements = PointsMovement.objects.filter(account=account).select_related("lot", "spend")
    if before_id is not None:
        movements = movements.filter(pk__lt=before_id)
    return list(movements.order_by("-pk")[:limit])


def ledger_mismatches() -> list[dict]:
    """Every way the cached numbers can disagree with the ledger (empty list: all consistent):
    a lot whose remaining is not the sum of its movements, an account whose points_remaining is
    not the sum of its lots, a held spend whose hold movements do not sum to its points."""
    problems: list[dict] = []
    lots = PointsLot.objects.annotate(ledger=Sum("movements__delta")).values(
        "pk", "remaining", "ledger"
    )
    for lot in lots:
        if (lot["ledger"] or 0) != lot["remaining"]:
            problems.append(
                {"lot": lot["pk"], "remaining": lot["remaining"], "ledger": lot["ledger"]}
            )
    accounts = LoyaltyAccount.objects.annotate(lots_total=Sum("lots__remaining")).values(
        "pk", "points_remaining", "lots_total"
    )
    for account in accounts:
        if (account["lots_total"] or 0) != account["points_remaining"]:
            problems.append(
                {
                    "account": account["pk"],
                    "points_remaining": account["points_remaining"],
                    "lots": account["lots_total"],
                }
            )
    spends = PointsSpend.objects.annotate(out=Sum("movements__delta"), n=Count("movements")).values(
        "pk", "status", "points", "captured_points", "out"
    )
    for spend in spends:
        # What a spend still keeps out of the lots: all of it while held, the captured part after.
        kept = spend["points"] if spend["status"] == SpendStatus.HELD else spend["captured_points"]
        if -(spend["out"] or 0) != kept:
            problems.append({"spend": spend["pk"], "kept": kept, "ledger": -(spend["out"] or 0)})
    return problems


def rewards_list() -> list[Reward]:
    return list(Reward.objects.filter(is_active=True).order_by("points_cost", "code"))

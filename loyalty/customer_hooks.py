"""How loyalty follows the RCU customer (registered in LoyaltyConfig.ready()).

- merge: `services.accounts_merge` — each open lot of the absorbed account moves to the survivor
  with its own earn date, pending date and expiry; unmerge moves back what is left of them.
- blocker: an open points hold (a payment in progress) blocks an automatic merge.
- codes and redemptions are customer links: they follow the person on a merge (and back).
- erasure: remaining points are forfeited, the card number replaced; the ledger stays.
- export: account, lots, movements, codes and redemptions.
- history: one entry per ledger movement of the person's account(s).
"""

from __future__ import annotations

from typing import Any

from customers.models import Customer
from customers.registry import (
    HistoryCursor,
    HistoryEntry,
    register_customer_link,
    register_erasure_blocker,
    register_erasure_handler,
    register_export_contributor,
    register_history_provider,
    register_merge_blocker,
    register_merge_handler,
)
from loyalty import services
from loyalty.models import Coupon, CouponRedemption, LoyaltyAccount, PointsMovement, PointsSpend

HISTORY = "loyalty"

_SUMMARIES = {
    "credit": "{delta:+d} points ({lot_kind} {source})",
    "hold": "{delta:+d} points held ({reference})",
    "release": "{delta:+d} points released ({reference})",
    "expire": "{delta:+d} points expired",
    "forfeit": "{delta:+d} points forfeited (data erased)",
    "reverse": "{delta:+d} points reversed (goods returned)",
    "merge_out": "{delta:+d} points moved to a merged record",
}


def export_loyalty(customer: Customer) -> dict[str, Any]:
    account = LoyaltyAccount.objects.filter(customer=customer).select_related("tier").first()
    coupons = [
        {
            "campaign": c.campaign.name,
            "issued_at": c.issued_at.isoformat(),
            "issue_channel": c.issue_channel,
            "status": c.status,
        }
        for c in Coupon.objects.filter(customer=customer).select_related("campaign")
    ]
    redemptions = [
        {
            "campaign": r.campaign.name,
            "channel": r.channel,
            "store": r.store.code if r.store else None,
            "order": r.order_ref,
            "discount": str(r.discount),
            "currency": r.currency,
            "at": r.redeemed_at.isoformat(),
        }
        for r in CouponRedemption.objects.filter(customer=customer).select_related(
            "campaign", "store"
        )
    ]
    if account is None:
        return {"account": None, "coupons": coupons, "redemptions": redemptions}
    return {
        "account": {
            "card_number": account.card_number,
            "tier": account.tier.code if account.tier else None,
            "points_remaining": account.points_remaining,
            "lots": [
                {
                    "kind": lot.kind,
                    "source": f"{lot.source_type}:{lot.source_ref}",
                    "amount": lot.amount,
                    "remaining": lot.remaining,
                    "earned_at": lot.earned_at.isoformat(),
                    "available_at": lot.available_at.isoformat(),
                    "expires_at": lot.expires_at.isoformat(),
                }
                for lot in account.lots.order_by("pk")
            ],
            "movements": [
                {"kind": m.kind, "delta": m.delta, "lot": m.lot_id, "at": m.occurred_at.isoformat()}
                for m in PointsMovement.objects.filter(account=account).order_by("pk")
            ],
        },
        "coupons": coupons,
        "redemptions": redemptions,
    }


def history(customer: Customer, *, before: HistoryCursor | None, limit: int) -> list[HistoryEntry]:
    movements = PointsMovement.objects.filter(account__customer=customer).select_related(
        "lot", "spend"
    )
    if before is not None:
        movements = movements.filter(before.older_q(HISTORY))
    entries = []
    for m in movements.order_by("-occurred_at", "-pk")[:limit]:
        values = {
            "delta": m.delta,
            "lot_kind": m.lot.kind,
            "source": f"{m.lot.source_type}:{m.lot.source_ref}",
            "reference": m.spend.reference if m.spend else "",
        }
        entries.append(
            HistoryEntry(
                m.occurred_at,
                HISTORY,
                m.pk,
                f"points_{m.kind}",
                _SUMMARIES.get(m.kind, m.kind).format(**values),
                m.lot.channel,
                {"delta": m.delta, "lot": m.lot_id, "kind": m.kind},
            )
        )
    return entries


def open_holds_erasure_blocker(customer: Customer) -> list[str]:
    return [
        f"Points hold {spend.pk} ({spend.points} points for {spend.reference}) is open; "
        "capture or release it first."
        for spend in PointsSpend.objects.filter(account__customer=customer, status="held")
    ]


def register() -> None:
    register_customer_link(Coupon, "customer")
    register_customer_link(CouponRedemption, "customer")
    register_merge_handler(
        "loyalty.accounts", merge=services.accounts_merge, unmerge=services.accounts_unmerge
    )
    register_merge_blocker("loyalty.open_holds", services.open_holds_blocker)
    register_export_contributor("loyalty", export_loyalty)
    register_erasure_blocker("loyalty.open_holds", open_holds_erasure_blocker)
    register_erasure_handler("loyalty.accounts", services.account_erase)
    register_history_provider(HISTORY, history)

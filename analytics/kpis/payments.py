"""Payments across channels: the tender mix of each channel (what customers paid with) and the
money owed to customers on gift cards and store credit (the liability on the balance sheet)."""

from __future__ import annotations

from django.db.models import Count, Sum
from django.utils.translation import gettext_lazy as _

from analytics.kpis.table import Table
from analytics.periods import Period
from analytics.stats import share
from payments.models import GiftCardEntry, Tender, WalletEntry


def tender_mix(period: Period) -> Table:
    tenders = Tender.objects.filter(amount_captured__gt=0, **period.within("created_at"))
    if period.channel:
        tenders = tenders.filter(channel=period.channel)
    found = list(
        tenders.values("channel", "kind", "currency")
        .annotate(tenders=Count("pk"), captured=Sum("amount_captured"))
        .order_by("channel", "currency", "kind")
    )
    totals: dict[tuple, object] = {}
    for row in found:
        key = (row["channel"], row["currency"])
        totals[key] = totals.get(key, 0) + row["captured"]
    rows = [
        {
            **row,
            "captured": str(row["captured"]),
            "share_of_channel": share(row["captured"], totals[(row["channel"], row["currency"])]),
        }
        for row in found
    ]
    return Table(
        name="tender_mix",
        title=_("Tender mix per channel"),
        columns=[
            ("channel", _("channel")),
            ("kind", _("tender")),
            ("currency", _("currency")),
            ("tenders", _("payments")),
            ("captured", _("captured")),
            ("share_of_channel", _("share of the channel")),
        ],
        rows=rows,
        notes=_("Captured amounts of the tenders created in the period."),
    )


def liabilities(period: Period) -> Table:
    """What customers can still spend, now (not a period figure): the balances' sum."""
    rows = []
    for kind, entries in (("gift_card", GiftCardEntry), ("store_credit", WalletEntry)):
        for row in entries.objects.values("account__currency").annotate(
            outstanding=Sum("amount"), accounts=Count("account", distinct=True)
        ):
            rows.append(
                {
                    "kind": kind,
                    "currency": row["account__currency"],
                    "accounts": row["accounts"],
                    "outstanding": str(row["outstanding"]),
                }
            )
    return Table(
        name="liabilities",
        title=_("Gift card and store credit outstanding"),
        columns=[
            ("kind", _("kind")),
            ("currency", _("currency")),
            ("accounts", _("accounts")),
            ("outstanding", _("outstanding")),
        ],
        rows=rows,
        notes=_("Balances today, whatever the period."),
    )

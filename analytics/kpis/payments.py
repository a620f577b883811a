"""Payments across channels: the tender mix of each channel (what customers paid with) and the
money owed to customers on gift cards and store credit (the liability on the balance sheet)."""

from __future__ import annotations

from django.db.models import Count, Sum
from django.utils.translation import gettext_lazy as _

from analytics.kpis.table import Table
from analytics.periods import Period
from analytics.stats import amount_text, share
from orders.selectors import orders_for_locations
from payments.models import GiftCard, StoreCreditWallet, Tender


def tender_mix(period: Period) -> Table:
    tenders = Tender.objects.filter(amount_captured__gt=0, **period.within("created_at"))
    if period.channel:
        tenders = tenders.filter(channel=period.channel)
    if period.location_ids is not None:  # a manager: the orders her stores serve
        served = orders_for_locations(period.location_ids).values("reference")
        tenders = tenders.filter(order_reference__in=served)
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
            "captured": amount_text(row["captured"], row["currency"]),
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
        notes=_(
            "Captured amounts of the tenders of orders created in the period (paid online, or "
            "at the till when the order is collected). A till's own sales are in the sales "
            "table: their tenders stay on the receipt."
        ),
    )


def liabilities(period: Period) -> Table:
    """What customers can still spend, now (not a period figure): the balances' sum. A
    chain-wide figure — gift cards and store credit are spent in any store — so a store
    manager's view has no rows."""
    rows = []
    if period.location_ids is not None:
        return _liabilities_table(rows)
    # The accounts' balances are the ledger's cache, kept by its one writer (and reconciled
    # nightly): one pass over the accounts instead of summing every entry ever written.
    for kind, accounts in (("gift_card", GiftCard), ("store_credit", StoreCreditWallet)):
        for row in (
            accounts.objects.filter(balance__gt=0)
            .values("currency")
            .annotate(outstanding=Sum("balance"), accounts=Count("pk"))
            .order_by("currency")
        ):
            rows.append(
                {
                    "kind": kind,
                    "currency": row["currency"],
                    "accounts": row["accounts"],
                    "outstanding": amount_text(row["outstanding"], row["currency"]),
                }
            )
    return _liabilities_table(rows)


def _liabilities_table(rows: list[dict]) -> Table:
    return Table(
        name="liabilities",
        title=_("Gift card and store credit outstanding"),
        columns=[
            ("kind", _("kind")),
            ("currency", _("currency")),
            ("accounts", _("accounts with a balance")),
            ("outstanding", _("outstanding")),
        ],
        rows=rows,
        notes=_("Balances today, whatever the period; for the whole chain (head office)."),
    )

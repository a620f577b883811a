"""Loyalty and personal offers across channels: points earned and spent per channel, campaign
redemptions online versus in store, and the O2O conversion — recipients of an offer who bought
in a store within the campaign's window after receiving it."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.utils.translation import gettext_lazy as _

from analytics.kpis.table import Table
from analytics.periods import Period
from analytics.stats import share
from common.channels import ONLINE_CHANNELS, SalesChannel
from integrations.models import PosEventType, StoreReceipt
from loyalty.models import Campaign, Coupon, CouponRedemption, LotKind, PointsLot, PointsSpend
from orders.models import Order


def points(period: Period) -> Table:
    earned = PointsLot.objects.filter(kind=LotKind.EARN, **period.within("earned_at"))
    spent = PointsSpend.objects.filter(**period.within("created_at"))
    if period.channel:
        earned, spent = earned.filter(channel=period.channel), spent.filter(channel=period.channel)
    if period.location_ids is not None:
        spent = spent.filter(store_id__in=period.location_ids)
    by_channel: dict[str, dict] = {}
    for channel, amount in earned.values_list("channel").annotate(points=Sum("amount")):
        by_channel.setdefault(channel, {"channel": channel, "earned": 0, "spent": 0})
        by_channel[channel]["earned"] = amount or 0
    for channel, amount in spent.values_list("channel").annotate(points=Sum("captured_points")):
        by_channel.setdefault(channel, {"channel": channel, "earned": 0, "spent": 0})
        by_channel[channel]["spent"] = amount or 0
    return Table(
        name="points",
        title=_("Loyalty points per channel"),
        columns=[
            ("channel", _("channel")),
            ("earned", _("points earned")),
            ("spent", _("points spent")),
        ],  # fmt: skip
        rows=[by_channel[key] for key in sorted(by_channel)],
        notes=_("Earned: points credited on purchases. Spent: points captured as a tender."),
    )


def campaigns(period: Period) -> Table:
    """Per campaign issuing codes in the period: codes sent, redemptions online and in store,
    and the O2O conversion (recipients who then bought in a store within its O2O window)."""
    rows = []
    running = Campaign.objects.filter(coupons__issued_at__gte=period.start,
                                      coupons__issued_at__lt=period.end).distinct()  # fmt: skip
    for campaign in running.order_by("pk"):  # a handful of campaigns, one query each
        window = timedelta(days=campaign.o2o_days or 30)
        issued = Coupon.objects.filter(campaign=campaign, **period.within("issued_at"))
        bought_in_store = Exists(
            Order.objects.filter(
                customer=OuterRef("customer"),
                channel=SalesChannel.STORE,
                placed_at__gte=OuterRef("issued_at"),
                placed_at__lt=OuterRef("issued_at") + window,
            )
        ) | Exists(
            StoreReceipt.objects.filter(
                customer=OuterRef("customer"),
                kind=PosEventType.SALE,
                occurred_at__gte=OuterRef("issued_at"),
                occurred_at__lt=OuterRef("issued_at") + window,
            )
        )
        counts = issued.aggregate(
            recipients=Count("customer", distinct=True),
            converted=Count("customer", distinct=True, filter=Q(bought_in_store)),
        )
        redeemed = CouponRedemption.objects.filter(coupon__in=issued).aggregate(
            online=Count("pk", filter=Q(channel__in=ONLINE_CHANNELS)),
            in_store=Count("pk", filter=Q(channel=SalesChannel.STORE)),
        )
        rows.append(
            {
                "campaign": campaign.name,
                "codes": issued.count(),
                "redeemed_online": redeemed["online"],
                "redeemed_in_store": redeemed["in_store"],
                "recipients": counts["recipients"],
                "bought_in_store": counts["converted"],
                "o2o_days": window.days,
                "o2o_conversion": share(counts["converted"], counts["recipients"]),
            }
        )
    return Table(
        name="campaigns",
        title=_("Campaigns: redemptions and O2O conversion"),
        columns=[
            ("campaign", _("campaign")),
            ("codes", _("codes sent")),
            ("redeemed_online", _("redeemed online")),
            ("redeemed_in_store", _("redeemed in store")),
            ("recipients", _("recipients")),
            ("bought_in_store", _("bought in a store after")),
            ("o2o_days", _("O2O window (days)")),
            ("o2o_conversion", _("O2O conversion")),
        ],
        rows=rows,
        notes=_(
            "O2O: of the customers who received a code in the period, the share who bought in "
            "a store (a till receipt or an order placed at a till) within the campaign's "
            "window after receiving it, whether or not they used the code."
        ),
    )

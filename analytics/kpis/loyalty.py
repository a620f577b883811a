"""Loyalty and personal offers across channels: points earned and spent per channel, campaign
redemptions online versus in store, and the O2O conversion — recipients of an offer who then
visited a store within the campaign's window (loyalty's own definition of a store visit, so the
dashboard and the campaign report agree)."""

from __future__ import annotations

from django.db.models import Count, Q, Sum
from django.utils.translation import gettext_lazy as _

from analytics.kpis.table import Table
from analytics.periods import Period
from analytics.stats import share
from common.channels import ONLINE_CHANNELS, SalesChannel
from loyalty.models import Campaign, Coupon, CouponRedemption, LotKind, PointsLot, PointsSpend
from loyalty.selectors import campaign_store_visitors
from orders.selectors import orders_for_locations


def points(period: Period) -> Table:
    earned = PointsLot.objects.filter(kind=LotKind.EARN, **period.within("earned_at"))
    spent = PointsSpend.objects.filter(**period.within("created_at"))
    if period.channel:
        earned, spent = earned.filter(channel=period.channel), spent.filter(channel=period.channel)
    if period.location_ids is not None:
        earned = earned.filter(store_id__in=period.location_ids)
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
    and the O2O conversion (recipients who then visited a store within its O2O window). A
    manager sees the redemptions at her stores (online ones: of orders her stores serve) and
    the visits to her stores."""
    stores = period.location_ids
    rows = []
    running = Campaign.objects.filter(
        coupons__issued_at__gte=period.start, coupons__issued_at__lt=period.end
    ).distinct()
    for campaign in running.order_by("pk"):  # a handful of campaigns, a few queries each
        issued = Coupon.objects.filter(campaign=campaign, **period.within("issued_at"))
        redemptions = CouponRedemption.objects.filter(coupon__in=issued)
        online, in_store = Q(channel__in=ONLINE_CHANNELS), Q(channel=SalesChannel.STORE)
        if stores is not None:
            # a code is used after its issue, in the period: so is its order placed
            served = orders_for_locations(stores, placed_since=period.start).values("reference")
            online &= Q(order_ref__in=served)
            in_store &= Q(store_id__in=stores)
        redeemed = redemptions.aggregate(
            online=Count("pk", filter=online), in_store=Count("pk", filter=in_store)
        )
        recipients = issued.values("customer_id").distinct().count()
        visitors = campaign_store_visitors(
            campaign=campaign, issued=issued, store_ids=stores
        ).count()
        rows.append(
            {
                "campaign": campaign.name,
                "codes": issued.count(),
                "redeemed_online": redeemed["online"],
                "redeemed_in_store": redeemed["in_store"],
                "recipients": recipients,
                "bought_in_store": visitors,
                "o2o_days": campaign.o2o_days,
                "o2o_conversion": share(visitors, recipients),
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
            "a store (an identified till receipt, or a code redeemed at a till) within the "
            "campaign's window after their first code, whether or not they used it. An online "
            "order collected in a store is not a visit."
        ),
    )

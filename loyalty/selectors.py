"""Reads with rules in them: balances (spendable / pending / held), lots, history, the proof that
the cached balances equal the ledger; campaigns, who may be targeted with a campaign's data (the
consent rule), what a store visit is (the O2O rule) and the recipients of a campaign."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    UUIDField,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from common.channels import SalesChannel
from customers.exceptions import CustomerErased, CustomerNotFound
from customers.identifiers import customer_number_is_valid
from customers.models import Consent, Customer, CustomerStatus
from customers.selectors import customer_follow
from loyalty.exceptions import CampaignNotFound, TierNotFound
from loyalty.models import (
    Campaign,
    Coupon,
    CouponRedemption,
    IssueChannel,
    LotKind,
    LoyaltyAccount,
    PointsLot,
    PointsMovement,
    PointsSpend,
    Reward,
    SourceType,
    SpendStatus,
    Tier,
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


def tier_get(*, code: str) -> Tier:
    tier = Tier.objects.filter(code=code).first()
    if tier is None:
        raise TierNotFound(f"No tier with code {code!r}.", details={"segment_tier": [code[:40]]})
    return tier


# ---- campaigns -------------------------------------------------------------------------------


def _count(queryset: QuerySet) -> Coalesce:
    """COUNT(*) of a correlated queryset, as a scalar subquery (no GROUP BY in the outer query,
    so several counts over different tables do not multiply each other)."""
    counted = queryset.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def campaign_list() -> QuerySet[Campaign]:
    """Campaigns, newest first, with their codes issued and the size of their customer list."""
    targets = Campaign.target_customers.through.objects.filter(campaign=OuterRef("pk"))
    return (
        Campaign.objects.select_related("segment_tier", "segment_preferred_store")
        .annotate(
            codes_issued=_count(Coupon.objects.filter(campaign=OuterRef("pk"))),
            target_customers_count=_count(targets),
        )
        .order_by("-created_at", "-pk")
    )


def campaign_get(*, campaign_id: int, with_counts: bool = False) -> Campaign:
    """Raises CampaignNotFound (404 campaign_not_found)."""
    campaigns = campaign_list() if with_counts else Campaign.objects.all()
    campaign = campaigns.filter(pk=campaign_id).first()
    if campaign is None:
        raise CampaignNotFound(details={"campaign": [str(campaign_id)]})
    return campaign


def target_customers_resolve(references: Sequence[str]) -> list[Customer]:
    """The customers a campaign's list names, by reference (UUID) or customer number, in one
    query (plus one per merged record, followed to its survivor). Every unknown reference is
    named at once (404 customer_not_found); an erased person cannot be targeted (410
    customer_erased): a CRM still holding them has to purge them, not have them skipped."""
    wanted: dict[str, tuple[str, object]] = {}
    unknown: list[str] = []
    for raw in references:
        text = str(raw).strip()
        try:
            wanted[text] = ("reference", uuid.UUID(text))
        except ValueError:
            compact = text.replace(" ", "")
            if customer_number_is_valid(compact):
                wanted[text] = ("number", compact)
            else:
                unknown.append(text)
    uuids = [value for column, value in wanted.values() if column == "reference"]
    numbers = [value for column, value in wanted.values() if column == "number"]
    rows = Customer.objects.filter(Q(reference__in=uuids) | Q(number__in=numbers))
    by_key = {}
    for customer in rows:
        by_key[("reference", customer.reference)] = customer
        by_key[("number", customer.number)] = customer
    found: dict[int, Customer] = {}
    erased: list[str] = []
    for text, key in wanted.items():
        customer = by_key.get(key)
        if customer is None:
            unknown.append(text)
            continue
        customer = customer_follow(customer)
        if customer.status == CustomerStatus.ERASED:
            erased.append(text)
        else:
            found.setdefault(customer.pk, customer)
    if unknown:
        raise CustomerNotFound(
            f"{len(unknown)} unknown customer(s).", details={"target_customers": unknown[:50]}
        )
    if erased:
        raise CustomerErased(
            f"{len(erased)} customer(s) were erased at their request.",
            details={"target_customers": erased[:50]},
        )
    return list(found.values())


# Which consent (purpose marketing) an issue channel needs. A receipt is handed to the person at
# the till: any marketing consent will do (see docs/loyalty.md).
CAMPAIGN_CONSENT_PURPOSE = "marketing"
CAMPAIGN_CONSENT_CHANNELS = {
    IssueChannel.EMAIL: ("email",),
    IssueChannel.SMS: ("sms",),
    IssueChannel.PUSH: ("push",),
    IssueChannel.RECEIPT: ("email", "sms", "push"),
}


def campaign_consent_q(issue_channel: str) -> Q:
    """The one rule for using a person's data in a campaign (issuing a code to them, showing who
    they are among its recipients), as a filter on customers: an active record with a marketing
    consent granted on the campaign's issue channel. It is `customers.selectors.
    customer_has_consent` for a whole set at once: an erased record never consents, and a merged
    record holds no codes (they follow the survivor)."""
    consent = Consent.objects.filter(
        customer_id=OuterRef("pk"),
        purpose=CAMPAIGN_CONSENT_PURPOSE,
        channel__in=CAMPAIGN_CONSENT_CHANNELS[issue_channel],
        granted=True,
    )
    return Q(Exists(consent)) & Q(status=CustomerStatus.ACTIVE)


def customers_consenting(*, customer_ids: Iterable[int], issue_channel: str) -> set[int]:
    """Which of these customers a campaign on this issue channel may use (one query per 5,000)."""
    ids = list(customer_ids)
    consenting: set[int] = set()
    for start in range(0, len(ids), 5000):
        consenting.update(
            Customer.objects.filter(pk__in=ids[start : start + 5000])
            .filter(campaign_consent_q(issue_channel))
            .values_list("pk", flat=True)
        )
    return consenting


def store_visits_annotate(
    customers: QuerySet[Customer],
    *,
    since: str,
    days: int,
    store_ids: Sequence[int] | None = None,
) -> QuerySet[Customer]:
    """THE definition of a store visit, for the O2O count and the recipients list alike: a
    purchase in a store by the customer within `days` days after the datetime annotation
    `since` (since ≤ purchase ≤ since + days). A purchase in a store is a store receipt that
    earned points (a `store_receipt` earn lot) or a redemption at a till of any of the
    customer's codes (of any campaign). An online order collected in a store is not one. Nothing
    links a till redemption to the receipt of the same sale, so a sale that did both counts
    twice in `store_visits` (never in the number of visitors).

    Adds `store_visits` (how many) and `first_store_visit_at` (None without one); with
    `store_ids`, only visits to those stores count (a store manager's view)."""
    customers = customers.annotate(
        o2o_until=ExpressionWrapper(F(since) + timedelta(days=days), output_field=DateTimeField())
    )
    receipts = PointsLot.objects.filter(
        account__customer_id=OuterRef("pk"),
        kind=LotKind.EARN,
        source_type=SourceType.STORE_RECEIPT,
        earned_at__gte=OuterRef(since),
        earned_at__lte=OuterRef("o2o_until"),
    )
    at_till = CouponRedemption.objects.filter(
        customer_id=OuterRef("pk"),
        channel=SalesChannel.STORE,
        redeemed_at__gte=OuterRef(since),
        redeemed_at__lte=OuterRef("o2o_until"),
    )
    if store_ids is not None:
        receipts = receipts.filter(store_id__in=store_ids)
        at_till = at_till.filter(store_id__in=store_ids)
    first_receipt = Subquery(receipts.order_by("earned_at").values("earned_at")[:1])
    first_at_till = Subquery(at_till.order_by("redeemed_at").values("redeemed_at")[:1])
    return customers.annotate(
        store_visits=_count(receipts) + _count(at_till),
        # LEAST is NULL on SQLite as soon as one side is: each side falls back on the other.
        first_store_visit_at=Least(
            Coalesce(first_receipt, first_at_till), Coalesce(first_at_till, first_receipt)
        ),
    )


def _campaign_customers(
    campaign: Campaign, issued: QuerySet[Coupon] | None = None
) -> QuerySet[Customer]:
    """The campaign's recipients (customers holding one of its codes, or of the `issued` ones),
    with `first_issued_at`: the issue of their first code, where the O2O window starts."""
    issued = Coupon.objects.filter(campaign=campaign) if issued is None else issued
    codes = issued.filter(customer_id=OuterRef("pk"))
    return Customer.objects.filter(pk__in=issued.values("customer_id")).annotate(
        first_issued_at=Subquery(codes.order_by("issued_at").values("issued_at")[:1])
    )


def campaign_store_visitors(
    *,
    campaign: Campaign,
    issued: QuerySet[Coupon] | None = None,
    store_ids: Sequence[int] | None = None,
) -> QuerySet[Customer]:
    """Recipients who visited a store in the O2O window after their first code's issue. The
    KPI dashboard narrows it to the codes `issued` in its period and to a manager's stores."""
    return store_visits_annotate(
        _campaign_customers(campaign, issued),
        since="first_issued_at",
        days=campaign.o2o_days,
        store_ids=store_ids,
    ).filter(store_visits__gt=0)


RECIPIENT_FIELDS = (
    "customer",
    "customer_number",
    "identified",
    "codes",
    "issued_at",
    "redemptions",
    "redeemed_at",
    "redeemed_channel",
    "redeemed_store",
    "store_visits",
    "first_store_visit_at",
)


def campaign_recipients(*, campaign: Campaign) -> QuerySet[dict]:
    """One row per recipient, oldest issue first, in one query whatever their number: who
    (`customer` reference and `customer_number`, only when `identified`), how many codes and the
    first issue, redemptions of the campaign's codes (and where and when the first was), store
    visits in the O2O window (see `store_visits_annotate`).

    `identified` is `campaign_consent_q` today: a recipient who has withdrawn the consent since
    the issue, or was erased, stays in the list (the rows add up to the report) without anything
    that names them. The rows are plain dicts of these fields only, so no caller can reach for
    another column of the customer."""
    codes = Coupon.objects.filter(campaign=campaign, customer_id=OuterRef("pk"))
    redemptions = CouponRedemption.objects.filter(campaign=campaign, customer_id=OuterRef("pk"))
    first = redemptions.order_by("redeemed_at", "pk")
    recipients = store_visits_annotate(
        _campaign_customers(campaign), since="first_issued_at", days=campaign.o2o_days
    ).annotate(
        identified=Case(
            When(campaign_consent_q(campaign.issue_channel), then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        ),
        codes=_count(codes),
        issued_at=F("first_issued_at"),
        redemptions=_count(redemptions),
        redeemed_at=Subquery(first.values("redeemed_at")[:1]),
        redeemed_channel=Subquery(first.values("channel")[:1]),
        redeemed_store=Subquery(first.values("store__code")[:1]),
    )
    return (
        recipients.annotate(
            customer=Case(
                When(identified=True, then=F("reference")), default=None, output_field=UUIDField()
            ),
            customer_number=Case(
                When(identified=True, then=F("number")), default=None, output_field=CharField()
            ),
        )
        .order_by("first_issued_at", "pk")
        .values(*RECIPIENT_FIELDS)
    )

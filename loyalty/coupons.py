"""Personal offers: campaigns, one unguessable single-use code per targeted customer, and their
validation, hold (a cart), redemption and release.

A code is redeemed once, anywhere: its state changes only through conditional UPDATEs on its
row (`… SET status = 'redeemed' WHERE id = … AND <still usable by this caller>`), so of any number
of channels redeeming it at the same instant exactly one gets the row; the redemption row is
unique per code too. A hold (a storefront cart) reserves the code until `held_until`; an
abandoned cart's hold expires and frees it (lazily on the next use, and by a periodic task).
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from common.channels import is_online
from common.exceptions import IdempotencyKeyReused, InvalidInput
from common.money import parse_amount
from customers.models import Customer, CustomerStatus
from customers.selectors import customer_has_consent
from loyalty.exceptions import (
    BasketNotEligible,
    CouponAlreadyUsed,
    CouponChannelNotAllowed,
    CouponExpired,
    CouponHeldElsewhere,
    CouponNotFound,
    CouponNotOwned,
)
from loyalty.models import (
    Campaign,
    Coupon,
    CouponRedemption,
    CouponStatus,
    DiscountType,
    IssueChannel,
    LotKind,
    LoyaltyAccount,
    PointsLot,
    SourceType,
    TargetKind,
)
from loyalty.selectors import customer_live
from stores.models import Location

# Unambiguous alphabet (no 0/O, 1/I/L): 12 characters ≈ 60 bits, not guessable by enumeration.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 12

# Which consent (purpose marketing) an issue channel needs. A receipt is handed to the person at
# the till: any marketing consent will do (see docs/loyalty.md).
CONSENT_CHANNEL = {IssueChannel.EMAIL: "email", IssueChannel.SMS: "sms", IssueChannel.PUSH: "push"}


def hold_ttl() -> timedelta:
    return timedelta(seconds=getattr(settings, "LOYALTY_COUPON_HOLD_TTL_SECONDS", 30 * 60))


def code_new() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(raw: str) -> str:
    return "".join(ch for ch in str(raw or "").upper() if ch.isalnum())


# ---- issuing -----------------------------------------------------------------------------------


def _consenting(customer_ids: list[int], issue_channel: str) -> set[int]:
    """Which of these customers consented to marketing on the issue channel (a receipt: on any
    channel), through the customers app's `customer_has_consent` (merges followed, erased
    records never consent). One query per customer and channel: a bulk selector in the customers
    app would make large segments faster (see docs/loyalty.md)."""
    channel = CONSENT_CHANNEL.get(issue_channel)
    channels = [channel] if channel else ["email", "sms", "push"]
    return {
        customer_id
        for customer_id in customer_ids
        if any(customer_has_consent(customer_id, "marketing", c) for c in channels)
    }


def campaign_targets(*, campaign: Campaign, at: datetime | None = None) -> list[int]:
    """Customer ids the campaign targets (before the consent and limit checks)."""
    at = at or timezone.now()
    if campaign.target_kind == TargetKind.LIST:
        ids = campaign.target_customers.values_list("pk", flat=True)
        return sorted(
            Customer.objects.filter(pk__in=list(ids), status=CustomerStatus.ACTIVE).values_list(
                "pk", flat=True
            )
        )
    customers = Customer.objects.filter(status=CustomerStatus.ACTIVE)
    if campaign.segment_tier_id:
        customers = customers.filter(loyalty_account__tier_id=campaign.segment_tier_id)
    if campaign.segment_preferred_store_id:
        customers = customers.filter(preferred_store_id=campaign.segment_preferred_store_id)
    if campaign.segment_inactive_days is not None:
        # A purchase = a purchase that earned points (orders and store receipts); customers who
        # never bought are not "lapsed" and are left out.
        last = (
            PointsLot.objects.filter(kind=LotKind.EARN)
            .values("account__customer_id")
            .annotate(last=Max("earned_at"))
        )
        cutoff = at - timedelta(days=campaign.segment_inactive_days)
        customers = customers.filter(
            pk__in=[row["account__customer_id"] for row in last if row["last"] < cutoff]
        )
    if campaign.segment_marketing_consent:
        customers = customers.filter(consents__purpose="marketing", consents__granted=True)
    return sorted(set(customers.values_list("pk", flat=True)))


@dataclass(frozen=True)
class IssueResult:
    issued: int
    skipped_no_consent: int
    skipped_limit: int


def campaign_issue(*, campaign: Campaign, at: datetime | None = None) -> IssueResult:
    """One new code per targeted customer who consented to the campaign's issue channel and has
    fewer than `per_customer_limit` codes of it. Runs under a lock on the campaign row, so two
    concurrent issues cannot exceed the limit. Codes are random; a collision is retried."""
    at = at or timezone.now()
    if at >= campaign.ends_at:
        raise CouponExpired("The campaign is over.", details={"campaign": [str(campaign.pk)]})
    with transaction.atomic():
        Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
        counts = dict(
            Coupon.objects.filter(campaign=campaign)
            .values_list("customer_id")
            .annotate(n=Count("pk"))
            .values_list("customer_id", "n")
        )
        targets = campaign_targets(campaign=campaign, at=at)
        consenting = _consenting(targets, campaign.issue_channel)
        issued = no_consent = limit = 0
        new_coupons = []
        for customer_id in targets:
            if counts.get(customer_id, 0) >= campaign.per_customer_limit:
                limit += 1
            elif customer_id not in consenting:
                no_consent += 1
            else:
                new_coupons.append(
                    Coupon(
                        campaign=campaign,
                        customer_id=customer_id,
                        code=code_new(),
                        issue_channel=campaign.issue_channel,
                        issued_at=at,
                    )
                )
        for start in range(0, len(new_coupons), 1000):
            batch = new_coupons[start : start + 1000]
            try:
                with transaction.atomic():
                    Coupon.objects.bulk_create(batch)
            except IntegrityError:  # pragma: no cover - a 59-bit code collision: redraw one by one
                for coupon in batch:
                    while True:
                        try:
                            with transaction.atomic():
                                coupon.code = code_new()
                                coupon.save()
                            break
                        except IntegrityError:
                            continue
            issued += len(batch)
    return IssueResult(issued, no_consent, limit)


# ---- checking a code against a basket ----------------------------------------------------------


@dataclass(frozen=True)
class BasketLine:
    sku: str
    quantity: int
    amount: Decimal  # the line's total
    category: str = ""


@dataclass(frozen=True)
class Validation:
    coupon: Coupon
    eligible_amount: Decimal
    discount: Decimal
    basket_total: Decimal


def _coupon_by_code(code: str) -> Coupon:
    coupon = (
        Coupon.objects.select_related("campaign").filter(code=normalise_code(code)).first()
        if code
        else None
    )
    if coupon is None:
        raise CouponNotFound(details={"code": ["unknown"]})
    return coupon


def _basket(lines: Sequence[BasketLine], currency: str) -> list[BasketLine]:
    if not lines:
        raise InvalidInput("The basket is empty.", details={"lines": ["empty"]})
    cleaned = []
    for index, line in enumerate(lines):
        field = f"lines[{index}]"
        if isinstance(line.quantity, bool) or not isinstance(line.quantity, int):
            raise InvalidInput("Quantity must be whole.", details={field: ["quantity"]})
        if line.quantity <= 0:
            raise InvalidInput("Quantity must be > 0.", details={field: ["quantity"]})
        amount = parse_amount(line.amount, currency, field=f"{field}.amount")
        if amount < 0:
            raise InvalidInput("Amounts cannot be negative.", details={field: ["amount < 0"]})
        cleaned.append(BasketLine(line.sku, line.quantity, amount, line.category or ""))
    return cleaned


def coupon_validate(
    *,
    code: str,
    customer: Customer,
    channel: str,
    lines: Sequence[BasketLine],
    currency: str,
    at: datetime | None = None,
    hold_ref: str = "",
) -> Validation:
    """Check a code for this customer, channel and basket (no write). The discount is computed
    on the eligible lines (SKUs/categories of the campaign; all when it names none).

    Raises CouponNotFound, CouponNotOwned, CouponExpired, CouponChannelNotAllowed,
    BasketNotEligible, CouponAlreadyUsed, CouponHeldElsewhere."""
    at = at or timezone.now()
    coupon = _coupon_by_code(code)
    campaign = coupon.campaign
    if coupon.customer_id != customer_live(customer).pk:  # codes follow merges (a link)
        raise CouponNotOwned()
    if not (campaign.starts_at <= at < campaign.ends_at):
        raise CouponExpired(details={"valid_from": campaign.starts_at, "until": campaign.ends_at})
    if channel not in (campaign.channels or []):
        raise CouponChannelNotAllowed(details={"channels": campaign.channels})
    if coupon.status == CouponStatus.REDEEMED:
        raise CouponAlreadyUsed()
    if (
        coupon.status == CouponStatus.HELD
        and coupon.held_until is not None
        and coupon.held_until > at
        and coupon.hold_ref != hold_ref
    ):
        raise CouponHeldElsewhere()
    if currency != campaign.currency:
        raise BasketNotEligible(
            "The basket is in another currency.", details={"currency": [campaign.currency]}
        )
    basket = _basket(lines, currency)
    total = sum((line.amount for line in basket), Decimal(0))
    if total < campaign.min_basket:
        raise BasketNotEligible(
            f"The basket must reach {campaign.min_basket} {campaign.currency}.",
            details={"min_basket": str(campaign.min_basket), "basket_total": str(total)},
        )
    skus, categories = set(campaign.eligible_skus or []), set(campaign.eligible_categories or [])
    eligible = sum(
        (
            line.amount
            for line in basket
            if (not skus and not categories) or line.sku in skus or line.category in categories
        ),
        Decimal(0),
    )
    if eligible <= 0:
        raise BasketNotEligible(
            "No item of the basket is eligible for this offer.", details={"lines": ["none"]}
        )
    if campaign.discount_type == DiscountType.PERCENT:
        discount = (eligible * campaign.discount_value / 100).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
    else:
        discount = min(campaign.discount_value, eligible)
    return Validation(coupon, eligible, discount, total)


# ---- hold, redeem, release ---------------------------------------------------------------------


def _usable_by(hold_ref: str, at: datetime) -> Q:
    """Rows a caller may take: issued, or held by this caller, or held with an expired hold."""
    free = Q(status=CouponStatus.ISSUED) | Q(status=CouponStatus.HELD, held_until__lte=at)
    if hold_ref:
        free |= Q(status=CouponStatus.HELD, hold_ref=hold_ref)
    return free


def _raise_taken(coupon_id: int) -> None:
    fresh = Coupon.objects.get(pk=coupon_id)
    if fresh.status == CouponStatus.REDEEMED:
        raise CouponAlreadyUsed()
    raise CouponHeldElsewhere()


def coupon_hold(
    *,
    code: str,
    customer: Customer,
    channel: str,
    cart_ref: str,
    lines: Sequence[BasketLine],
    currency: str,
    ttl: timedelta | None = None,
) -> Validation:
    """Apply a code to a cart: validate, then reserve it for `cart_ref` until the hold expires.
    Holding again for the same cart extends the hold."""
    if not cart_ref:
        raise InvalidInput("A cart reference is required.", details={"cart_ref": ["blank"]})
    at = timezone.now()
    result = coupon_validate(
        code=code,
        customer=customer,
        channel=channel,
        lines=lines,
        currency=currency,
        at=at,
        hold_ref=cart_ref,
    )
    updated = Coupon.objects.filter(Q(pk=result.coupon.pk) & _usable_by(cart_ref, at)).update(
        status=CouponStatus.HELD,
        hold_ref=cart_ref[:120],
        hold_channel=channel,
        held_until=at + (ttl or hold_ttl()),
    )
    if not updated:
        _raise_taken(result.coupon.pk)
    return result


def coupon_release(*, code: str, customer: Customer, cart_ref: str) -> bool:
    """Free a code held for this cart (the cart dropped it). Returns False when it was not held
    for this cart (already free, expired and taken, or redeemed)."""
    coupon = _coupon_by_code(code)
    if coupon.customer_id != customer_live(customer).pk:  # codes follow merges (a link)
        raise CouponNotOwned()
    return bool(
        Coupon.objects.filter(pk=coupon.pk, status=CouponStatus.HELD, hold_ref=cart_ref).update(
            status=CouponStatus.ISSUED, hold_ref="", hold_channel="", held_until=None
        )
    )


def coupon_redeem(
    *,
    code: str,
    customer: Customer,
    channel: str,
    lines: Sequence[BasketLine],
    currency: str,
    idempotency_key: str,
    store: Location | None = None,
    till: str = "",
    order_ref: str = "",
    cart_ref: str = "",
) -> CouponRedemption:
    """Redeem a code once, anywhere: the storefront with the order (and the cart that held it),
    the till with the sale. The same idempotency key replays the first redemption.

    Raises what coupon_validate raises; CouponAlreadyUsed when another channel won the race."""
    if not idempotency_key:
        raise InvalidInput("An idempotency key is required.", details={"idempotency_key": ["?"]})
    if not is_online(channel) and store is None:
        raise InvalidInput("A till redemption names its store.", details={"store": ["required"]})
    earlier = CouponRedemption.objects.filter(idempotency_key=idempotency_key).first()
    if earlier is not None:
        return _replay(earlier, code)
    at = timezone.now()
    result = coupon_validate(
        code=code,
        customer=customer,
        channel=channel,
        lines=lines,
        currency=currency,
        at=at,
        hold_ref=cart_ref,
    )
    try:
        with transaction.atomic():
            updated = Coupon.objects.filter(
                Q(pk=result.coupon.pk) & _usable_by(cart_ref, at)
            ).update(
                status=CouponStatus.REDEEMED,
                hold_ref=cart_ref[:120],
                hold_channel=channel,
                held_until=None,
            )
            if not updated:
                _raise_taken(result.coupon.pk)
            return CouponRedemption.objects.create(
                coupon=result.coupon,
                campaign=result.coupon.campaign,
                customer=customer_live(customer),
                channel=channel,
                store=store,
                till=till[:40],
                order_ref=order_ref[:120],
                basket_total=result.basket_total,
                discount=result.discount,
                currency=currency,
                idempotency_key=idempotency_key,
                redeemed_at=at,
            )
    except IntegrityError:
        earlier = CouponRedemption.objects.filter(idempotency_key=idempotency_key).first()
        if earlier is None:
            raise
        return _replay(earlier, code)


def _replay(earlier: CouponRedemption, code: str) -> CouponRedemption:
    if earlier.coupon.code != normalise_code(code):
        raise IdempotencyKeyReused("This idempotency key was already used for another code.")
    return earlier


def coupon_holds_expire(*, now: datetime | None = None) -> int:
    """Free codes whose cart hold has expired (they are usable anyway; this tidies the state)."""
    now = now or timezone.now()
    return Coupon.objects.filter(status=CouponStatus.HELD, held_until__lte=now).update(
        status=CouponStatus.ISSUED, hold_ref="", hold_channel="", held_until=None
    )


# ---- offers of a customer ----------------------------------------------------------------------


def offers_for(*, customer: Customer, channel: str | None = None, at: datetime | None = None):
    """The customer's codes usable now (issued, or held with an expired hold), optionally only
    those usable on `channel`."""
    at = at or timezone.now()
    coupons = (
        Coupon.objects.select_related("campaign")
        .filter(customer=customer_live(customer), campaign__starts_at__lte=at)
        .filter(campaign__ends_at__gt=at)
        .filter(_usable_by("", at) | Q(status=CouponStatus.HELD))
        .order_by("campaign__ends_at", "pk")
    )
    return [c for c in coupons if channel is None or channel in (c.campaign.channels or [])]


# ---- the report --------------------------------------------------------------------------------


def campaign_report(*, campaign: Campaign) -> dict:
    """Issued, redeemed, redemption rate, redeemed in store vs online, the O2O count and the
    revenue of redeeming baskets. Definitions in docs/loyalty.md."""
    coupons = Coupon.objects.filter(campaign=campaign)
    issued = coupons.count()
    redemptions = CouponRedemption.objects.filter(campaign=campaign)
    redeemed = redemptions.count()
    in_store = redemptions.filter(channel="store").count()
    revenue = sum((r.basket_total for r in redemptions.only("basket_total")), Decimal(0))
    return {
        "campaign": campaign.pk,
        "name": campaign.name,
        "issued": issued,
        "recipients": coupons.values("customer_id").distinct().count(),
        "redeemed": redeemed,
        "redemption_rate": (
            str((Decimal(redeemed) / issued).quantize(Decimal("0.0001"))) if issued else "0"
        ),
        "redeemed_in_store": in_store,
        "redeemed_online": redeemed - in_store,
        "o2o_days": campaign.o2o_days,
        "o2o_store_visitors": o2o_count(campaign=campaign),
        "revenue": str(revenue),
        "currency": campaign.currency,
    }


REPORT_FIELDS = [
    "campaign",
    "name",
    "issued",
    "recipients",
    "redeemed",
    "redemption_rate",
    "redeemed_in_store",
    "redeemed_online",
    "o2o_days",
    "o2o_store_visitors",
    "revenue",
    "currency",
]


def campaign_reports_csv(reports: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REPORT_FIELDS)
    writer.writeheader()
    for report in reports:
        writer.writerow({field: report[field] for field in REPORT_FIELDS})
    return buffer.getvalue()


def o2o_count(*, campaign: Campaign) -> int:
    """Distinct recipients who bought in a store within `o2o_days` after their first code of the
    campaign was issued: a store receipt that earned points (a `store_receipt` lot) or a
    redemption of any of their codes at a till. Customers merged since count once (the survivor
    holds the lots and codes)."""
    first_issue = dict(
        Coupon.objects.filter(campaign=campaign)
        .values("customer_id")
        .annotate(first=Min("issued_at"))
        .values_list("customer_id", "first")
    )
    if not first_issue:
        return 0
    window = timedelta(days=campaign.o2o_days)
    visitors: set[int] = set()
    accounts = dict(
        LoyaltyAccount.objects.filter(customer_id__in=list(first_issue)).values_list(
            "pk", "customer_id"
        )
    )
    receipts = PointsLot.objects.filter(
        account_id__in=list(accounts), kind=LotKind.EARN, source_type=SourceType.STORE_RECEIPT
    ).values_list("account_id", "earned_at")
    for account_id, earned_at in receipts:
        customer_id = accounts[account_id]
        start = first_issue[customer_id]
        if start <= earned_at <= start + window:
            visitors.add(customer_id)
    till_redemptions = CouponRedemption.objects.filter(
        customer_id__in=list(first_issue), channel="store"
    ).values_list("customer_id", "redeemed_at")
    for customer_id, redeemed_at in till_redemptions:
        start = first_issue[customer_id]
        if start <= redeemed_at <= start + window:
            visitors.add(customer_id)
    return len(visitors)

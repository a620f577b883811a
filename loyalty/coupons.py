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
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from common.channels import SalesChannel, is_online
from common.exceptions import IdempotencyKeyReused, InvalidInput
from common.money import currency_exponent, parse_amount
from customers.models import Customer, CustomerStatus
from inventory.selectors import sku_ids_by_code
from loyalty.exceptions import (
    BasketNotEligible,
    CampaignDiscountInvalid,
    CampaignOver,
    CampaignPeriodInvalid,
    CampaignTargetInvalid,
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
    PointsLot,
    TargetKind,
    Tier,
)
from loyalty.selectors import (
    RECIPIENT_FIELDS,
    campaign_recipients,
    campaign_store_visitors,
    customer_live,
    customers_consenting,
)
from stores.models import Location

# Unambiguous alphabet (no 0/O, 1/I/L): 12 characters ≈ 60 bits, not guessable by enumeration.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 12


def hold_ttl() -> timedelta:
    return timedelta(seconds=getattr(settings, "LOYALTY_COUPON_HOLD_TTL_SECONDS", 30 * 60))


def code_new() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(raw: str) -> str:
    return "".join(ch for ch in str(raw or "").upper() if ch.isalnum())


# ---- creating ----------------------------------------------------------------------------------

# An amount off above this (in the campaign's currency) is a typo, not an offer; raise it with
# the setting for currencies of small units. A minimum basket above MAX_MIN_BASKET cannot be met.
DEFAULT_MAX_AMOUNT_OFF = Decimal("1000")
MAX_MIN_BASKET = Decimal("1000000")


def max_amount_off() -> Decimal:
    return Decimal(str(getattr(settings, "LOYALTY_CAMPAIGN_MAX_AMOUNT", DEFAULT_MAX_AMOUNT_OFF)))


def _exact_number(value, *, field: str, places: int) -> Decimal:
    """A decimal sent as a string or an integer (floats are not exact), with at most `places`
    decimals; CampaignDiscountInvalid otherwise."""
    if isinstance(value, (bool, float)):
        raise CampaignDiscountInvalid(
            'Send numbers as strings ("12.50") or integers.', details={field: ["not exact"]}
        )
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise CampaignDiscountInvalid(
            f"{str(value)[:40]!r} is not a number.", details={field: ["not a number"]}
        ) from None
    if not number.is_finite():
        raise CampaignDiscountInvalid("The number must be finite.", details={field: ["infinite"]})
    if number.normalize().as_tuple().exponent < -places:
        raise CampaignDiscountInvalid(
            f"{field} has at most {places} decimals.", details={field: ["too many decimals"]}
        )
    return number


def _choice(value: str, choices: Sequence[str], field: str) -> str:
    if value not in choices:
        raise InvalidInput(f"Unknown {field} {value!r}.", details={field: [f"one of {choices}"]})
    return value


def _discount_checked(discount_type: str, value, currency: str) -> Decimal:
    places = 2 if discount_type == DiscountType.PERCENT else currency_exponent(currency)
    discount = _exact_number(value, field="discount_value", places=places)
    if discount <= 0:
        raise CampaignDiscountInvalid(
            "A discount is greater than zero.", details={"discount_value": ["<= 0"]}
        )
    if discount_type == DiscountType.PERCENT and discount > 100:
        raise CampaignDiscountInvalid(
            "A percentage discount is at most 100.", details={"discount_value": ["> 100"]}
        )
    if discount_type == DiscountType.AMOUNT and discount > max_amount_off():
        raise CampaignDiscountInvalid(
            f"An amount off is at most {max_amount_off()} {currency}.",
            details={"discount_value": [f"> {max_amount_off()}"]},
        )
    return discount


def _period_checked(starts_at: datetime, ends_at: datetime, at: datetime) -> None:
    if timezone.is_naive(starts_at) or timezone.is_naive(ends_at):
        raise CampaignPeriodInvalid(
            "Give the times with their UTC offset.", details={"starts_at": ["naive"]}
        )
    if ends_at <= starts_at:
        raise CampaignPeriodInvalid(
            "The campaign must end after it starts.", details={"ends_at": ["<= starts_at"]}
        )
    if ends_at <= at:
        raise CampaignPeriodInvalid(
            "The campaign would be over already.", details={"ends_at": ["in the past"]}
        )


def _target_checked(
    target_kind: str,
    customers: Sequence[Customer],
    tier: Tier | None,
    store: Location | None,
    inactive_days: int | None,
) -> None:
    segment = [
        name
        for name, given in (
            ("segment_tier", tier is not None),
            ("segment_preferred_store", store is not None),
            ("segment_inactive_days", inactive_days is not None),
        )
        if given
    ]
    if target_kind == TargetKind.LIST and not customers:
        raise CampaignTargetInvalid(
            "A list campaign names its customers.", details={"target_customers": ["empty"]}
        )
    if target_kind == TargetKind.LIST and segment:
        raise CampaignTargetInvalid(
            "A list campaign has no segment.", details={name: ["list target"] for name in segment}
        )
    if target_kind == TargetKind.SEGMENT and customers:
        raise CampaignTargetInvalid(
            "A segment campaign names no customers.",
            details={"target_customers": ["segment target"]},
        )
    if inactive_days is not None and inactive_days < 1:
        raise CampaignTargetInvalid(
            "Inactive days are at least 1.", details={"segment_inactive_days": ["< 1"]}
        )


def campaign_create(
    *,
    name: str,
    discount_type: str,
    discount_value: Decimal | str | int,
    starts_at: datetime,
    ends_at: datetime,
    channels: Sequence[str],
    issue_channel: str,
    target_kind: str,
    currency: str = "EUR",
    min_basket: Decimal | str | int = 0,
    eligible_skus: Sequence[str] = (),
    eligible_categories: Sequence[str] = (),
    per_customer_limit: int = 1,
    target_customers: Sequence[Customer] = (),
    segment_tier: Tier | None = None,
    segment_preferred_store: Location | None = None,
    segment_inactive_days: int | None = None,
    segment_marketing_consent: bool = True,
    o2o_days: int = 30,
    at: datetime | None = None,
) -> Campaign:
    """A new campaign; no code is issued yet (`campaign_issue` does). `target_customers` are
    live records (`selectors.target_customers_resolve`); eligible SKUs must exist.

    Raises CampaignDiscountInvalid (≤ 0, a percentage over 100, an amount over
    `max_amount_off()`, too many decimals, a minimum basket out of range), CampaignPeriodInvalid
    (ends before it starts, or is over already), CampaignTargetInvalid (a list without customers,
    a list with a segment, a segment with customers), UnknownSku, InvalidInput."""
    at = at or timezone.now()
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A campaign has a name.", details={"name": ["blank"]})
    _choice(discount_type, DiscountType.values, "discount_type")
    _choice(issue_channel, IssueChannel.values, "issue_channel")
    _choice(target_kind, TargetKind.values, "target_kind")
    currency_exponent(currency)
    discount = _discount_checked(discount_type, discount_value, currency)
    basket = _exact_number(min_basket, field="min_basket", places=currency_exponent(currency))
    if not 0 <= basket <= MAX_MIN_BASKET:
        raise CampaignDiscountInvalid(
            f"The minimum basket is between 0 and {MAX_MIN_BASKET}.",
            details={"min_basket": ["out of range"]},
        )
    _period_checked(starts_at, ends_at, at)
    channels = list(dict.fromkeys(channels))
    if not channels:
        raise InvalidInput("Name the channels the code is usable on.", details={"channels": []})
    for channel in channels:
        _choice(channel, SalesChannel.values, "channels")
    if per_customer_limit < 1 or o2o_days < 1:
        raise InvalidInput(
            "The per-customer limit and the O2O window are at least 1.",
            details={"per_customer_limit": [str(per_customer_limit)], "o2o_days": [str(o2o_days)]},
        )
    skus = list(dict.fromkeys(eligible_skus))
    if skus:
        sku_ids_by_code(skus)  # UnknownSku names every code that does not exist
    _target_checked(
        target_kind, target_customers, segment_tier, segment_preferred_store, segment_inactive_days
    )
    with transaction.atomic():
        campaign = Campaign.objects.create(
            name=name,
            discount_type=discount_type,
            discount_value=discount,
            currency=currency,
            min_basket=basket,
            eligible_skus=skus,
            eligible_categories=list(dict.fromkeys(eligible_categories)),
            starts_at=starts_at,
            ends_at=ends_at,
            channels=channels,
            per_customer_limit=per_customer_limit,
            issue_channel=issue_channel,
            target_kind=target_kind,
            segment_tier=segment_tier,
            segment_preferred_store=segment_preferred_store,
            segment_inactive_days=segment_inactive_days,
            segment_marketing_consent=segment_marketing_consent,
            o2o_days=o2o_days,
        )
        if target_customers:
            campaign.target_customers.set(target_customers)
    return campaign


# ---- issuing -----------------------------------------------------------------------------------


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
    """One new code per targeted customer who consented to the campaign's issue channel
    (`selectors.campaign_consent_q`) and has fewer than `per_customer_limit` codes of it. Runs
    under a lock on the campaign row, so two concurrent issues cannot exceed the limit: issuing
    again only reaches targets still under it. Codes are random; a collision is retried.

    Raises CampaignOver (410) once the campaign has ended."""
    at = at or timezone.now()
    if at >= campaign.ends_at:
        raise CampaignOver(details={"campaign": [str(campaign.pk)], "ended_at": campaign.ends_at})
    with transaction.atomic():
        Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
        counts = dict(
            Coupon.objects.filter(campaign=campaign)
            .values_list("customer_id")
            .annotate(n=Count("pk"))
            .values_list("customer_id", "n")
        )
        targets = campaign_targets(campaign=campaign, at=at)
        consenting = customers_consenting(
            customer_ids=targets, issue_channel=campaign.issue_channel
        )
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
    """Distinct recipients who visited a store within `o2o_days` after their first code of the
    campaign was issued (a store visit: `selectors.store_visits_annotate`). Customers merged
    since count once (the survivor holds the lots and codes). One query."""
    return campaign_store_visitors(campaign=campaign).count()


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def campaign_recipients_csv(*, campaign: Campaign) -> Iterator[str]:
    """The recipients list (`selectors.campaign_recipients`, the same rows and the same consent
    rule as the API) as CSV lines, a header first; read in one query, in chunks, so a large
    campaign streams instead of being built in memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(RECIPIENT_FIELDS)
    for row in campaign_recipients(campaign=campaign).iterator(chunk_size=2000):
        yield line([_csv_value(row[field]) for field in RECIPIENT_FIELDS])

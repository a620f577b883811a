"""Tenders: how an order is paid — card through the provider, gift card, store credit, the till.

The order's coverage (`OrderPayment.covered`) is changed only under the payment row's lock, after
checking the total (`_cover`), so tenders can never cover more than the order's total, whichever
channels add them.

A card tender follows "record the intent, commit, call out, record the outcome": the tender row
and a `authorisation_requested` event are committed first, the provider is called outside any
transaction, and the outcome arrives by webhook (`payments.services.webhooks`). Gift card and
store credit tenders are holds on their ledgers (hold now, capture at pickup or shipping).

What the orders app calls (documented in docs/payments.md):
- `order_payment_capture(order=, amount=None, actor=, channel=)` at hand-over or shipping;
- `order_payment_release(order_reference=, actor=)` when an order is cancelled or not collected;
- `order_payment_refund(order_reference=, amount=, …)` for returns;
- `order_payment_refund_record(…)` inside its own transaction, then `refund_card_parts_send`, for
  a per-line refund (the lines and the money in one transaction).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common.idempotency import idempotency_key_check, run_once
from common.money import CurrencyMismatch
from customers.models import Customer
from loyalty import services as loyalty
from loyalty.exceptions import SpendNotHeld
from payments import selectors
from payments.exceptions import (
    InvalidAmount,
    OrderClosed,
    RefundExceedsCaptured,
    TenderExceedsDue,
    TenderStateError,
)
from payments.models import (
    EntryKind,
    GiftCardHold,
    OrderPayment,
    Tender,
    TenderEvent,
    TenderKind,
    TenderStatus,
)
from payments.orders_port import PayableOrder
from payments.providers import get_provider
from payments.providers.base import ProviderError
from payments.services import stored_value as sv

LIVE = (TenderStatus.PENDING, TenderStatus.AUTHORISED)
DEFAULT_REFUND_ORDER = ["card", "till", "gift_card", "loyalty_points", "store_credit"]
# Captured first at hand-over: what is held on our own ledgers, then points, then the card.
CAPTURE_ORDER = ["gift_card", "store_credit", "loyalty_points", "card"]


def point_value() -> Decimal:
    """What one loyalty point is worth when spent as a tender, in the programme's currency
    (settings.PAYMENTS_LOYALTY_POINT_VALUE, default 0.01)."""
    return Decimal(str(getattr(settings, "PAYMENTS_LOYALTY_POINT_VALUE", "0.01")))


def _whole_points(amount: Decimal) -> int:
    """The points worth at most `amount` (a tender is made of whole points)."""
    return int(amount // point_value())


def refund_order() -> list[str]:
    """Which tenders a refund goes back to first. Default: the original tenders, store credit
    last (settings.PAYMENTS_REFUND_ORDER)."""
    return list(getattr(settings, "PAYMENTS_REFUND_ORDER", DEFAULT_REFUND_ORDER))


def merchant_reference(tender: Tender) -> str:
    return f"tender-{tender.pk}"


def tender_for_merchant_reference(reference: str) -> Tender | None:
    prefix, _, pk = reference.partition("-")
    if prefix != "tender" or not pk.isdigit():
        return None
    return Tender.objects.filter(pk=int(pk)).first()


def event(tender: Tender | int, kind: str, *, amount=None, actor: str = "", **data) -> None:
    TenderEvent.objects.create(
        tender_id=tender if isinstance(tender, int) else tender.pk,
        kind=kind,
        amount=amount,
        data=data,
        actor=actor[:150],
    )


# ---- coverage ----------------------------------------------------------------------------------


def _order_payment(order: PayableOrder) -> OrderPayment:
    payment, _ = OrderPayment.objects.get_or_create(
        order_reference=order.reference,
        defaults={"currency": order.currency, "total": order.total},
    )
    if payment.total != order.total:  # the order changed (a line cancelled, a partial pickup)
        OrderPayment.objects.filter(pk=payment.pk).update(total=order.total)
    return payment


def order_payment_sync(*, order: PayableOrder) -> OrderPayment:
    """Take the order's current total (lines cancelled, refused at a partial pickup), so that
    what is due is computed on what the shopper actually takes."""
    return _order_payment(order)


def _cover(payment_id: int, delta: Decimal) -> bool:
    """covered += delta, refused (False) when it would exceed the total or go below zero. The
    order's payment row is locked until the caller's transaction ends."""
    payment = OrderPayment.objects.select_for_update(no_key=True).get(pk=payment_id)
    covered = payment.covered + delta
    if covered < 0 or (delta > 0 and covered > payment.total):
        return False
    OrderPayment.objects.filter(pk=payment_id).update(covered=covered, updated_at=timezone.now())
    return True


def coverage_release(order_reference: str, amount: Decimal) -> None:
    if amount > 0:
        payment_id = OrderPayment.objects.values_list("pk", flat=True).get(
            order_reference=order_reference
        )
        _cover(payment_id, -amount)


def _validate(order: PayableOrder, amount, currency: str | None) -> Decimal:
    if currency is not None and currency != order.currency:
        raise CurrencyMismatch(
            f"The order is in {order.currency}; this tender is in {currency}.",
            details={"currency": [f"must be {order.currency}"]},
        )
    if not order.is_open:
        raise OrderClosed()
    return sv.validate_amount(amount, order.currency)


def _new_tender(
    order: PayableOrder, *, kind: str, amount: Decimal, key: str, channel: str, actor: str, **extra
) -> Tender:
    """Insert the tender (unique key first) and cover its amount; inside the caller's atomic."""
    tender = Tender.objects.create(
        order_reference=order.reference,
        kind=kind,
        currency=order.currency,
        amount=amount,
        idempotency_key=key,
        channel=channel,
        actor=actor[:150],
        **extra,
    )
    payment = _order_payment(order)
    if not _cover(payment.pk, amount):
        summary = selectors.order_payment_summary(order_reference=order.reference)
        raise TenderExceedsDue(
            f"Only {summary.due} {order.currency} is still due; {amount} was offered.",
            details={"due": str(summary.due), "amount": str(amount)},
        )
    return tender


def _add(order, *, kind, amount, currency, idempotency_key, channel, actor, body) -> Tender:
    amount = _validate(order, amount, currency)
    idempotency_key_check(idempotency_key)

    def perform() -> Tender:
        tender = _new_tender(
            order, kind=kind, amount=amount, key=idempotency_key, channel=channel, actor=actor
        )
        body(tender)
        return tender

    tender, _ = run_once(
        find=lambda: Tender.objects.filter(idempotency_key=idempotency_key).first(),
        same_request=lambda earlier: (
            (earlier.order_reference, earlier.kind, earlier.amount)
            == (order.reference, kind, amount)
        ),
        perform=perform,
        reused_message="This idempotency key was already used for another tender.",
    )
    return tender


# ---- adding tenders ----------------------------------------------------------------------------


def _hold_expiry(order: PayableOrder, hold_until: datetime | None) -> datetime:
    """A balance applied to an order stays held until the order is collected (its pickup
    deadline) or shipped (PAYMENTS_ORDER_HOLD_TTL_SECONDS, 14 days by default); a hold that
    lapses releases the money and expires its tender (see `stored_value.holds_expire`)."""
    if hold_until is not None:
        return hold_until
    if order.pickup_deadline is not None and order.pickup_deadline > timezone.now():
        return order.pickup_deadline
    ttl = getattr(settings, "PAYMENTS_ORDER_HOLD_TTL_SECONDS", 14 * 24 * 3600)
    return timezone.now() + timedelta(seconds=ttl)


def tender_hold_expired(*, hold, **_signal) -> None:
    """Called when the expiry task released a hold: its tender no longer covers the order."""
    hold_field = "gift_card_hold" if isinstance(hold, GiftCardHold) else "wallet_hold"
    tender = Tender.objects.filter(**{hold_field: hold}).first()
    if tender is not None:
        tender_voided(tender, status=TenderStatus.EXPIRED, actor="hold-expiry")


def _add_stored_value(
    order: PayableOrder,
    *,
    account,
    kind: str,
    hold_field: str,
    amount,
    idempotency_key: str,
    channel: str,
    actor: str,
    currency: str | None,
    hold_until: datetime | None,
) -> Tender:
    """A tender that holds part of a stored-value balance (gift card or store credit wallet)."""

    def body(tender: Tender) -> None:
        hold = sv.balance_hold(
            account=account,
            amount=tender.amount,
            idempotency_key=f"tender:{idempotency_key}",
            channel=channel,
            actor=actor,
            reference=order.reference,
            expires_at=_hold_expiry(order, hold_until),
        )
        _mark_held(tender, **{hold_field: hold})

    return _add(
        order,
        kind=kind,
        amount=amount,
        currency=currency,
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        body=body,
    )


def tender_add_gift_card(
    *,
    order: PayableOrder,
    code: str,
    amount,
    idempotency_key: str,
    channel: str,
    actor: str,
    currency: str | None = None,
    hold_until: datetime | None = None,
) -> Tender:
    """Hold `amount` on a gift card for the order. Raises the gift card errors, InsufficientBalance,
    TenderExceedsDue, CurrencyMismatch; nothing is held then."""
    card = selectors.gift_card_by_code(code=code)
    if card.currency != order.currency:
        raise CurrencyMismatch(
            f"This gift card is in {card.currency}; the order is in {order.currency}."
        )
    return _add_stored_value(
        order,
        account=card,
        kind=TenderKind.GIFT_CARD,
        hold_field="gift_card_hold",
        amount=amount,
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        currency=currency,
        hold_until=hold_until,
    )


def tender_add_store_credit(
    *,
    order: PayableOrder,
    amount,
    idempotency_key: str,
    channel: str,
    actor: str,
    currency: str | None = None,
    hold_until: datetime | None = None,
) -> Tender:
    """Hold `amount` of the order's customer's store credit (in the order's currency)."""

    customer = Customer.objects.get(pk=order.customer_id)
    wallet = sv.wallet_for(customer=customer, currency=order.currency)
    return _add_stored_value(
        order,
        account=wallet,
        kind=TenderKind.STORE_CREDIT,
        hold_field="wallet_hold",
        amount=amount,
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        currency=currency,
        hold_until=hold_until,
    )


def tender_add_loyalty_points(
    *,
    order: PayableOrder,
    amount,
    idempotency_key: str,
    channel: str,
    actor: str,
    currency: str | None = None,
    hold_until: datetime | None = None,
) -> Tender:
    """Hold the order's customer's loyalty points worth `amount` (a whole number of points at
    `point_value()`; the programme's currency must be the order's). Raises InvalidAmount,
    CurrencyMismatch, the loyalty errors (NoLoyaltyAccount, InsufficientPoints); nothing is held
    then."""

    value = _validate(order, amount, currency)
    programme = loyalty.program_settings()
    if programme.currency != order.currency:
        raise CurrencyMismatch(
            f"Points are worth {programme.currency}; the order is in {order.currency}."
        )
    points = value / point_value()
    if points != points.to_integral_value():
        raise InvalidAmount(
            f"Points are spent whole: {value} is not a multiple of {point_value()}.",
            details={"amount": [f"a multiple of {point_value()}"]},
        )
    customer = Customer.objects.get(pk=order.customer_id)

    def body(tender: Tender) -> None:
        ttl = _hold_expiry(order, hold_until) - timezone.now()
        spend = loyalty.points_hold(
            customer=customer,
            points=int(points),
            reference=order.reference,
            channel=channel,
            idempotency_key=f"tender:{idempotency_key}",
            actor=actor,
            ttl_minutes=max(int(ttl.total_seconds() // 60), 1),
        )
        _mark_held(tender, loyalty_spend=spend)

    return _add(
        order,
        kind=TenderKind.LOYALTY_POINTS,
        amount=value,
        currency=currency,
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        body=body,
    )


def _mark_held(tender: Tender, **hold) -> None:
    Tender.objects.filter(pk=tender.pk).update(
        status=TenderStatus.AUTHORISED, amount_authorised=tender.amount, **hold
    )
    event(tender, "held", amount=tender.amount, actor=tender.actor)
    tender.refresh_from_db()


def tender_add_till(
    *,
    order: PayableOrder,
    amount,
    idempotency_key: str,
    channel: str,
    actor: str,
    currency: str | None = None,
    till_reference: str = "",
) -> Tender:
    """Record money the store till took (cash or card on the shop's terminal) for this order:
    captured at once — the POS already has it."""

    def body(tender: Tender) -> None:
        Tender.objects.filter(pk=tender.pk).update(
            status=TenderStatus.CAPTURED,
            amount_authorised=tender.amount,
            amount_captured=tender.amount,
            provider="till",
            provider_reference=till_reference[:100],
        )
        event(tender, "paid_at_till", amount=tender.amount, actor=actor, ticket=till_reference)
        tender.refresh_from_db()

    return _add(
        order,
        kind=TenderKind.TILL,
        amount=amount,
        currency=currency,
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        body=body,
    )


def tender_add_card(
    *,
    order: PayableOrder,
    token: str,
    amount,
    idempotency_key: str,
    channel: str,
    actor: str,
    currency: str | None = None,
    capture_now: bool = False,
) -> Tender:
    """Ask the provider for an authorisation. Returns the tender `pending`; the outcome arrives by
    webhook (authorised → captured at once when `capture_now`, else at pickup or shipping;
    declined → failed, no longer covers). For a click & collect order the pickup deadline is
    kept: an authorisation that would lapse before it is renewed or released in time
    (`card_authorisations_renew`), and the till takes the payment at pickup."""
    provider = get_provider()
    tender = _add(
        order,
        kind=TenderKind.CARD,
        amount=amount,
        currency=currency,
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        body=lambda t: (
            Tender.objects.filter(pk=t.pk).update(
                provider=provider.name,
                capture_on_authorise=capture_now,
                needed_until=None if capture_now else order.pickup_deadline,
            ),
            event(
                t, "authorisation_requested", amount=t.amount, actor=actor, capture_now=capture_now
            ),
        ),
    )
    if tender.provider_reference or tender.status != TenderStatus.PENDING:
        return tender  # a replay: the provider was already asked
    # Outside any transaction: the tender and its intent are committed before we call out.
    try:
        answer = provider.authorise(
            amount=tender.amount,
            currency=tender.currency,
            token=token,
            merchant_reference=merchant_reference(tender),
            idempotency_key=f"{merchant_reference(tender)}:authorise",
        )
    except ProviderError as exc:
        tender_fail(tender=tender, failure_code=exc.code, actor=actor)
        raise
    with transaction.atomic():
        Tender.objects.filter(pk=tender.pk, provider_reference="").update(
            provider_reference=answer.provider_reference
        )
        event(tender, "authorisation_accepted", reference=answer.provider_reference)
    tender.refresh_from_db()
    return tender


def tender_fail(*, tender: Tender, failure_code: str, actor: str = "") -> bool:
    """pending → failed; the amount no longer covers the order."""
    with transaction.atomic():
        if not Tender.objects.filter(pk=tender.pk, status=TenderStatus.PENDING).update(
            status=TenderStatus.FAILED, failure_code=failure_code[:40]
        ):
            return False
        coverage_release(tender.order_reference, tender.amount)
        event(tender, "failed", failure_code=failure_code, actor=actor)
    return True


# ---- capture at hand-over, release on cancel ---------------------------------------------------


def _ordered(tenders: Iterable[Tender], order: list[str]) -> list[Tender]:
    rank = {kind: i for i, kind in enumerate(order)}
    return sorted(tenders, key=lambda t: (rank.get(t.kind, len(rank)), t.pk))


def order_payment_capture(
    *, order_reference: str, amount=None, actor: str, channel: str
) -> list[Tender]:
    """Capture what the order is paid with, up to `amount` (default: everything authorised) —
    at pickup hand-over (only the lines taken) or at shipping. Stored value first (it is
    captured at once), then cards (outcome by webhook). What is not needed is released.

    Returns the tenders touched. Provider calls happen after the stored-value transaction."""
    tenders = list(
        Tender.objects.filter(order_reference=order_reference, status=TenderStatus.AUTHORISED)
    )
    if not tenders:
        return []
    currency = tenders[0].currency
    left = (
        sum((t.amount_authorised for t in tenders), Decimal(0))
        if amount is None
        else sv.validate_amount(amount, currency)
        if amount != 0
        else Decimal(0)
    )
    plan: list[tuple[Tender, Decimal]] = []
    for tender in _ordered(tenders, CAPTURE_ORDER):
        take = min(left, tender.amount_authorised)
        if tender.kind == TenderKind.LOYALTY_POINTS:
            take = _whole_points(take) * point_value()
        plan.append((tender, take))
        left -= take
    card_calls = []
    with transaction.atomic():
        for tender, take in plan:
            if tender.kind == TenderKind.CARD:
                card_calls.append((tender, take))
                continue
            if tender.kind == TenderKind.LOYALTY_POINTS:
                _loyalty_close(tender, take, actor=actor)
                continue
            hold = tender.gift_card_hold or tender.wallet_hold
            if take > 0:
                sv.hold_capture(hold=hold, amount=take, actor=actor)
                tender_captured(tender, take, actor=actor)
            else:
                sv.hold_release(hold=hold, actor=actor)
                tender_voided(tender, actor=actor)
    for tender, take in card_calls:
        if take > 0:
            tender_card_capture(tender=tender, amount=take, actor=actor)
        else:
            tender_card_void(tender=tender, actor=actor)
    return [Tender.objects.get(pk=t.pk) for t, _ in plan]


def tender_card_capture(*, tender: Tender, amount: Decimal | None = None, actor: str) -> None:
    """Ask the provider to capture `amount` (default: what was authorised); the outcome comes by
    webhook. Call outside any transaction."""
    take = tender.amount_authorised if amount is None else amount
    event(tender, "capture_requested", amount=take, actor=actor)
    get_provider(tender.provider).capture(
        provider_reference=tender.provider_reference,
        amount=take,
        currency=tender.currency,
        idempotency_key=f"{merchant_reference(tender)}:capture",
    )


def tender_card_void(*, tender: Tender, actor: str) -> None:
    event(tender, "void_requested", actor=actor)
    get_provider(tender.provider).void(
        provider_reference=tender.provider_reference,
        idempotency_key=f"{merchant_reference(tender)}:void",
    )


def card_authorisations_renew(*, now: datetime | None = None) -> dict[str, int]:
    """Click & collect paid online, captured at pickup: an authorisation that lapses before the
    pickup deadline is extended when it gets within PAYMENTS_REAUTHORISE_MARGIN_SECONDS (6 h)
    of its expiry; if the provider cannot or will not extend it, it is released and the order
    is due again — the till takes the payment at pickup (event `fallback_to_till`).
    Safe to run again; the periodic task runs it."""
    now = now or timezone.now()
    margin = timedelta(seconds=getattr(settings, "PAYMENTS_REAUTHORISE_MARGIN_SECONDS", 6 * 3600))
    due = Tender.objects.filter(
        kind=TenderKind.CARD,
        status=TenderStatus.AUTHORISED,
        needed_until__isnull=False,
        authorisation_expires_at__lte=now + margin,
        authorisation_expires_at__lt=F("needed_until"),
    ).exclude(provider_reference="")
    counts = {"extended": 0, "fallback_to_till": 0}
    for tender in due.order_by("pk")[:500]:
        provider = get_provider(tender.provider)
        stamp = int(tender.authorisation_expires_at.timestamp())
        event(tender, "reauthorisation_requested", actor="reauthorise")
        try:
            provider.reauthorise(
                provider_reference=tender.provider_reference,
                idempotency_key=f"{merchant_reference(tender)}:reauthorise:{stamp}",
            )
            counts["extended"] += 1
        except ProviderError as exc:
            with transaction.atomic():
                tender_voided(tender, actor="reauthorise", reason=exc.message)
                event(tender, "fallback_to_till", amount=tender.amount)
            with contextlib.suppress(ProviderError):  # it lapses on its own anyway
                tender_card_void(tender=tender, actor="reauthorise")
            counts["fallback_to_till"] += 1
    return counts


def _loyalty_close(tender: Tender, take: Decimal, *, actor: str) -> None:
    """Capture `take` worth of a points tender (the rest goes back to the lots), or release it.
    A hold the loyalty expiry already released expires the tender (the order is due again)."""

    spend = tender.loyalty_spend
    try:
        if take > 0:
            loyalty.points_capture(
                spend_id=spend.pk,
                points=_whole_points(take),
                idempotency_key=f"{merchant_reference(tender)}:capture",
                actor=actor,
            )
        else:
            loyalty.points_release(
                spend_id=spend.pk,
                idempotency_key=f"{merchant_reference(tender)}:release",
                actor=actor,
            )
    except SpendNotHeld:
        spend.refresh_from_db()
        if spend.status == "captured" and take > 0:
            tender_captured(tender, take, actor=actor)  # an earlier call captured it
        else:
            tender_voided(
                tender, actor=actor, status=TenderStatus.EXPIRED, spend_status=spend.status
            )
        return
    if take > 0:
        tender_captured(tender, take, actor=actor)
    else:
        tender_voided(tender, actor=actor)


def tender_captured(tender: Tender, amount: Decimal, *, actor: str = "", **data) -> bool:
    """authorised → captured for `amount`; the rest of its amount no longer covers the order."""
    if not Tender.objects.filter(pk=tender.pk, status=TenderStatus.AUTHORISED).update(
        status=TenderStatus.CAPTURED, amount_captured=amount
    ):
        return False
    coverage_release(tender.order_reference, tender.amount - amount)
    event(tender, "captured", amount=amount, actor=actor, **data)
    return True


def tender_voided(tender: Tender, *, actor: str = "", status=TenderStatus.VOIDED, **data) -> bool:
    if not Tender.objects.filter(pk=tender.pk, status__in=LIVE).update(status=status):
        return False
    coverage_release(tender.order_reference, tender.amount)
    event(tender, status, actor=actor, **data)
    return True


def order_payment_release(*, order_reference: str, actor: str) -> list[Tender]:
    """Cancelled or not collected: every hold released, every card authorisation voided — the
    shopper pays nothing. Safe to call twice."""
    tenders = list(Tender.objects.filter(order_reference=order_reference, status__in=LIVE))
    with transaction.atomic():
        for tender in tenders:
            hold = tender.gift_card_hold or tender.wallet_hold
            if hold is not None:
                sv.hold_release(hold=hold, actor=actor)
                tender_voided(tender, actor=actor)
            elif tender.loyalty_spend_id is not None:
                _loyalty_close(tender, Decimal(0), actor=actor)
    for tender in tenders:
        if tender.kind == TenderKind.CARD and tender.provider_reference:
            tender_card_void(tender=tender, actor=actor)
    return [Tender.objects.get(pk=t.pk) for t in tenders]


# ---- refunds -----------------------------------------------------------------------------------


@dataclass
class RecordedRefund:
    """A refund written in the database; its card parts are sent to the provider after commit."""

    key: str
    tenders: dict[int, Tender]
    card_calls: list[tuple[Tender, Decimal]] = field(default_factory=list)
    replayed: bool = False

    @property
    def lines(self) -> list[dict]:
        return _refund_lines(self.key, self.tenders)


def order_payment_refund(**refund) -> list[dict]:
    """Refund `amount` of what the order's tenders captured (see `order_payment_refund_record`)
    and send its card parts to the provider once committed. Returns one line per tender."""
    with transaction.atomic():
        recorded = order_payment_refund_record(**refund)
    refund_card_parts_send(recorded)  # after commit: no provider call under a lock
    return recorded.lines


def order_payment_refund_record(
    *,
    order_reference: str,
    amount,
    idempotency_key: str,
    channel: str,
    actor: str,
    customer=None,
    to_store_credit: bool = False,
    reason: str = "",
    currency: str | None = None,
) -> RecordedRefund:
    """Record a refund of `amount` of what the order's tenders captured, split across them by
    `refund_order()` (each capped at what it captured less what it refunded), or — when the
    shopper prefers — entirely as store credit of `customer` (the order's customer). Runs in
    the caller's transaction (a per-line refund records its lines in the same one); the caller
    sends the card parts after commit with `refund_card_parts_send`.

    `currency` is the order's (it validates the amount before anything is looked at).
    Refused as a whole (RefundExceedsCaptured, nothing moved) when the order's tenders captured
    less than `amount` in total."""
    idempotency_key_check(idempotency_key)
    tenders = list(
        Tender.objects.filter(order_reference=order_reference, amount_captured__gt=0).order_by("pk")
    )
    currency = currency or (tenders[0].currency if tenders else "EUR")
    value = sv.validate_amount(amount, currency)
    if not tenders:
        raise RefundExceedsCaptured("Nothing was captured on this order.")
    with transaction.atomic():
        locked = {
            t.pk: t
            for t in Tender.objects.select_for_update()
            .filter(pk__in=[t.pk for t in tenders])
            .order_by("pk")  # primary-key order: two refunds cannot deadlock
        }
        if TenderEvent.objects.filter(
            tender_id__in=locked, kind="refunded", data__key=idempotency_key
        ).exists():
            return RecordedRefund(key=idempotency_key, tenders=locked, replayed=True)
        refundable = sum(
            (t.amount_captured - t.amount_refunded for t in locked.values()), Decimal(0)
        )
        if value > refundable:
            raise RefundExceedsCaptured(
                f"At most {refundable} {currency} can still be refunded on this order.",
                details={"refundable": str(refundable), "requested": str(value)},
            )
        left, card_calls = _refund_split(
            locked,
            value,
            key=idempotency_key,
            channel=channel,
            actor=actor,
            reference=order_reference,
            reason=reason,
            to_store_credit=to_store_credit,
        )
        if left > 0:  # only points were left, and they are refunded whole
            raise RefundExceedsCaptured(
                f"{left} {currency} cannot be refunded as whole points.",
                details={"not_refundable": str(left)},
            )
        if to_store_credit:
            if customer is None:
                raise TenderStateError("A refund as store credit needs the order's customer.")
            sv.wallet_credit(
                customer=customer,
                amount=value,
                currency=currency,
                idempotency_key=f"{idempotency_key}:store-credit",
                channel=channel,
                actor=actor,
                kind=EntryKind.CREDIT,
                reference=order_reference,
                reason=reason or "refund",
            )
    return RecordedRefund(key=idempotency_key, tenders=locked, card_calls=card_calls)


def _refund_split(
    locked: dict[int, Tender],
    value: Decimal,
    *,
    key: str,
    channel: str,
    actor: str,
    reference: str,
    reason: str,
    to_store_credit: bool,
) -> tuple[Decimal, list[tuple[Tender, Decimal]]]:
    """Apportion `value` over the tenders in `refund_order()`, each up to what it captured less
    what it refunded (points in whole points), recording each part; returns what is left and
    the card refunds to send after commit."""
    left = value
    card_calls = []
    for tender in _ordered(locked.values(), refund_order()):
        if left <= 0:
            break
        take = min(left, tender.amount_captured - tender.amount_refunded)
        if tender.kind == TenderKind.LOYALTY_POINTS and not to_store_credit:
            take = _whole_points(take) * point_value()
        if take <= 0:
            continue
        left -= take
        Tender.objects.filter(pk=tender.pk).update(amount_refunded=tender.amount_refunded + take)
        event(
            tender,
            "refunded",
            amount=take,
            actor=actor,
            key=key,
            to_store_credit=to_store_credit,
        )
        if to_store_credit:
            continue
        if _refund_to_tender(
            tender,
            take,
            key=key,
            channel=channel,
            actor=actor,
            reference=reference,
            reason=reason,
        ):
            card_calls.append((tender, take))
    return left, card_calls


def _refund_to_tender(
    tender: Tender,
    take: Decimal,
    *,
    key: str,
    channel: str,
    actor: str,
    reference: str,
    reason: str,
) -> bool:
    """Give `take` back the way the tender paid: points as a new lot, gift card or store credit
    to its hold's account. Returns True for a card, whose provider is called after commit; a
    till tender is paid out by the till (the POS records it, we record the amount)."""
    hold = tender.gift_card_hold or tender.wallet_hold
    if tender.loyalty_spend_id is not None:
        # Spent points come back as a new lot with a fresh validity.
        loyalty.points_refund_spent(
            spend_id=tender.loyalty_spend_id,
            points=_whole_points(take),
            refund_ref=f"{key}:{tender.pk}",
            channel=channel,
            actor=actor,
        )
    elif hold is not None:
        sv.hold_refund(
            hold=hold,
            amount=take,
            idempotency_key=f"{key}:{tender.pk}",
            channel=channel,
            actor=actor,
            reference=reference,
            reason=reason,
        )
    return tender.kind == TenderKind.CARD


def refund_card_parts_send(recorded: RecordedRefund) -> None:
    """Ask the provider for each card part of a committed refund; a refusal takes it back."""
    key = recorded.key
    for tender, take in recorded.card_calls:
        try:
            get_provider(tender.provider).refund(
                provider_reference=tender.provider_reference,
                amount=take,
                currency=tender.currency,
                idempotency_key=f"{key}:{tender.pk}",
            )
        except ProviderError as exc:
            refund_failed(tender=tender, amount=take, failure_code=exc.code, key=key)


def refund_failed(*, tender: Tender, amount: Decimal, failure_code: str, key: str = "") -> None:
    """The provider refused or failed a refund: it no longer counts as refunded (staff see the
    event and refund another way)."""
    with transaction.atomic():
        current = Tender.objects.select_for_update().get(pk=tender.pk)
        take = min(amount, current.amount_refunded)
        Tender.objects.filter(pk=tender.pk).update(amount_refunded=current.amount_refunded - take)
        event(tender, "refund_failed", amount=take, failure_code=failure_code, key=key)


def refund_lines_of(*, order_reference: str, key: str) -> list[dict]:
    """What the refund made with this key gave back, one line per tender."""
    return _refund_lines(
        key, {t.pk: t for t in Tender.objects.filter(order_reference=order_reference)}
    )


def _refund_lines(key: str, tenders: dict[int, Tender]) -> list[dict]:
    return [
        {
            "tender": e.tender_id,
            "kind": tenders[e.tender_id].kind,
            "amount": str(e.amount),
            "to_store_credit": e.data.get("to_store_credit", False),
        }
        for e in TenderEvent.objects.filter(
            tender_id__in=tenders, kind="refunded", data__key=key
        ).order_by("pk")
    ]

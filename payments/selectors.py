"""Reads with a rule in them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from payments import codes
from payments.exceptions import GiftCardInvalidCode, GiftCardNotFound, HoldNotFound, OrderNotPayable
from payments.ledgers import CENT, GIFT_CARDS, WALLETS
from payments.models import (
    GiftCard,
    GiftCardStatus,
    HoldStatus,
    OrderPayment,
    StoreCreditWallet,
    Tender,
    TenderEvent,
    TenderStatus,
)
from payments.orders_port import payable_order


def gift_card_by_code(*, code: str) -> GiftCard:
    """Raises GiftCardInvalidCode (typo: the check character does not match, 400) before any
    lookup, GiftCardNotFound (404) when no card has it."""
    normalised = codes.normalise(code)
    if normalised is None:
        raise GiftCardInvalidCode(details={"code": ["invalid"]})
    card = GiftCard.objects.filter(code_hash=codes.code_hash(normalised)).first()
    if card is None:
        raise GiftCardNotFound()
    return card


def gift_card_state(card: GiftCard) -> str:
    if card.status == GiftCardStatus.BLOCKED:
        return "blocked"
    if card.expires_at is not None and card.expires_at <= timezone.now():
        return "expired"
    return "active"


def wallets_for_customer(*, customer) -> list[StoreCreditWallet]:
    while customer.merged_into_id is not None:
        customer = customer.merged_into
    return list(StoreCreditWallet.objects.filter(customer=customer).order_by("currency"))


def ledger_mismatches() -> list[dict]:
    """Accounts whose cached balance is not the sum of their entries, or whose cached `held` is
    not the sum of their open holds. Empty: the ledgers are consistent."""
    problems = []
    for ledger in (GIFT_CARDS, WALLETS):
        sums = dict(
            ledger.entry.objects.values("account_id")
            .annotate(total=Sum("amount"))
            .values_list("account_id", "total")
        )
        held = dict(
            ledger.hold.objects.filter(status=HoldStatus.OPEN)
            .values("account_id")
            .annotate(total=Sum("amount"))
            .values_list("account_id", "total")
        )
        for pk, balance, held_cached in ledger.account.objects.values_list("pk", "balance", "held"):
            total = Decimal(sums.get(pk) or 0).quantize(CENT)
            open_held = Decimal(held.get(pk) or 0).quantize(CENT)
            if total != balance or open_held != held_cached or balance < 0 or held_cached < 0:
                problems.append(
                    {
                        "ledger": ledger.name,
                        "account": pk,
                        "balance": str(balance),
                        "entries_sum": str(total),
                        "held": str(held_cached),
                        "open_holds_sum": str(open_held),
                    }
                )
    return problems


@dataclass(frozen=True)
class PaymentSummary:
    order_reference: str
    currency: str
    total: Decimal
    authorised: Decimal  # held or authorised, not yet captured
    paid: Decimal  # captured
    refunded: Decimal
    due: Decimal  # what no live tender covers yet
    tenders: list[Tender]


def order_payment_summary(*, order_reference: str) -> PaymentSummary:
    """What is paid, held, refunded and still due on an order, in its currency."""
    payment = OrderPayment.objects.filter(order_reference=order_reference).first()
    tenders = list(
        Tender.objects.filter(order_reference=order_reference)
        .select_related("gift_card_hold", "wallet_hold")
        .order_by("pk")
    )
    zero = Decimal("0.00")
    authorised = sum(
        (t.amount for t in tenders if t.status in (TenderStatus.PENDING, TenderStatus.AUTHORISED)),
        zero,
    )
    paid = sum((t.amount_captured for t in tenders), zero)
    refunded = sum((t.amount_refunded for t in tenders), zero)
    if payment is None:  # no tender yet: the whole order is due (pay at pickup, or not paid)
        try:
            order = payable_order(reference=order_reference)
        except OrderNotPayable:
            return PaymentSummary(order_reference, "", zero, zero, zero, zero, zero, tenders)
        return PaymentSummary(
            order_reference, order.currency, order.total, zero, zero, zero, order.total, tenders
        )
    return PaymentSummary(
        order_reference=order_reference,
        currency=payment.currency,
        total=payment.total,
        authorised=authorised,
        paid=paid,
        refunded=refunded,
        due=max(payment.total - payment.covered, zero),
        tenders=tenders,
    )


def hold_by_public_id(*, public_id) -> object:
    """A gift card or wallet hold by its public id. Raises HoldNotFound."""
    import uuid

    try:
        value = uuid.UUID(str(public_id))
    except ValueError:
        raise HoldNotFound() from None
    for ledger in (GIFT_CARDS, WALLETS):
        hold = ledger.hold.objects.filter(public_id=value).first()
        if hold is not None:
            return hold
    raise HoldNotFound()


# ---- what a person's orders were paid with (GDPR export, unified history) ----------------------


def order_tenders_export(*, order_references) -> dict[str, list[dict]]:
    """Each order's tenders with their events, by order reference (`order_references`: a list
    or a queryset of references). Card data never reaches us (the provider holds it: we keep its
    reference); a gift card shows only its last 4 characters."""
    tenders = (
        Tender.objects.filter(order_reference__in=order_references)
        .select_related("gift_card_hold__account")
        .prefetch_related("events")
        .order_by("created_at", "pk")
    )
    by_order: dict[str, list[dict]] = {}
    for tender in tenders:
        hold = tender.gift_card_hold
        by_order.setdefault(tender.order_reference, []).append(
            {
                "kind": tender.kind,
                "currency": tender.currency,
                "amount": str(tender.amount),
                "authorised": str(tender.amount_authorised),
                "captured": str(tender.amount_captured),
                "refunded": str(tender.amount_refunded),
                "status": tender.status,
                "channel": tender.channel,
                "provider": tender.provider,
                "provider_reference": tender.provider_reference,
                "gift_card": f"…{hold.account.code_last4}" if hold is not None else None,
                "created_at": tender.created_at.isoformat(),
                "events": [
                    {
                        "at": event.occurred_at.isoformat(),
                        "kind": event.kind,
                        "amount": None if event.amount is None else str(event.amount),
                    }
                    for event in tender.events.all()
                ],
            }
        )
    return by_order


# The tender events a person sees in their history: money taken and given back.
HISTORY_TENDER_EVENTS = ("captured", "paid_at_till", "refunded", "refund_failed")


def tender_events_for_history(*, order_references, older_q, limit: int) -> list[TenderEvent]:
    """The newest payment events (captures, till payments, refunds) of these orders."""
    return list(
        TenderEvent.objects.filter(
            tender__order_reference__in=order_references, kind__in=HISTORY_TENDER_EVENTS
        )
        .filter(older_q)
        .select_related("tender")
        .order_by("-occurred_at", "-pk")[:limit]
    )

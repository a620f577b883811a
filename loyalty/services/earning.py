"""Earning points on a purchase (online or at the till, the same rules) and giving them back
when goods are returned."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from django.db.models import F, Q
from django.utils import timezone

from common.exceptions import InvalidInput
from common.money import parse_amount
from customers.models import Customer
from loyalty.exceptions import (
    ReturnExceedsPurchase,
)
from loyalty.models import (
    EarningRule,
    EarnLine,
    LotKind,
    MovementKind,
    PointsLot,
    PointsOperation,
    PointsReversal,
    ProgramSettings,
    RuleScope,
    SourceType,
    Tier,
)
from loyalty.selectors import customer_live
from loyalty.services.ledger import (
    account_lock,
    account_lock_live,
    lot_create,
    lots_take_fefo,
    points_operation_run,
    program_settings,
)
from loyalty.services.tiers import tier_upgrade_check
from stores.models import Location


@dataclass(frozen=True)
class PurchaseLine:
    """A line truly bought: `amount` is what was paid for the whole line (after discounts)."""

    line_ref: str
    sku: str
    quantity: int
    amount: Decimal
    category: str = ""


@dataclass(frozen=True)
class ReturnedLine:
    line_ref: str
    quantity: int


def earning_rules_at(at: datetime) -> list[EarningRule]:
    return list(
        EarningRule.objects.filter(is_active=True)
        .filter(Q(starts_at__isnull=True) | Q(starts_at__lte=at))
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=at))
    )


def _rule_matches(rule: EarningRule, line: PurchaseLine, *, channel: str, tier: Tier | None):
    value = rule.value.strip()
    return {
        RuleScope.ALL: True,
        RuleScope.TIER: tier is not None and tier.code == value,
        RuleScope.CATEGORY: bool(line.category) and line.category == value,
        RuleScope.SKU: line.sku == value,
        RuleScope.CHANNEL: channel == value,
        RuleScope.EXCLUDED_SKU: line.sku == value,
    }[rule.scope]


def points_for_lines(
    *,
    lines: Sequence[PurchaseLine],
    channel: str,
    tier: Tier | None,
    at: datetime,
    program: ProgramSettings | None = None,
) -> tuple[list[int], int]:
    """Points per line and the flat bonus, by the rules in force at `at` (pure, no writes).

    Per line: floor(amount × points_per_unit × tier multiplier × the highest matching multiplier
    of each scope). An excluded SKU earns 0. Below the minimum order value nothing is earned."""
    program = program or program_settings()
    total = sum((line.amount for line in lines), Decimal(0))
    if total < program.min_order_value or total <= 0:
        return [0 for _ in lines], 0
    rules = earning_rules_at(at)
    per_line: list[int] = []
    bonus_rules: set[int] = set()
    for line in lines:
        matching = [r for r in rules if _rule_matches(r, line, channel=channel, tier=tier)]
        if any(r.scope == RuleScope.EXCLUDED_SKU for r in matching):
            per_line.append(0)
            continue
        factor = Decimal(tier.multiplier) if tier is not None else Decimal(1)
        best: dict[str, Decimal] = {}
        for rule in matching:
            best[rule.scope] = max(best.get(rule.scope, Decimal(0)), rule.multiplier)
            if rule.bonus_points:
                bonus_rules.add(rule.pk)
        for multiplier in best.values():
            factor *= multiplier
        raw = line.amount * program.points_per_unit * factor
        per_line.append(max(int(raw.to_integral_value(rounding=ROUND_FLOOR)), 0))
    bonus = sum(r.bonus_points for r in rules if r.pk in bonus_rules)
    return per_line, bonus


def purchase_lines_clean(lines: Sequence[PurchaseLine], currency: str) -> list[PurchaseLine]:
    if not lines:
        raise InvalidInput("A purchase has at least one line.", details={"lines": ["empty"]})
    seen: set[str] = set()
    cleaned = []
    for index, line in enumerate(lines):
        field = f"lines[{index}]"
        if not line.line_ref or line.line_ref in seen:
            raise InvalidInput("Line references must be unique.", details={field: ["line_ref"]})
        seen.add(line.line_ref)
        if isinstance(line.quantity, bool) or not isinstance(line.quantity, int):
            raise InvalidInput("Quantity must be a whole number.", details={field: ["quantity"]})
        if line.quantity <= 0:
            raise InvalidInput("Quantity must be > 0.", details={field: ["quantity"]})
        amount = parse_amount(line.amount, currency, field=f"{field}.amount")
        if amount < 0:
            raise InvalidInput("Amounts cannot be negative.", details={field: ["amount < 0"]})
        cleaned.append(
            PurchaseLine(line.line_ref, line.sku, line.quantity, amount, line.category or "")
        )
    return cleaned


def _earning_program(source_type: str, source_ref: str, currency: str):
    """The programme's settings, once the purchase is one it earns on."""
    if source_type not in (SourceType.ORDER, SourceType.STORE_RECEIPT):
        raise InvalidInput("Unknown source type.", details={"source_type": [str(source_type)]})
    if not source_ref:
        raise InvalidInput("A source reference is required.", details={"source_ref": ["blank"]})
    program = program_settings()
    if currency != program.currency:
        raise InvalidInput(
            f"The programme earns on {program.currency} purchases.",
            details={"currency": [currency]},
        )
    return program


def points_earn_for_source(
    *,
    customer: Customer,
    source_type: str,
    source_ref: str,
    lines: Sequence[PurchaseLine],
    currency: str,
    channel: str,
    store: Location | None = None,
    occurred_at: datetime | None = None,
    actor: str = "",
) -> PointsLot | None:
    """Earn the points of a purchase truly made (an online order collected or shipped, a store
    receipt). Once per (source_type, source_ref), whatever the caller retries: the operation key
    is `earn:<source_type>:<source_ref>` and the lot is unique per source. Returns the lot, or
    None when nothing is earned (no account, under the minimum, only excluded SKUs).

    The points are pending for the return window, then spendable until they expire."""
    program = _earning_program(source_type, source_ref, currency)
    lines = purchase_lines_clean(lines, currency)
    occurred_at = occurred_at or timezone.now()
    customer = customer_live(customer)
    # The customer is not part of the fingerprint: a POS event retried after the customer was
    # merged (now resolving to the survivor) must replay, not be refused.
    params = {
        "source": [source_type, source_ref],
        "lines": [[ln.line_ref, ln.sku, ln.quantity, str(ln.amount)] for ln in lines],
        "currency": currency,
    }

    created: list[PointsLot] = []

    def body(operation: PointsOperation) -> dict:
        account = account_lock_live(customer)
        if account is None:
            return {"lot": None, "reason": "no_account"}
        per_line, bonus = points_for_lines(
            lines=lines, channel=channel, tier=account.tier, at=occurred_at, program=program
        )
        total = sum(per_line) + bonus
        if total <= 0:
            return {"lot": None, "reason": "no_points"}
        available_at = occurred_at + timedelta(days=program.pending_days)
        lot = lot_create(
            operation,
            account,
            kind=LotKind.EARN,
            source_type=source_type,
            source_ref=source_ref,
            amount=total,
            earned_at=occurred_at,
            available_at=available_at,
            expires_at=available_at + timedelta(days=program.validity_days),
            channel=channel,
            store=store,
        )
        EarnLine.objects.bulk_create(
            [
                EarnLine(
                    lot=lot,
                    line_ref=ln.line_ref,
                    sku=ln.sku,
                    quantity=ln.quantity,
                    amount=ln.amount,
                    points=points,
                )
                for ln, points in zip(lines, per_line, strict=True)
            ]
        )
        tier_upgrade_check(account=account, at=timezone.now())
        created.append(lot)
        return {"lot": lot.pk}

    operation, _ = points_operation_run(
        kind="earn",
        idempotency_key=f"earn:{source_type}:{source_ref}",
        params=params,
        channel=channel,
        actor=actor,
        body=body,
    )
    if created:
        return created[0]
    lot_id = operation.result.get("lot")
    return PointsLot.objects.get(pk=lot_id) if lot_id else None


def points_reverse_for_return(
    *,
    source_type: str,
    source_ref: str,
    return_ref: str,
    lines: Sequence[ReturnedLine],
    channel: str,
    actor: str = "",
) -> PointsReversal | None:
    """Take back the points earned on returned lines, pro rata to the quantity returned (over
    successive returns of one line, exactly the line's points in total). Taken from the purchase's
    lot first (pending or not), then the account's other lots soonest to expire first; what the
    customer has already spent is recorded as `shortfall` (never a negative balance).
    Idempotent per `return_ref`. Returns None when the purchase earned no points."""
    if not return_ref:
        raise InvalidInput("A return reference is required.", details={"return_ref": ["blank"]})
    if not lines:
        raise InvalidInput("Name the returned lines.", details={"lines": ["empty"]})
    for index, line in enumerate(lines):
        if isinstance(line.quantity, bool) or not isinstance(line.quantity, int):
            raise InvalidInput("Quantity must be whole.", details={f"lines[{index}]": ["quantity"]})
        if line.quantity <= 0:
            raise InvalidInput("Quantity must be > 0.", details={f"lines[{index}]": ["quantity"]})
    params = {
        "source": [source_type, source_ref],
        "lines": sorted([ln.line_ref, ln.quantity] for ln in lines),
    }

    def body(operation: PointsOperation) -> dict:
        lot = PointsLot.objects.filter(
            kind=LotKind.EARN, source_type=source_type, source_ref=source_ref
        ).first()
        if lot is None:
            return {"reversal": None}
        account = account_lock(lot.account_id)
        earned = {row.line_ref: row for row in EarnLine.objects.filter(lot=lot)}
        due = 0
        for line in lines:
            row = earned.get(line.line_ref)
            if row is None:
                raise ReturnExceedsPurchase(
                    "This line is not part of the purchase.", details={line.line_ref: ["unknown"]}
                )
            before = row.quantity_returned
            if not EarnLine.objects.filter(
                pk=row.pk, quantity_returned__lte=row.quantity - line.quantity
            ).update(quantity_returned=F("quantity_returned") + line.quantity):
                raise ReturnExceedsPurchase(details={line.line_ref: ["more than bought"]})
            after = before + line.quantity
            due += row.points * after // row.quantity - row.points * before // row.quantity
        now = timezone.now()
        taken = (
            lots_take_fefo(
                operation,
                account,
                due,
                kind=MovementKind.REVERSE,
                at=now,
                spendable_only=False,
                first_lot_id=lot.pk,
            )
            if due
            else 0
        )
        reversal = PointsReversal.objects.create(
            operation=operation,
            lot=lot,
            return_ref=return_ref[:120],
            points_due=due,
            points_taken=taken,
            shortfall=due - taken,
        )
        return {"reversal": reversal.pk}

    operation, _ = points_operation_run(
        kind="reverse",
        idempotency_key=f"reverse:{source_type}:{source_ref}:{return_ref}",
        params=params,
        channel=channel,
        actor=actor,
        body=body,
    )
    reversal_id = operation.result.get("reversal")
    return PointsReversal.objects.get(pk=reversal_id) if reversal_id else None

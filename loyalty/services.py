"""Every change of loyalty points goes through here.

The ledger: an earn creates a `PointsLot`; every change of a lot's `remaining` is a
`PointsMovement`; `LoyaltyAccount.points_remaining` caches SUM(lot.remaining). Each public service
is one idempotent `PointsOperation` (unique key + hash of the arguments): the same key replays the
first result, another request under the same key is refused (422).

Concurrency: every operation that takes points locks its account row first
(`SELECT … FOR UPDATE`; a merge locks both accounts in primary-key order), then changes lots with
conditional UPDATEs (`… SET remaining = remaining - x WHERE remaining >= x AND <spendable now>`)
and the account with `… WHERE points_remaining >= x`, so two channels spending the same points at
once are serialised on the account and can never take more than the spendable balance; the
database CHECKs (`remaining >= 0`, `points_remaining >= 0`) back it up. Spends change state with a
conditional UPDATE on their status, so a capture racing a release or an expiry wins or loses whole.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from common.channels import SalesChannel
from common.exceptions import InvalidInput
from common.idempotency import idempotency_key_check, request_fingerprint, run_once
from common.money import parse_amount
from customers.identifiers import normalise_card
from customers.models import Customer, IdentifierKind
from customers.services import identifier_add
from loyalty.exceptions import (
    InsufficientPoints,
    InvalidPoints,
    NoLoyaltyAccount,
    RefundExceedsSpent,
    ReturnExceedsPurchase,
    RewardUnavailable,
    SpendNotFound,
    SpendNotHeld,
)
from loyalty.models import (
    EarningRule,
    EarnLine,
    LotKind,
    LoyaltyAccount,
    MovementKind,
    PointsLot,
    PointsMovement,
    PointsOperation,
    PointsReversal,
    PointsSpend,
    ProgramSettings,
    Reward,
    RuleScope,
    SourceType,
    SpendPurpose,
    SpendStatus,
    Tier,
    TierChange,
)
from loyalty.selectors import customer_live
from stores.models import Location

MAX_POINTS = 10_000_000


# ---- settings and validation -------------------------------------------------------------------


def program_settings() -> ProgramSettings:
    """The one settings row (defaults when none was saved in the admin)."""
    return ProgramSettings.objects.order_by("pk").first() or ProgramSettings()


def validate_points(value, *, field: str = "points") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPoints(details={field: ["not a whole number"]})
    if value <= 0:
        raise InvalidPoints(details={field: ["must be > 0"]})
    if value > MAX_POINTS:
        raise InvalidPoints(f"At most {MAX_POINTS} points at once.", details={field: ["too large"]})
    return value


def _run(
    *,
    kind: str,
    idempotency_key: str,
    params: dict,
    channel: str,
    actor: str,
    body: Callable[[PointsOperation], dict],
) -> tuple[PointsOperation, bool]:
    """Run `body` once per key in one transaction; its dict is stored as the operation result.
    Returns (operation, replayed)."""
    key = idempotency_key_check(idempotency_key)
    fingerprint = request_fingerprint(kind, params)

    def perform() -> PointsOperation:
        # The unique key first: a concurrent duplicate waits here for the first to commit,
        # then fails and replays its result.
        operation = PointsOperation.objects.create(
            idempotency_key=key,
            kind=kind,
            request_hash=fingerprint,
            channel=channel,
            actor=actor[:150],
        )
        operation.result = body(operation)
        operation.save(update_fields=["result"])
        return operation

    return run_once(
        find=lambda: PointsOperation.objects.filter(idempotency_key=key).first(),
        same_request=lambda earlier: (earlier.kind, earlier.request_hash) == (kind, fingerprint),
        perform=perform,
        reused_message="This idempotency key was already used for a different points change.",
    )


# ---- accounts ----------------------------------------------------------------------------------


def _luhn_digit(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def card_number_new() -> str:
    """16 digits: prefix 29 (in-store range), 13 random digits and a Luhn check digit."""
    body = "29" + "".join(secrets.choice("0123456789") for _ in range(13))
    return body + _luhn_digit(body)


def account_open(
    *, customer: Customer, channel: str, actor: str, card_number: str | None = None
) -> LoyaltyAccount:
    """Enrol a customer: an account and its card number, attached to the customer record as its
    `loyalty_card` identifier (so the till resolves the person by scanning it). Opening an
    account the customer already has returns it.

    Raises InvalidIdentifier (malformed card), IdentifierTaken (card of someone else)."""

    customer = customer_live(customer)
    existing = LoyaltyAccount.objects.filter(customer=customer).first()
    if existing is not None:
        return existing
    number = normalise_card(card_number) if card_number else card_number_new()
    try:
        with transaction.atomic():
            identifier_add(
                customer=customer,
                kind=IdentifierKind.LOYALTY_CARD,
                value=number,
                is_primary=True,
                sales_channel=channel,
                actor=actor,
            )
            return LoyaltyAccount.objects.create(customer=customer, card_number=number)
    except IntegrityError:
        # A concurrent enrolment won: its card stands, this one's identifier is rolled back.
        account = LoyaltyAccount.objects.filter(customer=customer).first()
        if account is None:
            raise
        return account


def account_for(customer: Customer) -> LoyaltyAccount:
    account = LoyaltyAccount.objects.filter(customer=customer_live(customer)).first()
    if account is None:
        raise NoLoyaltyAccount()
    return account


def _lock_live_account(customer: Customer) -> LoyaltyAccount | None:
    """Lock the account that holds this person's points now. A merge may commit while we wait
    for the lock (it locks the accounts too): the customer is then re-read after the lock is
    granted, and we move on to the survivor's account."""
    for _ in range(5):
        customer = customer_live(customer)
        account_id = (
            LoyaltyAccount.objects.filter(customer=customer, is_active=True)
            .values_list("pk", flat=True)
            .first()
        )
        if account_id is None:
            return None
        locked = (
            LoyaltyAccount.objects.select_for_update(of=("self",))
            .select_related("tier")
            .get(pk=account_id)
        )
        # A new statement after the lock: under READ COMMITTED it sees a merge that committed
        # while we waited.
        owner = Customer.objects.filter(pk=locked.customer_id).values("merged_into_id").first()
        if locked.customer_id == customer.pk and owner and owner["merged_into_id"] is None:
            return locked
    raise RuntimeError("customer merged repeatedly while locking its account")  # pragma: no cover


def _lock_accounts(*ids: int) -> dict[int, LoyaltyAccount]:
    rows = LoyaltyAccount.objects.select_for_update().filter(pk__in=sorted(set(ids))).order_by("pk")
    return {row.pk: row for row in rows}


def _lock_account(account_id: int) -> LoyaltyAccount:
    return _lock_accounts(account_id)[account_id]


# ---- the two writes every operation is made of ---------------------------------------------------


def _lot_change(
    operation: PointsOperation,
    lot_id: int,
    account_id: int,
    delta: int,
    kind: str,
    *,
    at: datetime,
    spend_id: int | None = None,
    spendable_at: datetime | None = None,
) -> bool:
    """Change one lot's remaining by `delta` if it stays within bounds (and, when
    `spendable_at` is given, only if the lot is spendable then); append the movement."""
    lots = PointsLot.objects.filter(pk=lot_id)
    if delta < 0:
        lots = lots.filter(remaining__gte=-delta)
    else:
        lots = lots.filter(remaining__lte=F("amount") - delta)
    if spendable_at is not None:
        lots = lots.filter(available_at__lte=spendable_at, expires_at__gt=spendable_at)
    if not lots.update(remaining=F("remaining") + delta):
        return False
    PointsMovement.objects.create(
        operation=operation,
        account_id=account_id,
        lot_id=lot_id,
        kind=kind,
        delta=delta,
        spend_id=spend_id,
        occurred_at=at,
    )
    return True


def _account_change(account_id: int, delta: int) -> None:
    accounts = LoyaltyAccount.objects.filter(pk=account_id)
    if delta < 0:
        accounts = accounts.filter(points_remaining__gte=-delta)
    if not accounts.update(points_remaining=F("points_remaining") + delta):
        raise RuntimeError(f"loyalty account {account_id} cache would go negative")  # a bug


def _lot_create(
    operation: PointsOperation,
    account: LoyaltyAccount,
    *,
    kind: str,
    source_type: str,
    source_ref: str,
    amount: int,
    earned_at: datetime,
    available_at: datetime,
    expires_at: datetime,
    channel: str = "",
    store: Location | None = None,
    origin_lot: PointsLot | None = None,
) -> PointsLot:
    lot = PointsLot.objects.create(
        account=account,
        kind=kind,
        source_type=source_type,
        source_ref=source_ref[:120],
        amount=amount,
        remaining=amount,
        earned_at=earned_at,
        available_at=available_at,
        expires_at=expires_at,
        channel=channel,
        store=store,
        origin_lot=origin_lot,
        operation=operation,
    )
    PointsMovement.objects.create(
        operation=operation,
        account=account,
        lot=lot,
        kind=MovementKind.CREDIT,
        delta=amount,
        occurred_at=earned_at,
    )
    _account_change(account.pk, amount)
    return lot


def _take_fefo(
    operation: PointsOperation,
    account: LoyaltyAccount,
    points: int,
    *,
    kind: str,
    at: datetime,
    spend_id: int | None = None,
    spendable_only: bool = True,
    first_lot_id: int | None = None,
) -> int:
    """Take up to `points` from the account's lots, soonest to expire first (after `first_lot_id`
    when given). The account must be locked. Returns the points taken."""
    lots = PointsLot.objects.filter(account=account, remaining__gt=0, expires_at__gt=at)
    if spendable_only:
        lots = lots.filter(available_at__lte=at)
    ordered = list(lots.order_by("expires_at", "pk").values_list("pk", "remaining"))
    if first_lot_id is not None:
        ordered.sort(key=lambda row: row[0] != first_lot_id)
    taken = 0
    for lot_id, remaining in ordered:
        if taken == points:
            break
        part = min(remaining, points - taken)
        if _lot_change(
            operation,
            lot_id,
            account.pk,
            -part,
            kind,
            at=at,
            spend_id=spend_id,
            spendable_at=at if spendable_only else None,
        ):
            taken += part
    if taken:
        _account_change(account.pk, -taken)
    return taken


# ---- earning -----------------------------------------------------------------------------------


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


def _rules_at(at: datetime) -> list[EarningRule]:
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
    rules = _rules_at(at)
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


def _clean_lines(lines: Sequence[PurchaseLine], currency: str) -> list[PurchaseLine]:
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
    lines = _clean_lines(lines, currency)
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
        account = _lock_live_account(customer)
        if account is None:
            return {"lot": None, "reason": "no_account"}
        per_line, bonus = points_for_lines(
            lines=lines, channel=channel, tier=account.tier, at=occurred_at, program=program
        )
        total = sum(per_line) + bonus
        if total <= 0:
            return {"lot": None, "reason": "no_points"}
        available_at = occurred_at + timedelta(days=program.pending_days)
        lot = _lot_create(
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

    operation, _ = _run(
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
        account = _lock_account(lot.account_id)
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
            _take_fefo(
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

    operation, _ = _run(
        kind="reverse",
        idempotency_key=f"reverse:{source_type}:{source_ref}:{return_ref}",
        params=params,
        channel=channel,
        actor=actor,
        body=body,
    )
    reversal_id = operation.result.get("reversal")
    return PointsReversal.objects.get(pk=reversal_id) if reversal_id else None


# ---- spending: hold → capture / release ----------------------------------------------------


def points_hold(
    *,
    customer: Customer,
    points: int,
    reference: str,
    channel: str,
    idempotency_key: str,
    store: Location | None = None,
    purpose: str = SpendPurpose.TENDER,
    actor: str = "",
    ttl_minutes: int | None = None,
) -> PointsSpend:
    """Hold `points` of the spendable balance (soonest-expiring lots first) for an order or a till
    ticket. Raises InvalidPoints, NoLoyaltyAccount, InsufficientPoints (409: pending points are
    not spendable); nothing is held then."""
    points = validate_points(points)
    if not reference:
        raise InvalidInput("A reference is required.", details={"reference": ["blank"]})
    if purpose not in SpendPurpose.values:
        raise InvalidInput("Unknown purpose.", details={"purpose": [str(purpose)]})
    ttl = program_settings().hold_ttl_minutes if ttl_minutes is None else ttl_minutes
    params = {
        "customer": customer.pk,
        "points": points,
        "reference": reference,
        "purpose": purpose,
        "store": store.pk if store else None,
    }

    def body(operation: PointsOperation) -> dict:
        locked = _lock_live_account(customer)
        if locked is None:
            raise NoLoyaltyAccount()
        now = timezone.now()
        spend = PointsSpend.objects.create(
            account=locked,
            purpose=purpose,
            reference=reference[:120],
            points=points,
            channel=channel,
            store=store,
            expires_at=now + timedelta(minutes=ttl) if ttl else None,
            operation=operation,
        )
        taken = _take_fefo(
            operation, locked, points, kind=MovementKind.HOLD, at=now, spend_id=spend.pk
        )
        if taken < points:
            from loyalty.selectors import points_summary

            # Short: every spendable point was taken, so `taken` is what was spendable.
            pending = points_summary(account=locked, at=now)["pending"]
            raise InsufficientPoints(
                f"Only {taken} points are spendable; {points} were asked.",
                details={"available": taken, "pending": pending, "requested": points},
            )
        return {"spend": spend.pk}

    operation, _ = _run(
        kind="hold",
        idempotency_key=idempotency_key,
        params=params,
        channel=channel,
        actor=actor,
        body=body,
    )
    return PointsSpend.objects.get(pk=operation.result["spend"])


def _give_back(operation: PointsOperation, spend: PointsSpend, points: int, at: datetime) -> None:
    """Return `points` of a hold to the lots it took them from, latest-taken first (so the part
    kept is the soonest-expiring). The account must be locked."""
    taken = list(
        PointsMovement.objects.filter(spend=spend, kind=MovementKind.HOLD)
        .order_by("-pk")
        .values_list("lot_id", "delta")
    )
    left = points
    for lot_id, delta in taken:
        if left == 0:
            break
        part = min(-delta, left)
        if not _lot_change(
            operation,
            lot_id,
            spend.account_id,
            part,
            MovementKind.RELEASE,
            at=at,
            spend_id=spend.pk,
        ):
            raise RuntimeError(f"lot {lot_id} cannot take back {part} points")  # a bug
        left -= part
    _account_change(spend.account_id, points)


def _spend_get(spend_id: int) -> PointsSpend:
    spend = PointsSpend.objects.filter(pk=spend_id).first()
    if spend is None:
        raise SpendNotFound(details={"hold": [str(spend_id)]})
    return spend


def _close(spend: PointsSpend, status: str, captured: int, now: datetime, expired_before=None):
    filters = {"pk": spend.pk, "status": SpendStatus.HELD}
    if expired_before is not None:
        filters["expires_at__lte"] = expired_before
    return bool(
        PointsSpend.objects.filter(**filters).update(
            status=status, captured_points=captured, closed_at=now
        )
    )


def points_capture(
    *, spend_id: int, idempotency_key: str, points: int | None = None, actor: str = ""
) -> PointsSpend:
    """Spend all (or, with `points`, part) of a hold; the rest goes back to its lots.

    Raises SpendNotFound, SpendNotHeld (already captured, released or expired), InvalidPoints."""
    spend = _spend_get(spend_id)
    if points is not None:
        points = validate_points(points)
        if points > spend.points:
            raise InvalidPoints(
                "Cannot capture more than was held.", details={"points": [f"> {spend.points}"]}
            )
    capture = spend.points if points is None else points

    def body(operation: PointsOperation) -> dict:
        _lock_account(spend.account_id)
        now = timezone.now()
        if not _close(spend, SpendStatus.CAPTURED, capture, now):
            raise SpendNotHeld(details={"status": [PointsSpend.objects.get(pk=spend.pk).status]})
        if capture < spend.points:
            _give_back(operation, spend, spend.points - capture, now)
        return {"spend": spend.pk}

    _run(
        kind="capture",
        idempotency_key=idempotency_key,
        params={"spend": spend.pk, "points": capture},
        channel=spend.channel,
        actor=actor,
        body=body,
    )
    return PointsSpend.objects.get(pk=spend.pk)


def points_release(*, spend_id: int, idempotency_key: str, actor: str = "") -> PointsSpend:
    """Give a whole hold back to its lots. Raises SpendNotFound, SpendNotHeld."""
    spend = _spend_get(spend_id)

    def body(operation: PointsOperation) -> dict:
        _lock_account(spend.account_id)
        now = timezone.now()
        if not _close(spend, SpendStatus.RELEASED, 0, now):
            raise SpendNotHeld(details={"status": [PointsSpend.objects.get(pk=spend.pk).status]})
        _give_back(operation, spend, spend.points, now)
        return {"spend": spend.pk}

    _run(
        kind="release",
        idempotency_key=idempotency_key,
        params={"spend": spend.pk},
        channel=spend.channel,
        actor=actor,
        body=body,
    )
    return PointsSpend.objects.get(pk=spend.pk)


def points_holds_expire(*, now: datetime | None = None, batch: int = 500) -> int:
    """Release holds past their expiry (abandoned carts, a till that never confirmed). Safe to
    run twice: each hold's key is `spend:<id>:expire` and its close is conditional."""
    now = now or timezone.now()
    ids = list(
        PointsSpend.objects.filter(status=SpendStatus.HELD, expires_at__lte=now)
        .order_by("expires_at", "pk")
        .values_list("pk", flat=True)[:batch]
    )
    expired = 0
    for spend_id in ids:
        spend = PointsSpend.objects.get(pk=spend_id)

        def body(operation: PointsOperation, spend: PointsSpend = spend) -> dict:
            _lock_account(spend.account_id)
            if not _close(spend, SpendStatus.EXPIRED, 0, now, expired_before=now):
                return {"expired": False}
            _give_back(operation, spend, spend.points, now)
            return {"expired": True}

        operation, replayed = _run(
            kind="hold_expire",
            idempotency_key=f"spend:{spend_id}:expire",
            params={"spend": spend_id},
            channel=SalesChannel.BACKOFFICE,
            actor="system:holds_expire",
            body=body,
        )
        expired += int(bool(operation.result.get("expired")) and not replayed)
    return expired


def points_spend_for_reward(
    *,
    customer: Customer,
    points: int,
    reward_ref: str,
    channel: str,
    idempotency_key: str,
    store: Location | None = None,
    actor: str = "",
) -> PointsSpend:
    """Buy a reward with points: a hold captured at once (same FEFO, same guarantees)."""
    spend = points_hold(
        customer=customer,
        points=points,
        reference=reward_ref,
        channel=channel,
        idempotency_key=f"{idempotency_key}:hold",
        store=store,
        purpose=SpendPurpose.REWARD,
        actor=actor,
        ttl_minutes=0,
    )
    return points_capture(
        spend_id=spend.pk, idempotency_key=f"{idempotency_key}:capture", actor=actor
    )


def reward_buy(
    *,
    customer: Customer,
    reward_code: str,
    channel: str,
    idempotency_key: str,
    store: Location | None = None,
    actor: str = "",
) -> PointsSpend:
    """Buy a catalogue reward with points (its cost, soonest-expiring lots first).
    Raises RewardUnavailable, NoLoyaltyAccount, InsufficientPoints; nothing is spent then."""
    reward = Reward.objects.filter(code=reward_code, is_active=True).first()
    if reward is None or (reward.channels and channel not in reward.channels):
        raise RewardUnavailable(details={"reward": [str(reward_code)]})
    return points_spend_for_reward(
        customer=customer,
        points=reward.points_cost,
        reward_ref=f"reward:{reward.code}",
        channel=channel,
        idempotency_key=idempotency_key,
        store=store,
        actor=actor,
    )


def points_refund_spent(
    *, spend_id: int, points: int, refund_ref: str, channel: str, actor: str = ""
) -> PointsLot:
    """Points spent on an order that is refunded come back as a NEW lot (spendable at once, with
    a fresh validity): never more than the spend captured minus what was already given back.
    Idempotent per (spend, refund_ref). Raises SpendNotFound, InvalidPoints, RefundExceedsSpent."""
    points = validate_points(points)
    spend = _spend_get(spend_id)
    if not refund_ref:
        raise InvalidInput("A refund reference is required.", details={"refund_ref": ["blank"]})

    def body(operation: PointsOperation) -> dict:
        account = _lock_account(spend.account_id)
        if not PointsSpend.objects.filter(
            pk=spend.pk,
            status=SpendStatus.CAPTURED,
            refunded_points__lte=F("captured_points") - points,
        ).update(refunded_points=F("refunded_points") + points):
            fresh = PointsSpend.objects.get(pk=spend.pk)
            raise RefundExceedsSpent(
                details={"refundable": fresh.captured_points - fresh.refunded_points}
            )
        now = timezone.now()
        lot = _lot_create(
            operation,
            account,
            kind=LotKind.REFUND,
            source_type=SourceType.SPEND,
            source_ref=f"{spend.pk}:{refund_ref}",
            amount=points,
            earned_at=now,
            available_at=now,
            expires_at=now + timedelta(days=program_settings().validity_days),
            channel=channel,
        )
        return {"lot": lot.pk}

    operation, _ = _run(
        kind="refund_spent",
        idempotency_key=f"refund-spent:{spend.pk}:{refund_ref}",
        params={"spend": spend.pk, "points": points},
        channel=channel,
        actor=actor,
        body=body,
    )
    return PointsLot.objects.get(pk=operation.result["lot"])


def points_adjust(
    *,
    customer: Customer,
    points: int,
    reason: str,
    idempotency_key: str,
    actor: str,
    channel: str = SalesChannel.BACKOFFICE,
) -> PointsLot:
    """A goodwill credit: a new lot, spendable at once, with the normal validity."""
    points = validate_points(points)
    account_for(customer)
    if not reason.strip():
        raise InvalidInput("A reason is required.", details={"reason": ["blank"]})

    def body(operation: PointsOperation) -> dict:
        locked = _lock_live_account(customer)
        if locked is None:
            raise NoLoyaltyAccount()
        now = timezone.now()
        lot = _lot_create(
            operation,
            locked,
            kind=LotKind.ADJUSTMENT,
            source_type=SourceType.MANUAL,
            source_ref=reason[:120],
            amount=points,
            earned_at=now,
            available_at=now,
            expires_at=now + timedelta(days=program_settings().validity_days),
            channel=channel,
        )
        return {"lot": lot.pk}

    operation, _ = _run(
        kind="adjust",
        idempotency_key=idempotency_key,
        params={"customer": customer.pk, "points": points, "reason": reason},
        channel=channel,
        actor=actor,
        body=body,
    )
    return PointsLot.objects.get(pk=operation.result["lot"])


# ---- expiry ------------------------------------------------------------------------------------


def points_expire(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Expire what is left of lots past their expiry: one operation per lot, keyed on the lot's
    last movement (`lot:<id>:expire:after:<movement id>`), so running twice expires once, and a
    lot given points back by a late hold release is expired again by the next run. Returns the
    points expired."""
    now = now or timezone.now()
    due = list(
        PointsLot.objects.filter(remaining__gt=0, expires_at__lte=now)
        .order_by("expires_at", "pk")
        .values_list("pk", "account_id", "remaining")[:batch]
    )
    expired = 0
    for lot_id, account_id, _remaining in due:
        movements = PointsMovement.objects.filter(lot_id=lot_id).order_by("-pk")
        last = movements.values_list("pk", flat=True).first()

        def body(operation: PointsOperation, lot_id=lot_id, account_id=account_id) -> dict:
            _lock_account(account_id)
            left = PointsLot.objects.get(pk=lot_id).remaining
            if left == 0:
                return {"points": 0}
            _lot_change(operation, lot_id, account_id, -left, MovementKind.EXPIRE, at=now)
            _account_change(account_id, -left)
            PointsLot.objects.filter(pk=lot_id).update(expired_at=now)
            return {"points": left}

        operation, replayed = _run(
            kind="expire",
            idempotency_key=f"lot:{lot_id}:expire:after:{last}",
            params={"lot": lot_id},
            channel=SalesChannel.BACKOFFICE,
            actor="system:expire",
            body=body,
        )
        if not replayed:
            expired += operation.result.get("points", 0)
    return expired


# ---- tiers -------------------------------------------------------------------------------------


def qualifying_points(*, account: LoyaltyAccount, at: datetime) -> int:
    """Points earned on purchases over the rolling period ending at `at`, net of returns."""
    since = at - timedelta(days=program_settings().tier_period_days)
    lots = PointsLot.objects.filter(
        account=account, kind=LotKind.EARN, earned_at__gt=since, earned_at__lte=at
    )
    earned = lots.aggregate(total=Sum("amount"))["total"] or 0
    reversed_ = (
        PointsReversal.objects.filter(lot__in=lots).aggregate(total=Sum("points_due"))["total"] or 0
    )
    return earned - reversed_


def _tier_for(points: int) -> Tier | None:
    return Tier.objects.filter(threshold_points__lte=points).order_by("-threshold_points").first()


def _tier_set(account: LoyaltyAccount, tier: Tier | None, points: int, reason: str, at: datetime):
    TierChange.objects.create(
        account=account,
        from_tier=account.tier,
        to_tier=tier,
        qualifying_points=points,
        reason=reason,
        occurred_at=at,
    )
    period = timedelta(days=program_settings().tier_period_days)
    account.tier = tier
    account.tier_review_at = at + period if tier is not None else None
    account.save(update_fields=["tier", "tier_review_at"])


def tier_upgrade_check(*, account: LoyaltyAccount, at: datetime) -> Tier | None:
    """Upgrade at once when the rolling earned points reach a higher tier (never downgrade
    here). The account must be locked by the caller. Returns the new tier or None."""
    current = account.tier.threshold_points if account.tier else -1
    if not Tier.objects.filter(threshold_points__gt=current).exists():
        return None  # already at the top (or no tiers): no need to add up the period
    points = qualifying_points(account=account, at=at)
    best = _tier_for(points)
    if best is not None and best.threshold_points > current:
        _tier_set(account, best, points, "upgrade", at)
        return best
    return None


def tiers_review(*, now: datetime | None = None, batch: int = 1000) -> int:
    """At the end of the period a tier was held for, re-qualify: keep, lower (or raise) it to
    what the points earned over the last period give, and start a new period. Returns changes."""
    now = now or timezone.now()
    ids = list(
        LoyaltyAccount.objects.filter(tier_review_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:batch]
    )
    changed = 0
    for account_id in ids:
        with transaction.atomic():
            account = _lock_account(account_id)
            if account.tier_review_at is None or account.tier_review_at > now:
                continue
            points = qualifying_points(account=account, at=now)
            tier = _tier_for(points)
            if tier != account.tier:
                _tier_set(account, tier, points, "review", now)
                changed += 1
            else:
                account.tier_review_at = now + timedelta(days=program_settings().tier_period_days)
                account.save(update_fields=["tier_review_at"])
    return changed


# ---- merge / unmerge (registered with the customers app) ---------------------------------------


def accounts_merge(survivor: Customer, absorbed: Customer) -> dict:
    """Runs inside customers.customer_merge with both customers locked.

    The survivor has no account: the absorbed one becomes the survivor's (its card identifier
    moves with the customer links). Both have one: each open lot of the absorbed account is moved
    as a MERGE_IN lot of the survivor with its own earn date, pending date and expiry (a
    MERGE_OUT movement empties the original)."""
    source = LoyaltyAccount.objects.filter(customer=absorbed).first()
    if source is None:
        return {}
    target = LoyaltyAccount.objects.filter(customer=survivor).first()
    if target is None:
        LoyaltyAccount.objects.filter(pk=source.pk).update(customer=survivor)
        return {"account_moved": source.pk}
    locked = _lock_accounts(source.pk, target.pk)
    source, target = locked[source.pk], locked[target.pk]
    now = timezone.now()
    key = f"merge:{source.pk}->{target.pk}:{secrets.token_hex(8)}"
    operation = PointsOperation.objects.create(
        idempotency_key=key, kind="merge", request_hash="", actor="customers:merge"
    )
    moves = _move_lots(operation, source, target, now)
    return {"from": source.pk, "to": target.pk, "moves": moves, "key": key}


def _move_lots(
    operation: PointsOperation,
    source: LoyaltyAccount,
    target: LoyaltyAccount,
    now: datetime,
    only: dict[int, int] | None = None,
) -> list[list[int]]:
    lots = PointsLot.objects.filter(account=source, remaining__gt=0, expires_at__gt=now)
    if only is not None:
        lots = lots.filter(pk__in=list(only))
    moves = []
    for lot in lots.order_by("expires_at", "pk"):
        points = lot.remaining if only is None else min(lot.remaining, only[lot.pk])
        if points <= 0:
            continue
        if not _lot_change(operation, lot.pk, source.pk, -points, MovementKind.MERGE_OUT, at=now):
            raise RuntimeError(f"lot {lot.pk} changed during a merge")  # accounts are locked
        _account_change(source.pk, -points)
        new = _lot_create(
            operation,
            target,
            kind=LotKind.MERGE_IN,
            source_type=SourceType.LOT,
            source_ref=str(lot.pk),
            amount=points,
            earned_at=lot.earned_at,
            available_at=lot.available_at,
            expires_at=lot.expires_at,
            channel=lot.channel,
            store=lot.store,
            origin_lot=lot,
        )
        moves.append([lot.pk, new.pk, points])
    return moves


def accounts_unmerge(survivor: Customer, absorbed: Customer, payload: dict) -> None:
    """Reverse a merge: a moved account goes back; moved lots go back as much as is left of them
    (points spent since stay spent: no points are created)."""
    payload = payload or {}
    if payload.get("account_moved"):
        LoyaltyAccount.objects.filter(pk=payload["account_moved"]).update(customer=absorbed)
        return
    if not payload.get("moves"):
        return
    locked = _lock_accounts(payload["from"], payload["to"])
    source, target = locked[payload["to"]], locked[payload["from"]]
    operation = PointsOperation.objects.create(
        idempotency_key=f"{payload['key']}:undo",
        kind="unmerge",
        request_hash="",
        actor="customers:unmerge",
    )
    back = {new_lot: points for _, new_lot, points in payload["moves"]}
    _move_lots(operation, source, target, timezone.now(), only=back)


def open_holds_blocker(survivor: Customer, absorbed: Customer) -> list[str]:
    return [
        f"Points hold {spend.pk} of {absorbed.number} is open ({spend.points} points for "
        f"{spend.reference}); merge once it is captured or released."
        for spend in PointsSpend.objects.filter(account__customer=absorbed, status=SpendStatus.HELD)
    ]


def account_erase(customer: Customer) -> dict[str, int]:
    """GDPR erasure: the remaining points are forfeited (an EXPIRE movement per lot), the card
    number is replaced; the ledger stays (no personal data in it) for accounting."""
    account = LoyaltyAccount.objects.filter(customer=customer).first()
    if account is None:
        return {}
    account = _lock_account(account.pk)
    now = timezone.now()
    operation = PointsOperation.objects.create(
        idempotency_key=f"erase:{account.pk}:{secrets.token_hex(8)}",
        kind="erase",
        request_hash="",
        actor="customers:erase",
    )
    forfeited = 0
    for lot_id, remaining in PointsLot.objects.filter(account=account, remaining__gt=0).values_list(
        "pk", "remaining"
    ):
        _lot_change(operation, lot_id, account.pk, -remaining, MovementKind.EXPIRE, at=now)
        forfeited += remaining
    if forfeited:
        _account_change(account.pk, -forfeited)
    LoyaltyAccount.objects.filter(pk=account.pk).update(
        card_number=f"ERASED{account.pk}", is_active=False
    )
    return {"loyalty_points_forfeited": forfeited}

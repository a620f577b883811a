"""Every change of a gift card or store credit balance goes through here.

Two ledgers share one implementation (a `Ledger` names the account, entry and hold models):

- a credit (issue, refund, goodwill, adjustment) adds an entry and adds to `balance`;
- spending is hold → capture / release: `balance_hold` moves part of the available balance
  (`balance − held`) into `held`; `hold_capture` spends all or part of it (a debit entry, `held`
  and `balance` go down), `hold_release` / `holds_expire` give it back;
- `hold_refund` credits back part of what a captured hold spent, never more than it spent.

No double spend: `account_update` locks the account row (`SELECT … FOR NO KEY UPDATE`), checks
in exact Decimal that held and available (`balance − held`) stay ≥ 0, then writes — two channels
spending the same card at the same instant queue on the row and can never take more than the
balance. A hold changes state through a conditional UPDATE on its status, so a capture racing
an expiry or a release wins or loses as a whole. An operation touches at most the hold row then
its account row, always in that order (the merge handler locks wallets in primary-key order), so
two operations cannot deadlock. On SQLite writers are serialised by the database.

Every operation is idempotent: holds and entries carry unique idempotency keys; a replay with the
same key and the same arguments returns the first result, with other arguments it is refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from common.channels import SalesChannel
from common.exceptions import IdempotencyKeyReused, InvalidInput
from common.idempotency import idempotency_key_check, run_once
from common.money import CurrencyMismatch, parse_amount
from payments import codes, selectors
from payments.exceptions import (
    CaptureExceedsAuthorised,
    GiftCardBlocked,
    GiftCardExpired,
    HoldNotOpen,
    InsufficientBalance,
    InvalidAmount,
    RefundExceedsCaptured,
)
from payments.ledgers import GIFT_CARDS, WALLETS, Ledger, ledger_of
from payments.models import (
    BalanceAccount,
    BalanceHold,
    EntryKind,
    GiftCard,
    GiftCardEntry,
    GiftCardSource,
    GiftCardStatus,
    HoldStatus,
    LedgerEntry,
    StoreCreditWallet,
    WalletEntry,
)

# Sent inside the expiring transaction for each hold that lapsed; the tender it backed stops
# covering its order (payments/apps.py connects `tenders.tender_hold_expired`).
hold_expired = Signal()


def hold_ttl() -> timedelta:
    return timedelta(seconds=getattr(settings, "PAYMENTS_HOLD_TTL_SECONDS", 30 * 60))


# ---- validation --------------------------------------------------------------------------------


def validate_amount(value, currency: str, *, field: str = "amount") -> Decimal:
    """A positive amount with no more decimals than the currency has. No floats."""
    amount = parse_amount(value, currency, field=field)
    if amount <= 0:
        raise InvalidAmount("The amount must be greater than zero.", details={field: ["<= 0"]})
    if amount >= Decimal("1e10"):
        raise InvalidAmount("The amount is implausibly large.", details={field: ["too large"]})
    return amount


# ---- the account update every operation is made of --------------------------------------------


def account_update(
    ledger: Ledger,
    account_id: int,
    *,
    d_balance: Decimal = Decimal(0),
    d_held: Decimal = Decimal(0),
    need_available: Decimal | None = None,
    spendable_gift_card: bool = False,
) -> tuple[Decimal, Decimal] | None:
    """Add to balance and held if the guards hold; return (balance, held) after, or None.

    The account row is locked (FOR NO KEY UPDATE) until the caller's transaction ends, so the
    guards are checked, in exact Decimal, on the values the update writes over: held and
    available (balance − held) never go below zero, `need_available` must be available, and a
    gift card to spend from must be active and unexpired."""
    account = ledger.account.objects.select_for_update(no_key=True).filter(pk=account_id).first()
    if account is None:
        return None
    now = timezone.now()
    balance, held = account.balance + d_balance, account.held + d_held
    refused = (
        held < 0
        or balance - held < 0
        or (need_available is not None and account.balance - account.held < need_available)
        or (
            spendable_gift_card
            and (
                account.status != GiftCardStatus.ACTIVE
                or (account.expires_at is not None and account.expires_at <= now)
            )
        )
    )
    if refused:
        return None
    ledger.account.objects.filter(pk=account_id).update(balance=balance, held=held, updated_at=now)
    return balance, held


def _hold_close(
    ledger: Ledger, hold_id: int, *, status: str, captured: Decimal, expired_before=None
) -> bool:
    """OPEN → status, in one conditional UPDATE: exactly one closer wins."""
    filters = {"pk": hold_id, "status": HoldStatus.OPEN}
    if expired_before is not None:
        filters["expires_at__lte"] = expired_before
    return bool(
        ledger.hold.objects.filter(**filters).update(
            status=status, captured_amount=captured, closed_at=timezone.now()
        )
    )


def entry_create(
    ledger: Ledger,
    *,
    account_id: int,
    amount: Decimal,
    balance_after: Decimal,
    kind: str,
    idempotency_key: str,
    channel: str,
    actor: str,
    reference: str = "",
    reason: str = "",
    hold_id: int | None = None,
) -> LedgerEntry:
    return ledger.entry.objects.create(
        account_id=account_id,
        amount=amount,
        balance_after=balance_after,
        kind=kind,
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor[:150],
        reference=reference[:120],
        reason=reason[:255],
        hold_id=hold_id,
    )


# ---- credits -----------------------------------------------------------------------------------


def balance_credit(
    *,
    account: BalanceAccount,
    amount: Decimal,
    kind: str,
    idempotency_key: str,
    channel: str,
    actor: str,
    reference: str = "",
    reason: str = "",
) -> LedgerEntry:
    """Add `amount` (> 0) to an account: one entry, the account updated under its row lock."""
    ledger = ledger_of(account)
    amount = validate_amount(amount, account.currency)
    idempotency_key_check(idempotency_key)
    return _apply_delta(
        ledger,
        account_id=account.pk,
        amount=amount,
        kind=kind,
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        reference=reference,
        reason=reason,
    )


def _apply_delta(ledger: Ledger, *, account_id: int, amount: Decimal, kind: str, **entry):
    """A signed change of the balance (a debit may only take what is available, not held)."""
    key = entry["idempotency_key"]
    written, _ = run_once(
        find=lambda: ledger.entry.objects.filter(idempotency_key=key).first(),
        same_request=lambda earlier: (
            (earlier.account_id, earlier.amount, earlier.kind) == (account_id, amount, kind)
        ),
        perform=lambda: _write_delta(
            ledger, account_id=account_id, amount=amount, kind=kind, **entry
        ),
        reused_message="This idempotency key was already used for another change.",
    )
    return written


def _write_delta(ledger: Ledger, *, account_id: int, amount: Decimal, kind: str, **entry):
    """The write itself, inside the caller's transaction (a duplicate key raises)."""
    row = account_update(
        ledger,
        account_id,
        d_balance=amount,
        need_available=-amount if amount < 0 else None,
    )
    if row is None:
        available = ledger.account.objects.get(pk=account_id).available
        raise InsufficientBalance(
            f"Only {available} is available; {-amount} cannot be taken.",
            details={"available": str(available), "requested": str(-amount)},
        )
    return entry_create(
        ledger, account_id=account_id, amount=amount, balance_after=row[0], kind=kind, **entry
    )


# ---- gift cards --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedGiftCard:
    card: GiftCard
    code: str | None  # shown once; None when the call was a replay (the code is not stored)


def gift_card_issue(
    *,
    amount,
    currency: str,
    source: str,
    channel: str,
    actor: str,
    idempotency_key: str,
    expires_at: datetime | None = None,
    reference: str = "",
    reason: str = "",
) -> IssuedGiftCard:
    """Issue a new card with its initial balance (an ISSUE entry). Returns the code, once."""
    amount = validate_amount(amount, currency)
    idempotency_key_check(idempotency_key)
    if source not in GiftCardSource.values:
        raise InvalidInput("Unknown gift card source.", details={"source": [source]})
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("The expiry must be in the future.", details={"expires_at": ["past"]})
    if earlier := GiftCardEntry.objects.filter(idempotency_key=idempotency_key).first():
        card = earlier.account
        if (earlier.kind, earlier.amount, card.currency) != (EntryKind.ISSUE, amount, currency):
            raise IdempotencyKeyReused("This idempotency key was already used for another card.")
        return IssuedGiftCard(card, None)
    for _attempt in range(5):
        code = codes.generate()
        try:
            with transaction.atomic():
                card = GiftCard.objects.create(
                    code_hash=codes.code_hash(code),
                    code_last4=code[-4:],
                    currency=currency,
                    initial_balance=amount,
                    status=GiftCardStatus.ACTIVE,
                    expires_at=expires_at,
                    source=source,
                    issued_channel=channel,
                    issued_by=actor[:150],
                    reference=reference[:120],
                )
                issue = _write_delta(
                    GIFT_CARDS,
                    account_id=card.pk,
                    amount=amount,
                    kind=EntryKind.ISSUE,
                    idempotency_key=idempotency_key,
                    channel=channel,
                    actor=actor,
                    reference=reference,
                    reason=reason,
                )
            card.balance = issue.balance_after  # the row was credited by its ledger entry
            return IssuedGiftCard(card, code)
        except IntegrityError:
            # Either a concurrent call with the same key won (replay it), or — once in 2^75 — a
            # code collided (draw another).
            if GiftCardEntry.objects.filter(idempotency_key=idempotency_key).exists():
                return gift_card_issue(
                    amount=amount,
                    currency=currency,
                    source=source,
                    channel=channel,
                    actor=actor,
                    idempotency_key=idempotency_key,
                    expires_at=expires_at,
                )
    raise RuntimeError("Could not draw a unique gift card code.")  # pragma: no cover


def gift_card_block(*, card: GiftCard, actor: str, reason: str) -> GiftCard:
    """Block a card: no new hold is accepted. Holds already taken may still be captured or
    released (the goods may already be sold); the admin shows them."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why the card is blocked.", details={"reason": ["required"]})
    GiftCard.objects.filter(pk=card.pk).update(
        status=GiftCardStatus.BLOCKED, block_reason=f"{reason} ({actor})"[:255]
    )
    card.refresh_from_db()
    return card


def gift_card_unblock(*, card: GiftCard, actor: str) -> GiftCard:
    GiftCard.objects.filter(pk=card.pk).update(status=GiftCardStatus.ACTIVE, block_reason="")
    card.refresh_from_db()
    return card


def balance_adjust(
    *,
    account: BalanceAccount,
    amount,
    reason: str,
    actor: str,
    idempotency_key: str,
    channel: str = SalesChannel.BACKOFFICE,
) -> LedgerEntry:
    """A signed manual correction with a written reason; a debit takes only what is not held."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("An adjustment needs a reason.", details={"reason": ["required"]})
    value = parse_amount(amount, account.currency)
    if value == 0:
        raise InvalidAmount("An adjustment of 0 changes nothing.", details={"amount": ["zero"]})
    idempotency_key_check(idempotency_key)
    return _apply_delta(
        ledger_of(account),
        account_id=account.pk,
        amount=value,
        kind=EntryKind.ADJUSTMENT,
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        reason=reason,
    )


# ---- store credit wallets ----------------------------------------------------------------------


def wallet_for(*, customer, currency: str) -> StoreCreditWallet:
    """The customer's wallet in this currency (created empty when missing). A merged record's
    wallet is its survivor's."""
    while customer.merged_into_id is not None:
        customer = customer.merged_into
    wallet, _ = StoreCreditWallet.objects.get_or_create(customer=customer, currency=currency)
    return wallet


def wallet_credit(
    *,
    customer,
    amount,
    currency: str,
    idempotency_key: str,
    channel: str,
    actor: str,
    kind: str = EntryKind.CREDIT,
    reference: str = "",
    reason: str = "",
) -> WalletEntry:
    """Credit store credit (a refund taken as store credit, or goodwill)."""
    if kind not in (EntryKind.CREDIT, EntryKind.GOODWILL):
        raise InvalidInput("Store credit is credited as credit or goodwill.")
    value = validate_amount(amount, currency)
    idempotency_key_check(idempotency_key)
    wallet = wallet_for(customer=customer, currency=currency)
    return balance_credit(
        account=wallet,
        amount=value,
        kind=kind,
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        reference=reference,
        reason=reason,
    )


# ---- hold → capture / release ------------------------------------------------------------------


def balance_hold(
    *,
    account: BalanceAccount,
    amount,
    idempotency_key: str,
    channel: str,
    actor: str,
    reference: str = "",
    expires_at: datetime | None = None,
) -> BalanceHold:
    """Set `amount` of the available balance aside. Raises InsufficientBalance, GiftCardBlocked,
    GiftCardExpired, InvalidAmount; nothing is held then."""
    ledger = ledger_of(account)
    value = validate_amount(amount, account.currency)
    idempotency_key_check(idempotency_key)
    now = timezone.now()
    expires_at = expires_at or now + hold_ttl()
    if expires_at <= now:
        raise InvalidInput("A hold must expire in the future.", details={"expires_at": ["past"]})
    try:
        with transaction.atomic():
            # The unique key goes in first: a concurrent duplicate waits here, then replays.
            hold = ledger.hold.objects.create(
                account_id=account.pk,
                amount=value,
                expires_at=expires_at,
                idempotency_key=idempotency_key,
                channel=channel,
                actor=actor[:150],
                reference=reference[:120],
            )
            row = account_update(
                ledger,
                account.pk,
                d_held=value,
                need_available=value,
                spendable_gift_card=ledger is GIFT_CARDS,
            )
            if row is None:
                _raise_hold_refused(ledger, account.pk, value)
            return hold
    except IntegrityError:
        earlier = ledger.hold.objects.filter(idempotency_key=idempotency_key).first()
        if earlier is None:
            raise
        if (earlier.account_id, earlier.amount) != (account.pk, value):
            raise IdempotencyKeyReused(
                "This idempotency key was already used for another hold."
            ) from None
        return earlier


def _raise_hold_refused(ledger: Ledger, account_id: int, amount: Decimal):
    account = ledger.account.objects.get(pk=account_id)
    if isinstance(account, GiftCard):
        if account.status == GiftCardStatus.BLOCKED:
            raise GiftCardBlocked()
        if account.expires_at is not None and account.expires_at <= timezone.now():
            raise GiftCardExpired()
    raise InsufficientBalance(
        f"Only {account.available} {account.currency} is available; {amount} was asked.",
        details={"available": str(account.available), "requested": str(amount)},
    )


def hold_capture(*, hold: BalanceHold, amount=None, actor: str = "") -> BalanceHold:
    """Spend `amount` (default: all) of an open hold; the rest goes back to the balance.

    Idempotent: capturing a hold already captured for the same amount returns it."""
    ledger = ledger_of(hold)
    currency = ledger.account.objects.values_list("currency", flat=True).get(pk=hold.account_id)
    value = hold.amount if amount is None else validate_amount(amount, currency)
    if value > hold.amount:
        raise CaptureExceedsAuthorised(
            f"{value} is more than the {hold.amount} held.",
            details={"amount": [f"at most {hold.amount}"]},
        )
    with transaction.atomic():
        if not _hold_close(ledger, hold.pk, status=HoldStatus.CAPTURED, captured=value):
            current = ledger.hold.objects.get(pk=hold.pk)
            if current.status == HoldStatus.CAPTURED and current.captured_amount == value:
                return current
            raise HoldNotOpen(details={"status": current.status})
        row = account_update(ledger, hold.account_id, d_balance=-value, d_held=-hold.amount)
        if row is None:  # pragma: no cover - the CHECKs make this impossible
            raise RuntimeError(f"Ledger invariant broken on {ledger.name} {hold.account_id}")
        entry_create(
            ledger,
            account_id=hold.account_id,
            amount=-value,
            balance_after=row[0],
            kind=EntryKind.CAPTURE,
            idempotency_key=f"{ledger.name}:hold:{hold.pk}:capture",
            channel=hold.channel,
            actor=actor or hold.actor,
            reference=hold.reference,
            hold_id=hold.pk,
        )
    return ledger.hold.objects.get(pk=hold.pk)


def hold_capture_for_ticket(
    *, public_id, source: str, amount, currency: str, ticket: str, actor: str
) -> BalanceHold:
    """A till's sale spends the hold it took for this ticket (`source`: gift_card or
    store_credit; the hold's reference is the ticket number, so one hold pays one ticket).
    Idempotent: a replayed sale finds the hold captured. Raises HoldNotFound, HoldNotOpen,
    CaptureExceedsAuthorised, CurrencyMismatch, InvalidInput (another kind or ticket)."""
    hold = selectors.hold_by_public_id(public_id=public_id)
    hold_source = "gift_card" if ledger_of(hold) is GIFT_CARDS else "store_credit"
    if hold_source != source:
        raise InvalidInput(
            f"This hold is on {hold_source.replace('_', ' ')}, not {source.replace('_', ' ')}.",
            details={"hold": ["another kind"]},
        )
    if hold.reference != ticket[:120]:
        raise InvalidInput(
            "This hold was taken for another ticket.", details={"hold": ["another ticket"]}
        )
    account_currency = ledger_of(hold).account.objects.values_list("currency", flat=True)
    if account_currency.get(pk=hold.account_id) != currency:
        raise CurrencyMismatch(details={"currency": ["not the hold's"]})
    return hold_capture(hold=hold, amount=amount, actor=actor)


def hold_release(*, hold: BalanceHold, actor: str = "") -> BalanceHold:
    """Give an open hold back to the balance. Idempotent on a released or expired hold."""
    ledger = ledger_of(hold)
    with transaction.atomic():
        if not _hold_close(ledger, hold.pk, status=HoldStatus.RELEASED, captured=Decimal(0)):
            current = ledger.hold.objects.get(pk=hold.pk)
            if current.status in (HoldStatus.RELEASED, HoldStatus.EXPIRED):
                return current
            raise HoldNotOpen(details={"status": current.status})
        account_update(ledger, hold.account_id, d_held=-hold.amount)
    return ledger.hold.objects.get(pk=hold.pk)


def holds_expire(*, now: datetime | None = None, batch: int = 500) -> int:
    """Release every open hold past its expiry (the periodic task). Returns how many."""
    now = now or timezone.now()
    expired = 0
    for ledger in (GIFT_CARDS, WALLETS):
        due = list(
            ledger.hold.objects.filter(status=HoldStatus.OPEN, expires_at__lte=now)
            .order_by("pk")
            .values_list("pk", "account_id", "amount")[:batch]
        )
        for hold_id, account_id, amount in due:
            with transaction.atomic():
                # A capture may have won since the list was read: then this does nothing.
                if _hold_close(
                    ledger,
                    hold_id,
                    status=HoldStatus.EXPIRED,
                    captured=Decimal(0),
                    expired_before=now,
                ):
                    account_update(ledger, account_id, d_held=-amount)
                    hold_expired.send(
                        sender=ledger.hold, hold=ledger.hold(pk=hold_id, account_id=account_id)
                    )
                    expired += 1
    return expired


def hold_refund(
    *,
    hold: BalanceHold,
    amount,
    idempotency_key: str,
    channel: str,
    actor: str,
    reference: str = "",
    reason: str = "",
) -> LedgerEntry:
    """Credit back part of what a captured hold spent — never more than it spent in total."""
    ledger = ledger_of(hold)
    account = ledger.account.objects.get(pk=hold.account_id)
    value = validate_amount(amount, account.currency)
    idempotency_key_check(idempotency_key)

    def perform() -> LedgerEntry:
        locked = ledger.hold.objects.select_for_update(no_key=True).get(pk=hold.pk)
        left = locked.captured_amount - locked.refunded_amount
        if locked.status != HoldStatus.CAPTURED or value > left:
            raise RefundExceedsCaptured(
                f"At most {left} can still be refunded to this hold.",
                details={"refundable": str(left), "requested": str(value)},
            )
        locked.refunded_amount += value
        locked.save(update_fields=["refunded_amount"])
        return _write_delta(
            ledger,
            account_id=account.pk,
            amount=value,
            kind=EntryKind.REFUND,
            idempotency_key=idempotency_key,
            channel=channel,
            actor=actor,
            reference=reference or hold.reference,
            reason=reason,
            hold_id=hold.pk,
        )

    entry, _ = run_once(
        find=lambda: ledger.entry.objects.filter(idempotency_key=idempotency_key).first(),
        same_request=lambda earlier: (
            (earlier.account_id, earlier.amount, earlier.kind)
            == (account.pk, value, EntryKind.REFUND)
        ),
        perform=perform,
        reused_message="This idempotency key was already used for another change.",
    )
    return entry


def new_key(prefix: str) -> str:
    return f"{prefix}:{uuid.uuid4()}"

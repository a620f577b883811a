"""Reservations: units held at a location for an order or a cart, until committed (the goods
leave) or released (back to sale, by hand or at expiry)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from common.channels import SalesChannel
from common.exceptions import InvalidInput
from inventory.exceptions import InvalidQuantity, LocationInactive, ReservationNotOpen
from inventory.models import MovementKind, Reservation, ReservationStatus, StockOperation
from inventory.services.ledger import (
    Guard,
    change,
    guard_for_channel,
    operation_run,
    positions_of,
    stock_apply,
    validate_quantity,
)

MAX_HOLD = timedelta(days=90)


@dataclass(frozen=True)
class ReservationRequest:
    sku_id: int
    location_id: int
    quantity: int


def reservations_create(
    *,
    requests: Sequence[ReservationRequest],
    idempotency_key: str,
    channel: str,
    reference: str = "",
    expires_at: datetime | None = None,
    ttl_seconds: int | None = None,
    actor: str = "",
    guard: Guard | None = None,
) -> list[Reservation]:
    """Hold stock for an order or a cart: every line or none (InsufficientStock names the lines).

    Online channels may not reserve into the safety stock; a store till may. `guard` overrides
    the channel's: Guard.NONE holds units that are physically there whatever the shelf's count
    says (an order's goods that just arrived by transfer, at a store the tills sold below zero).
    `expires_at` (or `ttl_seconds`, default RESERVATION_DEFAULT_TTL_SECONDS) bounds the hold;
    pass neither and `ttl_seconds=0` to hold until explicitly released (an order in preparation).
    """
    if not requests:
        raise InvalidInput("At least one line is needed.", details={"lines": ["empty"]})
    for request in requests:
        validate_quantity(request.quantity)
    expires_at = _hold_until(expires_at, ttl_seconds)
    line_keys = [f"{idempotency_key}#{index}" for index in range(len(requests))]
    created: list[Reservation] = []

    def body(operation: StockOperation) -> None:
        created.extend(
            _hold(
                operation,
                requests,
                line_keys,
                channel=channel,
                reference=reference,
                expires_at=expires_at,
                guard=guard,
            )
        )

    _, replayed = operation_run(
        kind="reserve",
        idempotency_key=idempotency_key,
        channel=channel,
        actor=actor,
        reference=reference,
        params={
            "lines": [(r.sku_id, r.location_id, r.quantity) for r in requests],
            "reference": reference,
        },
        body=body,
    )
    if replayed:
        created = list(Reservation.objects.filter(created_by_key__in=line_keys).order_by("pk"))
    for reservation in created:
        reservation.replayed = replayed
    return created


def _hold(
    operation: StockOperation,
    requests: Sequence[ReservationRequest],
    line_keys: list[str],
    *,
    channel: str,
    reference: str,
    expires_at: datetime | None,
    guard: Guard | None = None,
) -> list[Reservation]:
    """The reservations of one operation, and their units taken through the ledger."""
    positions = positions_of((r.sku_id, r.location_id) for r in requests)
    inactive = sorted({p.location_code for p in positions.values() if not p.location_active})
    if inactive:
        raise LocationInactive(
            f"Location {', '.join(inactive)} is inactive.", details={"location": inactive}
        )
    reservations = Reservation.objects.bulk_create(
        [
            Reservation(
                position_id=positions[(r.sku_id, r.location_id)].pk,
                sku_id=r.sku_id,
                location_id=r.location_id,
                quantity=r.quantity,
                channel=channel,
                reference=reference[:120],
                expires_at=expires_at,
                created_by_key=line_key,
            )
            for r, line_key in zip(requests, line_keys, strict=True)
        ]
    )
    guard = guard_for_channel(channel) if guard is None else guard
    stock_apply(
        operation=operation,
        positions=positions,
        changes=[
            change(
                MovementKind.RESERVE,
                sku_id=r.sku_id,
                location_id=r.location_id,
                quantity=r.quantity,
                guard=guard,
                reservation_id=reservation.pk,
            )
            for r, reservation in zip(requests, reservations, strict=True)
        ],
    )
    return reservations


def _hold_until(expires_at: datetime | None, ttl_seconds: int | None) -> datetime | None:
    now = timezone.now()
    if expires_at is not None:
        if expires_at <= now:
            raise InvalidInput("expires_at is in the past.", details={"expires_at": ["past"]})
        if expires_at > now + MAX_HOLD:
            raise InvalidInput(
                "A hold lasts at most 90 days.", details={"expires_at": ["more than 90 days"]}
            )
        return expires_at
    ttl = (
        settings.OMNISTOCK["RESERVATION_DEFAULT_TTL_SECONDS"]
        if ttl_seconds is None
        else ttl_seconds
    )
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int)
        or not 0 <= ttl <= MAX_HOLD.total_seconds()
    ):
        raise InvalidInput(
            "ttl_seconds must be between 0 and 90 days.", details={"ttl_seconds": ["range"]}
        )
    return now + timedelta(seconds=ttl) if ttl else None


def reservation_create(
    *, sku_id: int, location_id: int, quantity: int, idempotency_key: str, channel: str, **options
) -> Reservation:
    return reservations_create(
        requests=[ReservationRequest(sku_id=sku_id, location_id=location_id, quantity=quantity)],
        idempotency_key=idempotency_key,
        channel=channel,
        **options,
    )[0]


def _settle(
    *,
    reservation_id: int,
    quantity: int | None,
    idempotency_key: str,
    actor: str,
    commit: bool,
    release_rest: bool = False,
    expired: bool = False,
    reason: str = "",
) -> Reservation:
    """Commit or release open units of a reservation, as one idempotent operation."""
    if quantity is not None:
        validate_quantity(quantity)

    def body(operation: StockOperation) -> None:
        reservation = Reservation.objects.select_for_update(no_key=True).get(pk=reservation_id)
        open_quantity = reservation.open_quantity
        if open_quantity == 0:
            raise ReservationNotOpen(
                f"Reservation {reservation_id} is already {reservation.status}."
            )
        amount = open_quantity if quantity is None else quantity
        if amount > open_quantity:
            raise InvalidQuantity(
                f"Only {open_quantity} units of this reservation are open.",
                details={"quantity": [f"must be ≤ {open_quantity}"]},
            )
        of_it = {
            "sku_id": reservation.sku_id,
            "location_id": reservation.location_id,
            "reservation_id": reservation.pk,
            "reason": reason,
        }
        changes = []
        if commit:
            reservation.committed_quantity += amount
            changes.append(change(MovementKind.COMMIT, quantity=amount, **of_it))
            rest = reservation.open_quantity if release_rest else 0
            if rest:
                reservation.released_quantity += rest
                changes.append(change(MovementKind.RELEASE, quantity=rest, **of_it))
        else:
            reservation.released_quantity += amount
            changes.append(change(MovementKind.RELEASE, quantity=amount, **of_it))
        if reservation.open_quantity == 0:
            reservation.status = (
                ReservationStatus.COMMITTED
                if reservation.committed_quantity
                else ReservationStatus.EXPIRED
                if expired
                else ReservationStatus.RELEASED
            )
        reservation.save(
            update_fields=["committed_quantity", "released_quantity", "status", "updated_at"]
        )
        stock_apply(operation=operation, changes=changes)

    operation_run(
        kind="commit" if commit else ("expire" if expired else "release"),
        idempotency_key=idempotency_key,
        channel=SalesChannel.BACKOFFICE,
        actor=actor,
        reference=str(reservation_id),
        params={"reservation": reservation_id, "quantity": quantity, "release_rest": release_rest},
        body=body,
    )
    return Reservation.objects.get(pk=reservation_id)


def reservation_release(
    *,
    reservation_id: int,
    idempotency_key: str,
    quantity: int | None = None,
    actor: str = "",
    reason: str = "",
) -> Reservation:
    """Give held units back to sale (all open units, or `quantity` of them)."""
    return _settle(
        reservation_id=reservation_id,
        quantity=quantity,
        idempotency_key=idempotency_key,
        actor=actor,
        commit=False,
        reason=reason,
    )


def reservation_commit(
    *,
    reservation_id: int,
    idempotency_key: str,
    quantity: int | None = None,
    release_rest: bool = False,
    actor: str = "",
) -> Reservation:
    """The held units leave (collected, shipped): on hand and reserved both decrease."""
    return _settle(
        reservation_id=reservation_id,
        quantity=quantity,
        idempotency_key=idempotency_key,
        actor=actor,
        commit=True,
        release_rest=release_rest,
    )


def reservations_release_expired(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Release every active hold past its expiry. Safe to run twice (one key per reservation)."""
    now = now or timezone.now()
    expired_ids = list(
        Reservation.objects.filter(status=ReservationStatus.ACTIVE, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:limit]
    )
    released = 0
    for reservation_id in expired_ids:
        try:
            _settle(
                reservation_id=reservation_id,
                quantity=None,
                idempotency_key=f"reservation:{reservation_id}:expire",
                actor="system:expiry",
                commit=False,
                expired=True,
            )
            released += 1
        except ReservationNotOpen:
            continue  # settled meanwhile by its order
    return released

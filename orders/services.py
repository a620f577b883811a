"""Every write to orders: placement with routing, the fulfilment state machine, rejections with
re-routing, transfers for click & collect, pickup hand-over, expiry and returns.

Each service runs in one transaction: it locks the order row first, then changes stock only
through `inventory.services` (whose position updates run in primary-key order), records an
OrderEvent (who, when, from which channel) and schedules notifications on commit. Every write
takes an idempotency key: a retried call with the same key returns the order unchanged.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from common import sql
from common.channels import SalesChannel
from common.exceptions import DomainError, IdempotencyKeyReused, IllegalTransition, InvalidInput
from common.money import CurrencyMismatch, Money, parse_amount
from customers.models import Customer
from integrations.services import events_record
from inventory import services as stock
from inventory.exceptions import InsufficientStock, LocationInactive, UnknownLocation
from inventory.models import (
    AdjustmentReason,
    Reservation,
    ReservationStatus,
    Sku,
    StockPosition,
    Transfer,
    TransferLine,
)
from inventory.services import ReservationRequest, validate_quantity
from orders import pickup, routing, selectors
from orders.exceptions import (
    OrderNotFound,
    OutOfStock,
    StoreAtCapacity,
    StoreInactive,
    WaitingForTransfer,
    WrongPickupCode,
)
from orders.models import (
    Allocation,
    AllocationKind,
    AllocationLine,
    AllocationStatus,
    FulfilmentType,
    LineStatus,
    LocationDayLoad,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    PendingNotification,
    Return,
    ReturnLine,
    RoutingDecision,
)
from stores.models import Location
from stores.selectors import location_ready_by

logger = logging.getLogger(__name__)

ROUTING_ATTEMPTS = 3
_REFERENCE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_CHANNEL_PREFIX = {
    SalesChannel.WEB: "W",
    SalesChannel.APP: "A",
    SalesChannel.MARKETPLACE: "M",
    SalesChannel.CALL_CENTRE: "C",
    SalesChannel.STORE: "S",
    SalesChannel.BACKOFFICE: "B",
}

TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PLACED: frozenset({OrderStatus.ALLOCATED, OrderStatus.CANCELLED}),
    OrderStatus.ALLOCATED: frozenset({OrderStatus.PICKING, OrderStatus.CANCELLED}),
    OrderStatus.PICKING: frozenset(
        {OrderStatus.READY_FOR_PICKUP, OrderStatus.SHIPPED, OrderStatus.CANCELLED}
    ),
    OrderStatus.READY_FOR_PICKUP: frozenset(
        {OrderStatus.COLLECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
}
CLOSED_STATUSES = frozenset(
    {OrderStatus.COLLECTED, OrderStatus.DELIVERED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
)


@dataclass(frozen=True)
class OrderLineRequest:
    sku_id: int
    quantity: int
    unit_price: Decimal | str | int
    currency: str
    sku_code: str = ""


@dataclass(frozen=True)
class DeliveryAddress:
    name: str
    address: str
    postcode: str
    city: str
    country: str
    latitude: Decimal
    longitude: Decimal


# ---- helpers ---------------------------------------------------------------------------------

DEADLOCK_ATTEMPTS = 3
_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


def _retry_on_deadlock(service):
    """Run a service again when PostgreSQL aborted it for a deadlock. A service that settles an
    order's reservations and then routes a line again takes position locks in two rounds, so a
    concurrent placement can deadlock with it; PostgreSQL aborts one of the two and this replays
    it (its savepoint was rolled back, so the caller's transaction is intact). A prepared
    statement this session lost (common.sql.PreparedStatementLost) is replayed the same way:
    the next attempt prepares it again."""

    @functools.wraps(service)
    def wrapper(*args, **kwargs):
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                return service(*args, **kwargs)
            except sql.PreparedStatementLost:
                if attempt == DEADLOCK_ATTEMPTS:
                    raise
            except OperationalError as exc:
                state = getattr(exc.__cause__, "sqlstate", None)
                if state not in _RETRYABLE_SQLSTATES or attempt == DEADLOCK_ATTEMPTS:
                    raise
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


def _new_reference(channel: str) -> str:
    body = "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(9))
    return f"{_CHANNEL_PREFIX.get(channel, 'X')}{body}"


def _lock(order_id: int) -> Order:
    order = Order.objects.select_for_update(no_key=True).filter(pk=order_id).first()
    if order is None:
        raise OrderNotFound(f"No order with id {order_id}.")
    return order


def _replayed(key: str | None) -> Order | None:
    if not key:
        return None
    event = OrderEvent.objects.filter(idempotency_key=key).select_related("order").first()
    if event is None:
        return None
    event.order.replayed = True
    return event.order


def _event(
    order: Order,
    kind: str,
    *,
    actor: str,
    channel: str,
    from_status: str = "",
    to_status: str = "",
    data: dict | None = None,
    key: str | None = None,
) -> OrderEvent:
    journal = OrderEvent.objects.create(
        order=order,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor=actor[:150],
        channel=channel,
        data=data or {},
        idempotency_key=key,
        occurred_at=timezone.now(),
    )
    # The same event for subscribers (storefront, marketplace connectors), in the same
    # transaction: signed, retried webhooks `order.<kind>` (integrations outbox).
    events_record(
        [
            (
                f"order.{kind}",
                {
                    "order": order.reference,
                    "channel": order.channel,
                    "status": order.status,
                    "from_status": from_status,
                    "fulfilment": order.fulfilment,
                    "pickup_location": order.pickup_location.code
                    if order.pickup_location_id
                    else None,
                    "data": data or {},
                },
            )
        ],
        occurred_at=journal.occurred_at,
    )
    return journal


def _move(
    order: Order,
    to: str,
    *,
    actor: str,
    channel: str,
    kind: str | None = None,
    data: dict | None = None,
    key: str | None = None,
    fields: Sequence[str] = (),
    taken: dict[int, int] | None = None,
) -> OrderEvent:
    """The one place a status changes: refuses what TRANSITIONS does not allow. `taken` (line
    number → units) is what a partial pickup handed over: only that is paid and earns points."""
    allowed = TRANSITIONS.get(order.status, frozenset())
    if to not in allowed:
        raise IllegalTransition(
            f"Order {order.reference} is {order.status}; it cannot become {to}.",
            details={"status": [order.status], "to": [to], "allowed": sorted(allowed)},
        )
    from_status, order.status = order.status, to
    if to in CLOSED_STATUSES:
        order.closed_at = timezone.now()
        fields = [*fields, "closed_at"]
    order.save(update_fields=["status", "updated_at", *fields])
    capture_amount = _value_of(order, taken) if taken is not None else None
    _settle_payment_after_commit(order, to, actor=actor, channel=channel, amount=capture_amount)
    if to in _CAPTURE_ON:
        _earn_loyalty_points(order, actor=actor, taken=taken)
    return _event(
        order,
        kind or to,
        actor=actor,
        channel=channel,
        from_status=from_status,
        to_status=to,
        data=data,
        key=key,
    )


# Money follows the goods: captured when they leave (collected, shipped), released when the
# order ends without them (cancelled, expired). Provider calls never run inside our transaction:
# the intent commits with the status, a task calls the payments app afterwards.
_CAPTURE_ON = {OrderStatus.COLLECTED, OrderStatus.SHIPPED}
_RELEASE_ON = {OrderStatus.CANCELLED, OrderStatus.EXPIRED}


def _value_of(order: Order, taken: dict[int, int]) -> str:
    prices = dict(order.lines.values_list("line_no", "unit_price"))
    return str(sum((prices[line_no] * units for line_no, units in taken.items()), Decimal(0)))


def _settle_payment_after_commit(
    order: Order, to: str, *, actor: str, channel: str, amount: str | None = None
) -> None:
    from orders.tasks import order_payment_capture_task, order_payment_release_task

    reference = order.reference
    if to in _CAPTURE_ON:
        transaction.on_commit(
            lambda: order_payment_capture_task.delay(reference, actor, channel, amount)
        )
    elif to in _RELEASE_ON:
        transaction.on_commit(lambda: order_payment_release_task.delay(reference, actor))


def _earn_loyalty_points(order: Order, *, actor: str, taken: dict[int, int] | None = None) -> None:
    """The goods were truly bought (collected, shipped): the customer earns the points of the
    lines taken, once per order (the loyalty app keys the earning by the order reference)."""
    from loyalty.services import PurchaseLine, points_earn_for_source

    lines = [
        PurchaseLine(
            line_ref=str(line.line_no),
            sku=line.sku.code,
            quantity=units,
            amount=line.unit_price * units,
            category=line.sku.category,
        )
        for line in order.lines.select_related("sku").filter(status=LineStatus.OPEN)
        if (units := line.quantity if taken is None else taken.get(line.line_no, 0)) > 0
    ]
    if not lines:
        return
    try:
        with transaction.atomic():  # a refusal (e.g. another currency) never blocks the goods
            points_earn_for_source(
                customer=order.customer,
                source_type="order",
                source_ref=order.reference,
                lines=lines,
                currency=order.currency,
                channel=order.channel,
                store=order.pickup_location,
                actor=actor,
            )
    except DomainError as exc:
        _event(
            order,
            "loyalty_not_earned",
            actor=actor,
            channel=order.channel,
            data={"code": exc.code, "reason": exc.message},
        )


def _reverse_loyalty_points(order: Order, record: Return, *, actor: str, channel: str) -> None:
    """Points earned on the returned lines go back, pro rata (the loyalty app keys it by the
    return); like earning, a refusal never blocks the return: the journal says why."""
    from loyalty.services import ReturnedLine, points_reverse_for_return

    lines = [
        ReturnedLine(line_ref=str(line.order_line.line_no), quantity=line.quantity)
        for line in record.lines.select_related("order_line")
    ]
    if not lines:
        return
    try:
        with transaction.atomic():
            points_reverse_for_return(
                source_type="order",
                source_ref=order.reference,
                return_ref=f"order-return:{record.pk}",
                lines=lines,
                channel=channel,
                actor=actor,
            )
    except DomainError as exc:
        _event(
            order,
            "loyalty_not_reversed",
            actor=actor,
            channel=channel,
            data={"return": record.pk, "code": exc.code, "reason": exc.message},
        )


def _notify(order: Order, kind: str, **extra) -> None:
    """Owe the customer a message about `order`: written in this transaction, sent soon after
    it commits (`order_notifications_send`)."""
    _owed(order, kind, **extra).save(force_insert=True)
    transaction.on_commit(_notifications_kick, robust=True)


def _owed(order: Order, kind: str, **extra) -> PendingNotification:
    return PendingNotification(order=order, kind=kind, extra=extra)


# A commit that owes messages schedules the sending task NOTIFY_DELAY_SECONDS later, unless
# this process scheduled one less than that long ago: that task has not started yet, so it
# will see this commit's rows. Under load each process publishes one task per period, not one
# per order; a message waits at most that long (plus the queue). The beat task sends anything
# a lost task left behind.
NOTIFY_DELAY_SECONDS = 1.0
_last_kick = [float("-inf")]  # when this process last scheduled the task (time.monotonic())


def _notifications_kick() -> None:
    from orders.tasks import order_notifications_send_task

    if order_notifications_send_task.app.conf.task_always_eager:
        order_notifications_send_task.delay()  # tasks run in-process: send now
        return
    now = time.monotonic()
    if now - _last_kick[0] < NOTIFY_DELAY_SECONDS:
        return
    order_notifications_send_task.apply_async(countdown=NOTIFY_DELAY_SECONDS)
    _last_kick[0] = now  # only once scheduled: after a failed publish the next commit tries


def order_notifications_send(
    *, batch_size: int = 100, time_budget_seconds: float = 30.0, lease_seconds: int = 300
) -> tuple[int, bool]:
    """Send the order messages that are due, oldest first, deleting each once sent; returns
    (how many were sent, whether some were left for lack of time).

    Rows are claimed in batches (SKIP LOCKED on PostgreSQL, so workers share the queue) by
    moving their `due_at` a lease ahead: a worker that dies mid-batch leaves them for the next
    run after the lease. Messages are deduplicated where they go out (`Notification.dedupe_key`),
    so a message sent twice by such a restart reaches the customer once. A transport failure
    (OSError) or any other error puts the row back with a growing delay; after
    PendingNotification.MAX_ATTEMPTS it stays, with its last error, for staff to see."""
    from notifications.services import order_notification_send

    deadline = time.monotonic() + time_budget_seconds
    sent = 0
    while True:
        batch = _claim_due_notifications(batch_size, lease_seconds)
        if not batch:
            return sent, False
        for index, pending in enumerate(batch):
            if time.monotonic() >= deadline:  # out of time: the rest goes back to the queue
                _release_notifications(batch[index:])
                return sent, True
            try:
                order_notification_send(
                    order_id=pending.order_id, kind=pending.kind, extra=pending.extra
                )
            except SoftTimeLimitExceeded:
                _release_notifications(
                    batch[index:]
                )  # the task is being stopped: not this one's fault
                raise
            except Exception as error:  # noqa: BLE001 - one bad message must not stop the rest
                _retry_notification_later(pending, error)
                continue
            PendingNotification.objects.filter(pk=pending.pk).delete()
            sent += 1


def _release_notifications(claimed: list[PendingNotification]) -> None:
    """Claimed rows this run will not send: due again now, not after their lease."""
    PendingNotification.objects.filter(pk__in=[p.pk for p in claimed]).update(due_at=timezone.now())


def _claim_due_notifications(batch_size: int, lease_seconds: int) -> list[PendingNotification]:
    now = timezone.now()
    with transaction.atomic():
        batch = list(
            PendingNotification.objects.select_for_update(skip_locked=True)
            .filter(due_at__lte=now, attempts__lt=PendingNotification.MAX_ATTEMPTS)
            .order_by("due_at", "pk")[:batch_size]
        )
        PendingNotification.objects.filter(pk__in=[p.pk for p in batch]).update(
            due_at=now + timedelta(seconds=lease_seconds)
        )
    return batch


def _retry_notification_later(pending: PendingNotification, error: Exception) -> None:
    if not isinstance(error, OSError):  # not a transport hiccup: a bug or bad data, say so
        logger.exception("Order notification %s failed", pending.pk)
    attempts = pending.attempts + 1
    PendingNotification.objects.filter(pk=pending.pk).update(
        attempts=attempts,
        last_error=f"{type(error).__name__}: {error}"[:200],
        due_at=timezone.now() + timedelta(seconds=min(30 * 2**attempts, 6 * 3600)),
    )


def _validate_lines(lines: Sequence[OrderLineRequest]) -> tuple[str, list[Decimal]]:
    if not lines:
        raise InvalidInput("An order needs at least one line.", details={"lines": ["empty"]})
    currencies = {line.currency for line in lines}
    if len(currencies) > 1:
        raise CurrencyMismatch(
            "Every line of an order is in the same currency.",
            details={"currency": sorted(currencies)},
        )
    currency = currencies.pop()
    prices = []
    for index, line in enumerate(lines, start=1):
        validate_quantity(line.quantity, field_name=f"lines[{index}].quantity")
        price = parse_amount(line.unit_price, currency, field=f"lines[{index}].unit_price")
        if price < 0:
            raise InvalidInput(
                "Prices are not negative.", details={f"lines[{index}].unit_price": ["negative"]}
            )
        prices.append(price)
    skus = [line.sku_id for line in lines]
    if len(set(skus)) != len(skus):
        raise InvalidInput(
            "A SKU appears on two lines; send one line with the total quantity.",
            details={"lines": ["duplicate sku"]},
        )
    return currency, prices


# ---- placement -------------------------------------------------------------------------------


@_retry_on_deadlock
def order_place(
    *,
    channel: str,
    customer: Customer,
    lines: Sequence[OrderLineRequest],
    fulfilment: str,
    idempotency_key: str,
    actor: str,
    pickup_location_id: int | None = None,
    address: DeliveryAddress | None = None,
    contact_email: str = "",
    contact_phone: str = "",
    language: str | None = None,
    at: datetime | None = None,
) -> Order:
    """Create an order and reserve every line (or nothing: OutOfStock names the short lines).

    Click & collect needs an active store that offers pickup and opens in the coming weeks;
    home delivery needs an address with coordinates. The routing decision is recorded. A new
    order comes back with its lines, allocations, decision and events in `order.loaded` (the API
    renders it without reading it back); `order.replayed` tells a retry with a known key.
    """
    if not idempotency_key or len(idempotency_key) > 255:
        raise InvalidInput(
            "An idempotency key of at most 255 characters is required.",
            details={"idempotency_key": ["required"]},
        )
    currency, prices = _validate_lines(lines)
    request_hash = _placement_fingerprint(
        channel=channel,
        lines=lines,
        prices=prices,
        fulfilment=fulfilment,
        pickup_location_id=pickup_location_id,
        address=address,
    )
    if existing := _placed_with(idempotency_key, request_hash):
        return existing
    at = at or timezone.now()
    pickup_store = None
    if fulfilment == FulfilmentType.PICKUP:
        location = selectors.location_with_calendar(pickup_location_id)
        pickup_store = selectors.pickup_store_check(location, code=str(pickup_location_id or ""))
        selectors.pickup_promise(pickup_store, at=at)  # closed for weeks: refuse now
    elif fulfilment == FulfilmentType.DELIVERY:
        if address is None:
            raise InvalidInput(
                "Home delivery needs an address with coordinates.",
                details={"address": ["required"]},
            )
    else:
        raise InvalidInput(
            "fulfilment is 'pickup' or 'delivery'.", details={"fulfilment": [str(fulfilment)]}
        )
    total = sum(
        (Money(price, currency) * line.quantity for price, line in zip(prices, lines, strict=True)),
        Money.zero(currency),
    ).rounded()

    try:
        with transaction.atomic():
            # The order row is written once routing has reserved its stock, already allocated:
            # a refused order writes nothing, and an accepted one costs no status UPDATE.
            order = Order(
                reference=_new_reference(channel),
                created_by_key=idempotency_key,
                request_hash=request_hash,
                channel=channel,
                customer=customer,
                language=language or getattr(customer, "language", "") or "fr",
                contact_email=contact_email,
                contact_phone=contact_phone,
                currency=currency,
                total_amount=total.amount,
                fulfilment=fulfilment,
                pickup_location=pickup_store,
                ship_name=address.name if address else "",
                ship_address=address.address if address else "",
                ship_postcode=address.postcode if address else "",
                ship_city=address.city if address else "",
                ship_country=address.country if address else "",
                ship_latitude=address.latitude if address else None,
                ship_longitude=address.longitude if address else None,
                pickup_nonce=pickup.new_nonce() if pickup_store else "",
                placed_at=at,
            )
            needs = [
                routing.Need(
                    line=index, sku_id=line.sku_id, quantity=line.quantity, sku_code=line.sku_code
                )
                for index, line in enumerate(lines, start=1)
            ]

            def persist(plan: routing.RoutingPlan) -> _NewOrderRows:
                """The order's own rows, unsaved: `_allocate` writes them with the rest."""
                order.status = OrderStatus.ALLOCATED
                order.ready_by = _promise(order, plan, at=at, store=pickup_store)
                events = [
                    OrderEvent(
                        order=order,
                        kind="placed",
                        to_status=OrderStatus.PLACED,
                        actor=actor[:150],
                        channel=channel,
                        occurred_at=at,
                    ),
                    OrderEvent(
                        order=order,
                        kind="allocated",
                        from_status=OrderStatus.PLACED,
                        to_status=OrderStatus.ALLOCATED,
                        actor=actor[:150],
                        channel=channel,
                        data={"outcome": plan.outcome},
                        occurred_at=timezone.now(),
                    ),
                ]
                order_lines = [
                    OrderLine(
                        order=order,
                        line_no=index,
                        sku_id=line.sku_id,
                        quantity=line.quantity,
                        unit_price=price,
                    )
                    for index, (line, price) in enumerate(zip(lines, prices, strict=True), start=1)
                ]
                return _NewOrderRows(
                    lines=order_lines,
                    events=events,
                    notifications=[_owed(order, "order_confirmed")],
                )

            allocated = _allocate(
                order,
                needs,
                trigger="placement",
                actor=actor,
                at=at,
                pickup_store=pickup_store,
                persist=persist,
            )
            if allocated is None:
                names = ", ".join(f"{line['sku']} ({line['requested']})" for line in order._short)
                raise OutOfStock(
                    f"Not enough stock anywhere for: {names}. Nothing was reserved.",
                    details={"lines": order._short},
                )
            # "order_confirmed" is owed. Robust: the order is committed whatever happens to the
            # broker (a failed publish is logged; the beat sends the message).
            transaction.on_commit(_notifications_kick, robust=True)
            # What the API answers with, from memory: no query after the writes.
            skus = {need.sku_id: need.sku_code for need in needs}
            for order_line in allocated.new_rows.lines:
                order_line.sku = Sku(pk=order_line.sku_id, code=skus[order_line.sku_id])
            order.loaded = {
                "lines": allocated.new_rows.lines,
                "allocations": allocated.allocations,
                "routing_decisions": [allocated.decision],
                "events": allocated.new_rows.events,
            }
    except IntegrityError:
        existing = _placed_with(idempotency_key, request_hash)
        if existing is None:
            raise
        return existing
    order.replayed = False
    return order


def _placement_fingerprint(
    *,
    channel: str,
    lines: Sequence[OrderLineRequest],
    prices: list[Decimal],
    fulfilment: str,
    pickup_location_id: int | None,
    address: DeliveryAddress | None,
) -> str:
    """What a retry must repeat: the channel, the lines (SKU, quantity, price, currency) and
    where they go. Not the customer: a retry may name a record merged since into another."""
    return stock._fingerprint(
        "order.place",
        {
            "channel": channel,
            "lines": [
                [line.sku_id, line.quantity, format((price + 0).normalize(), "f"), line.currency]
                for line, price in zip(lines, prices, strict=True)
            ],
            "fulfilment": fulfilment,
            "pickup": pickup_location_id,
            "address": (
                [
                    address.name,
                    address.address,
                    address.postcode,
                    address.city,
                    address.country,
                    str(address.latitude),
                    str(address.longitude),
                ]
                if address
                else None
            ),
        },
    )


_PLACED_WITH_SQL = f"SELECT id FROM {Order._meta.db_table} WHERE created_by_key = %s"  # noqa: S608


def _placed_with(idempotency_key: str, request_hash: str) -> Order | None:
    """The order this key placed, marked `replayed`; IdempotencyKeyReused when the key placed
    another order (orders placed before the hash was kept have none and are not compared)."""
    # Every placement asks, and almost always hears "no": a plain query, not a model load.
    with connection.cursor() as cursor:
        cursor.execute(_PLACED_WITH_SQL, [idempotency_key])
        row = cursor.fetchone()
    if row is None:
        return None
    existing = Order.objects.get(pk=row[0])
    if existing.request_hash and existing.request_hash != request_hash:
        raise IdempotencyKeyReused(
            f"This key placed order {existing.reference}, with other lines or fulfilment."
        )
    existing.replayed = True
    return existing


def _allocate(
    order: Order,
    needs: list[routing.Need],
    *,
    trigger: str,
    actor: str,
    at: datetime,
    pickup_store: Location | None,
    exclude: frozenset[int] = frozenset(),
    persist: Callable[[routing.RoutingPlan], _NewOrderRows] | None = None,
) -> Allocated | None:
    """Route `needs`, reserve them (all or nothing) and record allocations and the decision.

    `persist(plan)` (a placement) fills in the order and returns its lines and events, unsaved,
    once the stock is reserved; they are written here with the allocations and the decision.
    Without it the order exists already (a re-routing).

    A reservation can lose a race between the read and the write: the router then runs again on
    fresh stock (up to ROUTING_ATTEMPTS), so the loser is routed elsewhere. Returns None (with
    `order._short` set) when no location can serve; nothing was reserved then.
    """
    rules, protect = selectors.routing_rules_for(order.channel)
    sku_ids = {n.sku_id for n in needs}
    attempts = []
    plan = None
    for attempt in range(1, ROUTING_ATTEMPTS + 1):
        candidates = selectors.routing_candidates(sku_ids=sku_ids, channel=order.channel, at=at)
        for location_id, _ in order.capacity_slots:
            if location_id in candidates:  # it prepares this order already: no new slot needed
                candidates[location_id].capacity_left = None
        started = time.perf_counter()
        if order.fulfilment == FulfilmentType.PICKUP:
            pickup_candidate = candidates.get(order.pickup_location_id)
            if pickup_candidate is None:
                raise StoreInactive(details={"store": [str(order.pickup_location_id)]})
            if pickup_candidate.capacity_left == 0 and trigger == "placement":
                raise StoreAtCapacity(
                    f"{pickup_candidate.code} has reached its orders for that day.",
                    details={"store": [pickup_candidate.code]},
                )
            plan = routing.route_pickup(
                needs,
                pickup_candidate,
                list(candidates.values()),
                rules=rules,
                protect_units=protect,
                exclude=exclude,
                local_allowed=order.pickup_location_id not in exclude,
            )
        else:
            plan = routing.route_delivery(
                needs,
                list(candidates.values()),
                rules=rules,
                origin=(float(order.ship_latitude), float(order.ship_longitude)),
                protect_units=protect,
                exclude=exclude,
            )
        elapsed_ms = (time.perf_counter() - started) * 1000
        if not plan.ok:
            order._short = plan.short
            if trigger != "placement":
                _decision(order, plan, trigger, elapsed_ms, attempts)
            return None
        plan.trigger = trigger
        # The savepoint undoes the reservation when a capped location filled up meanwhile; with
        # no cap to take, a refused reservation has written nothing (the ledger's own savepoint).
        capped = _capped_preparers(order, plan, candidates)
        try:
            with transaction.atomic() if capped else nullcontext():
                reservations = stock.reservations_create(
                    requests=[
                        ReservationRequest(
                            sku_id=need.sku_id, location_id=a.location.id, quantity=units
                        )
                        for a in plan.assignments
                        for need, units in a.lines
                    ],
                    idempotency_key=f"order:{order.reference}:{trigger}:{secrets.token_hex(6)}",
                    channel=order.channel,
                    reference=order.reference,
                    ttl_seconds=0,
                    actor=actor,
                )
                _consume_capacity(order, capped, candidates)
        except InsufficientStock as exc:
            attempts.append({"attempt": attempt, "lost_race": exc.details.get("lines", [])})
            continue
        except LocationInactive:  # the cached location list was stale: read it again
            selectors.reference_data_changed()
            attempts.append({"attempt": attempt, "lost_race": "location deactivated"})
            continue
        decision = _decision(order, plan, trigger, elapsed_ms, attempts, save=persist is None)
        if persist is None:  # a re-routing: the order and its lines exist
            allocations = _record_allocations(
                order, plan, reservations, actor=actor, at=at, pickup_store=pickup_store
            )
            return Allocated(plan=plan, allocations=allocations, decision=decision)
        # A placement: the order and every row it owns, its transfers too, are written together.
        new_rows = persist(plan)
        allocations = _new_allocations(order, plan, reservations, new_rows.lines)
        _new_transfers(order, plan, allocations, actor=actor, at=at)
        _insert_placement(order, new_rows, allocations, decision)
        return Allocated(plan=plan, allocations=allocations, decision=decision, new_rows=new_rows)
    order._short = [
        {"line": n.line, "sku": n.sku_code, "requested": n.quantity, "available": 0} for n in needs
    ]
    return None


@dataclass
class _NewOrderRows:
    lines: list[OrderLine]
    events: list[OrderEvent]
    notifications: list[PendingNotification]


@dataclass
class Allocated:
    plan: routing.RoutingPlan
    allocations: list[Allocation]
    decision: RoutingDecision
    new_rows: _NewOrderRows | None = None  # a placement's order lines and events


class _CapacityRace(InsufficientStock):
    pass


def _is_reroute(plan: routing.RoutingPlan) -> bool:
    return plan.trigger != "placement"


def _consume_capacity(
    order: Order,
    capped: list[int],
    candidates: dict[int, routing.Candidate],
) -> None:
    """One more order on its preparation day at each capped location that prepares it
    (`capped`, from `_capped_preparers`); a location that filled up meanwhile makes the router
    run again."""
    # A re-routing to a location that already prepares this order takes no second slot, even if
    # the day it would count now is another (a line rejected in the evening).
    counted = {location_id for location_id, _ in order.capacity_slots}
    used = []
    for location_id in capped:  # primary-key order, like every lock in this project
        if location_id in counted:
            continue
        candidate = candidates[location_id]
        day = candidate.capacity_day  # set by routing_candidates for every capped location
        LocationDayLoad.objects.get_or_create(location_id=location_id, day=day)
        updated = LocationDayLoad.objects.filter(
            location_id=location_id, day=day, orders__lt=candidate.capacity_cap
        ).update(orders=F("orders") + 1)
        if not updated:
            raise _CapacityRace(
                "The location reached its daily capacity meanwhile.",
                details={"lines": [], "capacity": [location_id]},
            )
        used.append([location_id, day.isoformat()])
    if used:  # only once every slot is taken: a lost race leaves the order as it was
        order.capacity_slots = [*order.capacity_slots, *used]
        if order.pk:  # a re-routing: a placement saves the order right after
            order.save(update_fields=["capacity_slots", "updated_at"])


def _capped_preparers(
    order: Order, plan: routing.RoutingPlan, candidates: dict[int, routing.Candidate]
) -> list[int]:
    """The capped locations that would count this order on their preparation day, in key
    order: the pickup store (it prepares the order, even lines that come by transfer; not again
    on a re-routing), or each shipping location."""
    if order.fulfilment == FulfilmentType.PICKUP:
        if _is_reroute(plan):
            return []  # the pickup store already counted this order when it was placed
        ids = {order.pickup_location_id}
    else:
        ids = {a.location.id for a in plan.assignments}
    return sorted(i for i in ids if candidates[i].capacity_cap is not None)


def _return_capacity(order: Order) -> int:
    """Give back the daily slots an order counted in (cancelled before its preparation
    started: nobody did the work). Returns how many."""
    for location_id, day in sorted(order.capacity_slots):  # key order, as they were taken
        LocationDayLoad.objects.filter(location_id=location_id, day=day, orders__gt=0).update(
            orders=F("orders") - 1
        )
    returned = len(order.capacity_slots)
    if returned:
        order.capacity_slots = []
        order.save(update_fields=["capacity_slots", "updated_at"])
    return returned


def _new_allocations(
    order: Order,
    plan: routing.RoutingPlan,
    reservations: list[Reservation],
    order_lines: Sequence[OrderLine],
) -> list[Allocation]:
    """One allocation per assignment of the plan, with its lines (`loaded_lines`), unsaved.
    `reservations` come in the plan's order (assignment by assignment, line by line)."""
    lines = {line.line_no: line for line in order_lines}
    reservation_iter = iter(reservations)
    allocations = []
    for assignment in plan.assignments:
        allocation = Allocation(
            order=order,
            location=Location(pk=assignment.location.id, code=assignment.location.code),
            kind=assignment.kind,
        )
        allocation.loaded_lines = [
            AllocationLine(
                allocation=allocation,
                order_line=lines[need.line],
                quantity=units,
                reservation=next(reservation_iter),
            )
            for need, units in assignment.lines
        ]
        allocations.append(allocation)
    return allocations


def _save_allocations(allocations: list[Allocation]) -> None:
    for allocation in allocations:
        allocation.save(force_insert=True)
        AllocationLine.objects.bulk_create(allocation.loaded_lines)


def _transfer_assignments(plan: routing.RoutingPlan, allocations: list[Allocation]):
    """(assignment, allocation, its transfer's lines) for each `transfer` allocation."""
    for assignment, allocation in zip(plan.assignments, allocations, strict=True):
        if assignment.kind == AllocationKind.TRANSFER:
            yield assignment, allocation, [(need.sku_id, units) for need, units in assignment.lines]


def _new_transfers(
    order: Order,
    plan: routing.RoutingPlan,
    allocations: list[Allocation],
    *,
    actor: str,
    at: datetime,
) -> None:
    """A placement's transfers to the pickup store, one per `transfer` allocation, built (not
    saved) into `allocation.transfer`: `_insert_placement` writes them with the order."""
    for assignment, allocation, lines in _transfer_assignments(plan, allocations):
        allocation.transfer = stock.transfer_new(
            # The source is a routing candidate (an active location, whose reservation has just
            # checked it again); the pickup store was checked when the placement began.
            source=allocation.location,
            destination=order.pickup_location,
            lines=lines,
            # One transfer per source in a placement (re-routings key theirs by allocation).
            idempotency_key=f"order:{order.reference}:placement-transfer:{allocation.location_id}",
            reference=order.reference,
            actor=actor,
        )
        allocation.expected_at = at + timedelta(days=assignment.location.transfer_days)


def _request_transfers(
    order: Order,
    plan: routing.RoutingPlan,
    allocations: list[Allocation],
    *,
    actor: str,
    at: datetime,
) -> None:
    """A re-routing's transfers: what brings each new `transfer` allocation's units to the
    pickup store."""
    for assignment, allocation, lines in _transfer_assignments(plan, allocations):
        allocation.transfer = stock.transfer_request(
            source_id=assignment.location.id,
            destination_id=order.pickup_location_id,
            lines=lines,
            idempotency_key=f"order:{order.reference}:transfer:{allocation.pk}",
            reference=order.reference,
            actor=actor,
        )
        allocation.expected_at = at + timedelta(days=assignment.location.transfer_days)
        allocation.save(update_fields=["transfer", "expected_at"])


def _record_allocations(
    order: Order,
    plan: routing.RoutingPlan,
    reservations: list[Reservation],
    *,
    actor: str,
    at: datetime,
    pickup_store: Location | None,
) -> list[Allocation]:
    """A re-routing's allocations, for an order that exists."""
    allocations = _new_allocations(order, plan, reservations, order.lines.all())
    _save_allocations(allocations)
    _request_transfers(order, plan, allocations, actor=actor, at=at)
    # A re-routing may push the promise later (a line now comes by transfer, or ships from a
    # slower location).
    promise = _promise(order, plan, at=at, store=pickup_store)
    if promise is not None:
        order.ready_by = max(order.ready_by, promise) if order.ready_by else promise
    order.save(update_fields=["ready_by", "delivery_expected_on", "updated_at"])
    return allocations


def _insert_placement(
    order: Order,
    new_rows: _NewOrderRows,
    allocations: list[Allocation],
    decision: RoutingDecision,
) -> None:
    """Write a new order with its events, lines, allocations (and their lines) and routing
    decision. On PostgreSQL that is one statement (the ORM took seven round trips, and compiling
    them cost more CPU than running them: ~1 ms per order); elsewhere the ORM writes them."""
    locations = [allocation.location_id for allocation in allocations]
    kinds = [event.kind for event in new_rows.events]
    transfers = [a.transfer for a in allocations if a.transfer is not None]
    if (
        not _placement_in_one_statement()
        or len(set(locations)) != len(locations)  # the statement matches rows by location
        or len(set(kinds)) != len(kinds)  # ... and events by kind
    ):
        order.save(force_insert=True)
        OrderEvent.objects.bulk_create(new_rows.events)
        OrderLine.objects.bulk_create(new_rows.lines)
        for transfer in transfers:
            transfer.save(force_insert=True)
            TransferLine.objects.bulk_create(transfer.new_lines)
        _save_allocations(allocations)
        decision.save(force_insert=True)
        PendingNotification.objects.bulk_create(new_rows.notifications)
        return
    allocation_lines = [line for allocation in allocations for line in allocation.loaded_lines]
    transfer_lines = [line for transfer in transfers for line in transfer.new_lines]
    params = []
    for transfer in transfers:
        params += sql.insert_values(transfer, _TRANSFER_COLUMNS)
    for moved in transfer_lines:
        params += [moved.transfer.source_id, *sql.insert_values(moved, _TRANSFER_LINE_COLUMNS)]
    params += sql.insert_values(order, _ORDER_COLUMNS)
    for event in new_rows.events:
        params += sql.insert_values(event, _EVENT_COLUMNS)
    for line in new_rows.lines:
        params += sql.insert_values(line, _LINE_COLUMNS)
    for allocation in allocations:
        params += sql.insert_values(allocation, _ALLOCATION_COLUMNS)
    for position, held in enumerate(allocation_lines):
        params += [position, held.allocation.location_id, held.order_line.line_no]
        params += sql.insert_values(held, _ALLOCATION_LINE_COLUMNS)
    params += sql.insert_values(decision, _DECISION_COLUMNS)
    for owed in new_rows.notifications:
        params += sql.insert_values(owed, _NOTIFICATION_COLUMNS)
    with connection.cursor() as cursor:
        sql.execute_prepared(
            cursor,
            _placement_statement(
                len(new_rows.events),
                len(new_rows.lines),
                len(allocations),
                len(allocation_lines),
                len(new_rows.notifications),
                len(transfers),
                len(transfer_lines),
            ),
            params,
        )
        (
            order_id,
            decision_id,
            event_ids,
            line_ids,
            allocation_ids,
            held_ids,
            owed_ids,
            transfer_ids,
            transfer_line_ids,
        ) = cursor.fetchone()
    # Foreign keys are set by assigning the (now saved) objects again: writing `order_id`
    # would drop the cached object, and rendering the order would read each one back.
    sql.mark_saved(order, order_id)
    sql.mark_saved(decision, decision_id)
    decision.order = order
    by_kind = {kind: pk for pk, kind in _json(event_ids)}
    for event in new_rows.events:
        sql.mark_saved(event, by_kind[event.kind])
        event.order = order
    by_line_no = {line_no: pk for pk, line_no in _json(line_ids)}
    for line in new_rows.lines:
        sql.mark_saved(line, by_line_no[line.line_no])
        line.order = order
    by_source = {source: pk for pk, source in _json(transfer_ids) or []}
    for transfer in transfers:
        sql.mark_saved(transfer, by_source[transfer.source_id])
    by_transfer_sku = {(a, b): pk for pk, a, b in _json(transfer_line_ids) or []}
    for moved in transfer_lines:
        moved.transfer = moved.transfer
        sql.mark_saved(moved, by_transfer_sku[(moved.transfer_id, moved.sku_id)])
    by_location = {location: pk for pk, location in _json(allocation_ids)}
    for allocation in allocations:
        sql.mark_saved(allocation, by_location[allocation.location_id])
        allocation.order = order
        allocation.transfer = allocation.transfer  # its id, now that it has one
    by_pair = {(a, b): pk for pk, a, b in _json(held_ids)}
    for held in allocation_lines:
        held.allocation = held.allocation
        held.order_line = held.order_line
        sql.mark_saved(held, by_pair[(held.allocation_id, held.order_line_id)])
    for owed, pk in zip(new_rows.notifications, sorted(_json(owed_ids) or []), strict=True):
        sql.mark_saved(owed, pk)  # (inserted in this order, so their ids ascend with it)
        owed.order = order


def _placement_in_one_statement() -> bool:
    return connection.vendor == "postgresql"  # it needs data-modifying WITH clauses


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


_ORDER_COLUMNS = sql.insert_columns(Order)
_EVENT_COLUMNS = sql.insert_columns(OrderEvent, skip=("order_id",))
_LINE_COLUMNS = sql.insert_columns(OrderLine, skip=("order_id",))
_ALLOCATION_COLUMNS = sql.insert_columns(Allocation, skip=("order_id",))
_ALLOCATION_LINE_COLUMNS = sql.insert_columns(
    AllocationLine, skip=("allocation_id", "order_line_id")
)
_DECISION_COLUMNS = sql.insert_columns(RoutingDecision, skip=("order_id",))
_NOTIFICATION_COLUMNS = sql.insert_columns(PendingNotification, skip=("order_id",))
_TRANSFER_COLUMNS = sql.insert_columns(Transfer)
_TRANSFER_LINE_COLUMNS = sql.insert_columns(TransferLine, skip=("transfer_id",))


# The placement shapes a database session keeps prepared (each holds ~0.5 MB of plan on the
# server per connection): the commonest come first; rarer shapes are sent unprepared.
PLACEMENT_SHAPES = 16


@functools.lru_cache(maxsize=256)
def _placement_statement(*shape: int) -> sql.Prepared:
    """One statement per shape (how many rows of each kind), prepared once per database
    session: its plan, and psycopg's parsing of its text, cost more than running it."""
    return sql.Prepared("omnistock_place", _placement_sql(*shape), per_session=PLACEMENT_SHAPES)


def _placement_sql(
    events: int,
    lines: int,
    allocations: int,
    allocation_lines: int,
    notifications: int,
    transfers: int,
    transfer_lines: int,
) -> str:
    """Each child row takes the new order's id; allocation lines find their allocation by
    location and their order line by number; a transfer's lines find it by its source, and so
    does the `transfer` allocation it serves; the ids come back as JSON pairs, matched the same
    way (not by position)."""

    def names(fields):
        return ", ".join(field.column for field in fields)

    def rows(fields, count, extra=""):
        one = f"({extra}{sql.typed_placeholders(fields)})"
        return ", ".join([one] * count)

    held_values = [f"c{i}" for i in range(len(_ALLOCATION_LINE_COLUMNS))]
    held_rows = rows(
        _ALLOCATION_LINE_COLUMNS, allocation_lines, "%s::integer, %s::bigint, %s::integer, "
    )
    decision_table = RoutingDecision._meta.db_table
    owed = (
        f"INSERT INTO {PendingNotification._meta.db_table} "  # noqa: S608
        f"(order_id, {names(_NOTIFICATION_COLUMNS)}) "
        f"SELECT o.id, v.* FROM o, (VALUES {rows(_NOTIFICATION_COLUMNS, notifications)}) AS v "
        "RETURNING id"
        if notifications
        else "SELECT NULL::bigint AS id WHERE false"
    )
    moved = [f"v.{field.column}" for field in _TRANSFER_LINE_COLUMNS]
    transfer_sql = (
        (
            f"INSERT INTO {Transfer._meta.db_table} ({names(_TRANSFER_COLUMNS)}) "  # noqa: S608
            f"VALUES {rows(_TRANSFER_COLUMNS, transfers)} RETURNING id, source_id"
        ),
        (
            f"INSERT INTO {TransferLine._meta.db_table} "  # noqa: S608
            f"(transfer_id, {names(_TRANSFER_LINE_COLUMNS)}) "
            f"SELECT tr.id, {', '.join(moved)} FROM (VALUES "
            f"{rows(_TRANSFER_LINE_COLUMNS, transfer_lines, '%s::bigint, ')}) "
            f"AS v(source_id, {names(_TRANSFER_LINE_COLUMNS)}) "
            "JOIN tr ON tr.source_id = v.source_id RETURNING id, transfer_id, sku_id"
        ),
    )
    if not transfers:
        transfer_sql = (
            "SELECT NULL::bigint AS id, NULL::bigint AS source_id WHERE false",
            "SELECT NULL::bigint AS id, NULL::bigint AS transfer_id, NULL::bigint AS sku_id "
            "WHERE false",
        )
    # A `transfer` allocation takes the id of the transfer from its location.
    allocation_select = ", ".join(
        "COALESCE(tr.id, v.transfer_id)" if field.column == "transfer_id" else f"v.{field.column}"
        for field in _ALLOCATION_COLUMNS
    )
    # Table and column names come from the models; every value is a parameter.
    return (
        f"WITH tr AS ({transfer_sql[0]}), trl AS ({transfer_sql[1]}), "  # noqa: S608
        f"o AS (INSERT INTO {Order._meta.db_table} ({names(_ORDER_COLUMNS)}) "
        f"VALUES ({sql.typed_placeholders(_ORDER_COLUMNS)}) RETURNING id), "
        f"ev AS (INSERT INTO {OrderEvent._meta.db_table} (order_id, {names(_EVENT_COLUMNS)}) "
        f"SELECT o.id, v.* FROM o, (VALUES {rows(_EVENT_COLUMNS, events)}) AS v "
        "RETURNING id, kind), "
        f"ln AS (INSERT INTO {OrderLine._meta.db_table} (order_id, {names(_LINE_COLUMNS)}) "
        f"SELECT o.id, v.* FROM o, (VALUES {rows(_LINE_COLUMNS, lines)}) AS v "
        "RETURNING id, line_no), "
        f"al AS (INSERT INTO {Allocation._meta.db_table} (order_id, {names(_ALLOCATION_COLUMNS)}) "
        f"SELECT o.id, {allocation_select} FROM o CROSS JOIN "
        f"(VALUES {rows(_ALLOCATION_COLUMNS, allocations)}) AS v({names(_ALLOCATION_COLUMNS)}) "
        f"LEFT JOIN tr ON tr.source_id = v.location_id "
        f"AND v.kind = '{AllocationKind.TRANSFER.value}' "
        "RETURNING id, location_id), "
        f"held AS (INSERT INTO {AllocationLine._meta.db_table} "
        f"(allocation_id, order_line_id, {names(_ALLOCATION_LINE_COLUMNS)}) "
        f"SELECT al.id, ln.id, {', '.join(f'v.{c}' for c in held_values)} "
        f"FROM (VALUES {held_rows}) AS v(n, location_id, line_no, {', '.join(held_values)}) "
        "JOIN al ON al.location_id = v.location_id JOIN ln ON ln.line_no = v.line_no "
        "ORDER BY v.n "  # ids in the order the ORM would give them, whatever the join's plan
        "RETURNING id, allocation_id, order_line_id), "
        f"dec AS (INSERT INTO {decision_table} (order_id, {names(_DECISION_COLUMNS)}) "
        f"SELECT o.id, {sql.typed_placeholders(_DECISION_COLUMNS)} FROM o RETURNING id), "
        f"nt AS ({owed}) "
        "SELECT (SELECT id FROM o), (SELECT id FROM dec), "
        "(SELECT json_agg(json_build_array(id, kind)) FROM ev), "
        "(SELECT json_agg(json_build_array(id, line_no)) FROM ln), "
        "(SELECT json_agg(json_build_array(id, location_id)) FROM al), "
        "(SELECT json_agg(json_build_array(id, allocation_id, order_line_id)) FROM held), "
        "(SELECT json_agg(id) FROM nt), "
        "(SELECT json_agg(json_build_array(id, source_id)) FROM tr), "
        "(SELECT json_agg(json_build_array(id, transfer_id, sku_id)) FROM trl)"
    )


def _promise(
    order: Order, plan: routing.RoutingPlan, *, at: datetime, store: Location | None
) -> datetime | None:
    """When the order is ready. Click & collect: the store's lead time in its opening hours,
    after the slowest transfer has arrived. Home delivery: when the slowest shipping location
    has prepared its parcel (its lead time in its opening hours); `order.delivery_expected_on`
    is then set to the latest arrival, that day plus the location's delivery days."""
    if order.fulfilment != FulfilmentType.PICKUP:
        return _delivery_promise(order, plan, at=at)
    store = store or selectors.location_with_calendar(order.pickup_location_id)
    arrivals = [
        at + timedelta(days=a.location.transfer_days)
        for a in plan.assignments
        if a.kind == AllocationKind.TRANSFER
    ]
    return selectors.pickup_promise(store, at=at, not_before=max(arrivals, default=None))


def _delivery_promise(order: Order, plan: routing.RoutingPlan, *, at: datetime) -> datetime | None:
    shipped_by, arrive_on = [], []
    for assignment in plan.assignments:
        location = selectors.location_with_calendar(assignment.location.id)
        # A location with no opening in the coming weeks was not a candidate; be safe anyway.
        ready = location_ready_by(location, at=at) or at
        shipped_by.append(ready)
        arrive_on.append(
            add_delivery_days(ready.astimezone(location.tz).date(), location.delivery_days)
        )
    if not shipped_by:
        return None
    latest = max(arrive_on)
    if order.delivery_expected_on is None or latest > order.delivery_expected_on:
        order.delivery_expected_on = latest
    return max(shipped_by)


def add_delivery_days(day: date, days: int) -> date:
    """`days` delivery days after `day`, counting Monday to Saturday (carriers rest on Sunday)."""
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() != 6:
            days -= 1
    return day


def _decision(
    order: Order,
    plan: routing.RoutingPlan,
    trigger: str,
    elapsed_ms: float,
    attempts: list,
    *,
    save: bool = True,
) -> RoutingDecision:
    decision = RoutingDecision(
        order=order,
        trigger=trigger,
        rules=plan.rules,
        candidates=plan.candidates + ([{"lost_races": attempts}] if attempts else []),
        chosen=[
            {
                "location": a.location.code,
                "kind": a.kind,
                "lines": [
                    {"line": need.line, "sku": need.sku_code, "quantity": units}
                    for need, units in a.lines
                ],
            }
            for a in plan.assignments
        ],
        outcome=plan.outcome,
        note=plan.note[:255],
        duration_ms=Decimal(f"{elapsed_ms:.3f}"),
    )
    if save:
        decision.save()
    return decision


# ---- the fulfilment life cycle ---------------------------------------------------------------


def _open_lines(order: Order, *, location_id: int | None = None) -> list[AllocationLine]:
    queryset = (
        AllocationLine.objects.filter(allocation__order=order, is_active=True)
        .exclude(allocation__status__in=[AllocationStatus.FULFILLED, AllocationStatus.RELEASED])
        .select_related("allocation", "order_line__sku", "reservation")
    )
    if location_id is not None:
        queryset = queryset.filter(allocation__location_id=location_id)
    # Stock positions are then settled in primary-key order, like every multi-row lock.
    return list(queryset.order_by("reservation__position_id", "pk"))


def order_picking_start(*, order_id: int, actor: str, channel: str, idempotency_key: str) -> Order:
    """Store or warehouse staff start preparing the order."""
    if (replay := _replayed(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = _lock(order_id)
        _move(order, OrderStatus.PICKING, actor=actor, channel=channel, key=idempotency_key)
    return order


def order_mark_ready(*, order_id: int, actor: str, channel: str, idempotency_key: str) -> Order:
    """Click & collect: the parcel waits at the counter. Sets the pickup deadline (the store's
    hold period) and sends the customer the pickup code."""
    if (replay := _replayed(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = _lock(order_id)
        if order.fulfilment != FulfilmentType.PICKUP:
            raise IllegalTransition(
                "Only a click & collect order becomes ready for pickup.",
                details={"fulfilment": [order.fulfilment]},
            )
        waiting = [
            line.allocation.location.code
            for line in _open_lines(order)
            if line.allocation.kind == AllocationKind.TRANSFER
            and line.allocation.status != AllocationStatus.RECEIVED
        ]
        if waiting and order.status == OrderStatus.PICKING:
            raise WaitingForTransfer(
                f"Lines from {', '.join(sorted(set(waiting)))} have not arrived yet.",
                details={"from": sorted(set(waiting))},
            )
        now = timezone.now()
        store = order.pickup_location
        order.ready_at = now
        order.pickup_deadline = now + timedelta(days=store.pickup_hold_days)
        _move(
            order,
            OrderStatus.READY_FOR_PICKUP,
            actor=actor,
            channel=channel,
            key=idempotency_key,
            data={"pickup_deadline": order.pickup_deadline.isoformat()},
            fields=["ready_at", "pickup_deadline"],
        )
        _notify(order, "order_ready")
    return order


def _commit_all(order: Order, *, actor: str, location_id: int | None = None) -> list[int]:
    """Units leave: every open reservation of the order (at one location) is committed."""
    allocations = set()
    for line in _open_lines(order, location_id=location_id):
        if line.reservation_id is None:
            continue
        stock.reservation_commit(
            reservation_id=line.reservation_id,
            idempotency_key=f"order:{order.reference}:commit:{line.pk}",
            release_rest=True,
            actor=actor,
        )
        allocations.add(line.allocation_id)
    Allocation.objects.filter(pk__in=allocations).update(status=AllocationStatus.FULFILLED)
    return sorted(allocations)


def _release_all(order: Order, *, actor: str, reason: str) -> int:
    """Give every held unit of the order back to sale; cancel transfers that did not ship."""
    released = 0
    for line in _open_lines(order):
        if line.reservation_id is None:
            continue
        reservation = Reservation.objects.filter(pk=line.reservation_id).first()
        if reservation and reservation.status == ReservationStatus.ACTIVE:
            stock.reservation_release(
                reservation_id=line.reservation_id,
                idempotency_key=f"order:{order.reference}:release:{line.pk}",
                actor=actor,
                reason="",
            )
            released += 1
        line.is_active = False
        line.save(update_fields=["is_active"])
    for allocation in order.allocations.exclude(status=AllocationStatus.FULFILLED):
        if allocation.transfer_id and allocation.status == AllocationStatus.RESERVED:
            stock.transfer_cancel(transfer_id=allocation.transfer_id, actor=actor)
        allocation.status = AllocationStatus.RELEASED
        allocation.save(update_fields=["status"])
    return released


@_retry_on_deadlock
def order_collect(
    *,
    order_id: int,
    code: str,
    actor: str,
    channel: str,
    idempotency_key: str,
    taken: dict[int, int] | None = None,
) -> Order:
    """Hand the order over against its pickup code (or QR payload): the reserved units leave.

    Partial pickup: `taken` (line number → units) is what the shopper takes; the rest of each
    line goes back on sale, and only what is taken is paid and earns points."""
    if (replay := _replayed(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = _lock(order_id)
        if order.status != OrderStatus.READY_FOR_PICKUP:
            _move(order, OrderStatus.COLLECTED, actor=actor, channel=channel)  # raises
        pickup.attempts_check(order.pk)
        if not pickup.code_matches(
            reference=order.reference, nonce=order.pickup_nonce, presented=code
        ):
            pickup.attempt_failed(order.pk)
            raise WrongPickupCode(details={"code": ["does not match"]})
        pickup.attempts_clear(order.pk)
        data = None
        if taken is None:
            _commit_all(order, actor=actor)
        else:
            data = _commit_taken(order, taken, actor=actor)
        _move(
            order,
            OrderStatus.COLLECTED,
            actor=actor,
            channel=channel,
            key=idempotency_key,
            data=data,
            taken=taken,
        )
    return order


def _lower_total(order: Order, amount: Decimal) -> None:
    """The shopper will not pay `amount` of the order (refused at pickup, or units that will
    not come): the total drops and the payments app takes the new total."""
    from payments.orders_port import payable_order
    from payments.services.tenders import order_payment_sync

    order.total_amount -= amount
    order.save(update_fields=["total_amount", "updated_at"])
    order_payment_sync(order=payable_order(reference=order.reference))


def _commit_taken(order: Order, taken: dict[int, int], *, actor: str) -> dict:
    """Partial pickup: each line's reservations commit what is taken and release the rest."""
    lines = {line.line_no: line for line in order.lines.filter(status=LineStatus.OPEN)}
    for line_no, units in taken.items():
        if line_no not in lines:
            raise InvalidInput(
                f"Order {order.reference} has no open line {line_no}.", details={"lines": [line_no]}
            )
        if (
            isinstance(units, bool)
            or not isinstance(units, int)
            or units < 0
            or units > lines[line_no].quantity
        ):
            raise InvalidInput(
                f"Line {line_no}: 0 to {lines[line_no].quantity} units.",
                details={"lines": [line_no]},
            )
    if not any(taken.values()):
        raise InvalidInput("Nothing taken: cancel the order instead.", details={"lines": ["none"]})
    left = {line_no: taken.get(line_no, 0) for line_no in lines}
    allocations = set()
    for allocation_line in _open_lines(order):
        if allocation_line.reservation_id is None:
            continue
        line_no = allocation_line.order_line.line_no
        take = min(left[line_no], allocation_line.quantity)
        left[line_no] -= take
        key = f"order:{order.reference}:commit:{allocation_line.pk}"
        if take:
            stock.reservation_commit(
                reservation_id=allocation_line.reservation_id,
                quantity=take,
                release_rest=True,
                idempotency_key=key,
                actor=actor,
            )
        else:
            stock.reservation_release(
                reservation_id=allocation_line.reservation_id,
                idempotency_key=key,
                actor=actor,
                reason="refused at pickup",
            )
        allocations.add(allocation_line.allocation_id)
    Allocation.objects.filter(pk__in=allocations).update(status=AllocationStatus.FULFILLED)
    refused = {line_no: lines[line_no].quantity - taken.get(line_no, 0) for line_no in lines}
    # The shopper pays for what they take: the order's total drops by what was refused, and the
    # payments app takes the new total (so nothing refused stays "due").
    refused_value = sum((lines[n].unit_price * units for n, units in refused.items()), Decimal(0))
    if refused_value:
        _lower_total(order, refused_value)
    OrderLine.objects.filter(
        order=order, line_no__in=[n for n in lines if not taken.get(n)]
    ).update(status=LineStatus.CANCELLED)
    return {
        "taken": {str(n): u for n, u in taken.items() if u},
        "refused": {str(n): u for n, u in refused.items() if u},
    }


def order_handover(
    *,
    order_id: int,
    code: str,
    actor: str,
    channel: str,
    idempotency_key: str,
    paid_at_till: Money | None = None,
    till_reference: str = "",
    taken: dict[int, int] | None = None,
) -> Order:
    """Hand-over at the store (the till or the admin pickup board): when the order was to be
    paid at pickup, the till's payment is recorded with the collection — in one transaction,
    paid and collected or neither (a wrong code records no payment)."""
    with transaction.atomic():
        if paid_at_till is not None:
            from payments.orders_port import payable_order
            from payments.services.tenders import tender_add_till

            reference = Order.objects.values_list("reference", flat=True).get(pk=order_id)
            tender_add_till(
                order=payable_order(reference=reference),
                amount=paid_at_till.amount,
                currency=paid_at_till.currency,
                idempotency_key=f"{idempotency_key}:till",
                channel=channel,
                actor=actor,
                till_reference=till_reference,
            )
        return order_collect(
            order_id=order_id,
            code=code,
            actor=actor,
            channel=channel,
            idempotency_key=idempotency_key,
            taken=taken,
        )


def order_ship(
    *,
    order_id: int,
    actor: str,
    channel: str,
    idempotency_key: str,
    location_id: int | None = None,
    tracking: str = "",
) -> Order:
    """Home delivery: the parcel(s) leave. With `location_id`, only that location's shipment; the
    order becomes shipped when every shipment has left."""
    if (replay := _replayed(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = _lock(order_id)
        if order.fulfilment != FulfilmentType.DELIVERY:
            raise IllegalTransition(
                "A click & collect order is collected, not shipped.",
                details={"fulfilment": [order.fulfilment]},
            )
        if order.status != OrderStatus.PICKING:
            _move(order, OrderStatus.SHIPPED, actor=actor, channel=channel)  # raises
        shipped = _commit_all(order, actor=actor, location_id=location_id)
        if not shipped:
            raise IllegalTransition(
                "Nothing left to ship from there.", details={"location": [str(location_id)]}
            )
        if _open_lines(order):
            _event(
                order,
                "shipment_left",
                actor=actor,
                channel=channel,
                data={"allocations": shipped, "tracking": tracking},
                key=idempotency_key,
            )
        else:
            _move(
                order,
                OrderStatus.SHIPPED,
                actor=actor,
                channel=channel,
                key=idempotency_key,
                data={"allocations": shipped, "tracking": tracking},
            )
    return order


def order_deliver(*, order_id: int, actor: str, channel: str, idempotency_key: str) -> Order:
    if (replay := _replayed(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = _lock(order_id)
        _move(order, OrderStatus.DELIVERED, actor=actor, channel=channel, key=idempotency_key)
    return order


@_retry_on_deadlock
def order_cancel(
    *, order_id: int, actor: str, channel: str, idempotency_key: str, reason: str = ""
) -> Order:
    """Cancel an open order: its reservations are released, unshipped transfers cancelled."""
    if (replay := _replayed(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = _lock(order_id)
        if OrderStatus.CANCELLED not in TRANSITIONS.get(order.status, ()):
            _move(order, OrderStatus.CANCELLED, actor=actor, channel=channel)  # raises
        released = _release_all(order, actor=actor, reason=reason)
        # Once picking has started the store did (some of) the work: the slot stays used.
        returned = _return_capacity(order) if order.status == OrderStatus.ALLOCATED else 0
        _move(
            order,
            OrderStatus.CANCELLED,
            actor=actor,
            channel=channel,
            key=idempotency_key,
            data={
                "reason": reason[:200],
                "reservations_released": released,
                "capacity_returned": returned,
            },
        )
        _notify(order, "order_cancelled", reason=reason[:200])
    return order


@_retry_on_deadlock
def order_expire(*, order_id: int, now: datetime | None = None) -> Order | None:
    """An order not collected by its deadline: cancelled, its units back on sale. Safe to run
    twice (an order no longer ready, or not overdue, is left alone)."""
    now = now or timezone.now()
    with transaction.atomic():
        order = _lock(order_id)
        if (
            order.status != OrderStatus.READY_FOR_PICKUP
            or not order.pickup_deadline
            or (order.pickup_deadline > now)
        ):
            return None
        released = _release_all(order, actor="system:pickup-expiry", reason="not collected")
        _move(
            order,
            OrderStatus.EXPIRED,
            actor="system:pickup-expiry",
            channel=SalesChannel.BACKOFFICE,
            data={"reservations_released": released},
        )
        _notify(order, "order_expired")
    return order


def orders_expire_overdue(*, now: datetime | None = None, limit: int = 500) -> int:
    now = now or timezone.now()
    ids = list(
        Order.objects.filter(status=OrderStatus.READY_FOR_PICKUP, pickup_deadline__lte=now)
        .order_by("pickup_deadline")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for order_id in ids if order_expire(order_id=order_id, now=now) is not None)


def orders_remind_pickup(*, now: datetime | None = None, limit: int = 500) -> int:
    """Remind customers whose order waits, PICKUP_REMINDER_HOURS before the deadline; once."""
    now = now or timezone.now()
    hours = getattr(settings, "ORDERS_PICKUP_REMINDER_HOURS", 24)
    due = list(
        Order.objects.filter(
            status=OrderStatus.READY_FOR_PICKUP,
            reminder_sent_at__isnull=True,
            pickup_deadline__gt=now,
            pickup_deadline__lte=now + timedelta(hours=hours),
        ).values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for order_id in due:
        with transaction.atomic():
            updated = Order.objects.filter(
                pk=order_id, status=OrderStatus.READY_FOR_PICKUP, reminder_sent_at__isnull=True
            ).update(reminder_sent_at=now)
            if updated:
                order = Order.objects.get(pk=order_id)
                _event(order, "pickup_reminder", actor="system", channel=SalesChannel.BACKOFFICE)
                _notify(order, "pickup_reminder")
                sent += 1
    return sent


# ---- transfers for click & collect -----------------------------------------------------------


def _allocation(order: Order, allocation_id: int) -> Allocation:
    allocation = order.allocations.filter(pk=allocation_id).select_related("transfer").first()
    if allocation is None or allocation.kind != AllocationKind.TRANSFER:
        raise InvalidInput(
            "No transfer allocation with this id on the order.",
            details={"allocation": [str(allocation_id)]},
        )
    return allocation


@_retry_on_deadlock
def order_transfer_ship(
    *, order_id: int, allocation_id: int, actor: str, channel: str, idempotency_key: str
) -> Order:
    """The source sends the order's units to the pickup store. Their reservation at the source
    is released and the transfer ships in the same transaction, so the units are never free."""
    if (replay := _replayed(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = _lock(order_id)
        if order.status not in (OrderStatus.ALLOCATED, OrderStatus.PICKING):
            raise IllegalTransition(
                f"Order {order.reference} is {order.status}.", details={"status": [order.status]}
            )
        allocation = _allocation(order, allocation_id)
        if allocation.status != AllocationStatus.RESERVED:
            raise IllegalTransition(
                f"This transfer is {allocation.status}.",
                details={"allocation": [allocation.status]},
            )
        for line in allocation.lines.filter(is_active=True).order_by("pk"):
            stock.reservation_release(
                reservation_id=line.reservation_id,
                idempotency_key=f"order:{order.reference}:ship-transfer:{line.pk}",
                actor=actor,
                reason="",
            )
        stock.transfer_ship(
            transfer_id=allocation.transfer_id,
            idempotency_key=f"order:{order.reference}:transfer-ship:{allocation.pk}",
            actor=actor,
        )
        allocation.status = AllocationStatus.IN_TRANSIT
        allocation.save(update_fields=["status"])
        _event(
            order,
            "transfer_shipped",
            actor=actor,
            channel=channel,
            key=idempotency_key,
            data={"allocation": allocation.pk, "transfer": allocation.transfer_id},
        )
    return order


@_retry_on_deadlock
def order_transfer_receive(
    *,
    order_id: int,
    allocation_id: int,
    actor: str,
    channel: str,
    idempotency_key: str,
    received: dict[int, int] | None = None,
) -> Order:
    """The pickup store receives the order's transfer: the units enter its stock and are held
    for the order at once (same transaction). Units that did not arrive are routed again."""
    if (replay := _replayed(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = _lock(order_id)
        allocation = _allocation(order, allocation_id)
        if allocation.status != AllocationStatus.IN_TRANSIT:
            raise IllegalTransition(
                f"This transfer is {allocation.status}; only a shipped one is received.",
                details={"allocation": [allocation.status]},
            )
        transfer_lines = {line.sku_id: line for line in allocation.transfer.lines.all()}
        arrived = received or {sku: line.quantity_shipped for sku, line in transfer_lines.items()}
        stock.transfer_receive(
            transfer_id=allocation.transfer_id,
            received=arrived,
            close=True,
            idempotency_key=f"order:{order.reference}:transfer-receive:{allocation.pk}",
            actor=actor,
        )
        old_lines = list(allocation.lines.filter(is_active=True).select_related("order_line__sku"))
        requests, kept, short = [], [], []
        for line in old_lines:
            units = min(arrived.get(line.order_line.sku_id, 0), line.quantity)
            arrived[line.order_line.sku_id] = arrived.get(line.order_line.sku_id, 0) - units
            if units:
                requests.append(
                    ReservationRequest(
                        sku_id=line.order_line.sku_id,
                        location_id=order.pickup_location_id,
                        quantity=units,
                    )
                )
                kept.append((line, units))
            if units < line.quantity:
                short.append((line, line.quantity - units))
        reservations = []
        if requests:
            # The till guard: these units are the order's, safety stock does not apply to them.
            reservations = stock.reservations_create(
                requests=requests,
                idempotency_key=f"order:{order.reference}:hold-received:{allocation.pk}",
                channel=SalesChannel.BACKOFFICE,
                reference=order.reference,
                ttl_seconds=0,
                actor=actor,
            )
        AllocationLine.objects.filter(pk__in=[line.pk for line in old_lines]).update(
            is_active=False
        )
        AllocationLine.objects.bulk_create(
            [
                AllocationLine(
                    allocation=allocation,
                    order_line=line.order_line,
                    quantity=units,
                    reservation=reservation,
                )
                for (line, units), reservation in zip(kept, reservations, strict=True)
            ]
        )
        allocation.status = AllocationStatus.RECEIVED
        allocation.save(update_fields=["status"])
        _event(
            order,
            "transfer_received",
            actor=actor,
            channel=channel,
            key=idempotency_key,
            data={
                "allocation": allocation.pk,
                "short": [[ln.order_line.line_no, q] for ln, q in short],
            },
        )
        for line, quantity in short:
            _reroute(
                order,
                line.order_line,
                quantity,
                actor=actor,
                channel=channel,
                exclude=frozenset({allocation.location_id}),
                trigger="transfer_short",
            )
    return order


# ---- store rejection and re-routing ----------------------------------------------------------

REJECTION_REASONS = ("not_on_shelf", "damaged")


@_retry_on_deadlock
def order_line_reject(
    *,
    order_id: int,
    line_no: int,
    location_id: int,
    reason: str,
    actor: str,
    channel: str,
    idempotency_key: str,
    found_quantity: int = 0,
) -> Order:
    """Staff at `location_id` cannot prepare a line.

    not_on_shelf: the location's on hand for the SKU drops to `found_quantity` (what is really
    there), so the router does not send the line straight back. damaged: the line's units become
    unsellable there. Then the line is routed again (never to this location); when nothing is
    left, the line is unavailable and the customer is told, with nearby alternatives.

    Partial picking: in the pickup store itself, the units found stay held for the order (up
    to what it holds there) and only the missing ones are routed again, to come by transfer —
    the shopper collects here anyway. Elsewhere (a shipping location, or the source of a
    transfer) the whole line is routed again: one shipment beats two.
    """
    if reason not in REJECTION_REASONS:
        raise InvalidInput(
            f"reason is one of {list(REJECTION_REASONS)}.", details={"reason": [str(reason)]}
        )
    validate_quantity(found_quantity, field_name="found_quantity", allow_zero=True)
    if (replay := _replayed(idempotency_key)) is not None:
        return replay
    with transaction.atomic():
        order = _lock(order_id)
        if order.status not in (OrderStatus.ALLOCATED, OrderStatus.PICKING):
            raise IllegalTransition(
                f"Order {order.reference} is {order.status}: lines are rejected while it is "
                "allocated or being picked.",
                details={"status": [order.status]},
            )
        order_line = order.lines.filter(line_no=line_no).select_related("sku").first()
        if order_line is None:
            raise InvalidInput(f"No line {line_no} on this order.", details={"line": [line_no]})
        held = [
            line
            for line in _open_lines(order, location_id=location_id)
            if line.order_line_id == order_line.pk
            and line.allocation.status == AllocationStatus.RESERVED
        ]
        if not held:
            raise InvalidInput(
                "This line is not held at this location.",
                details={"line": [line_no], "location": [location_id]},
            )
        keep = 0
        if (
            reason == "not_on_shelf"
            and order.fulfilment == FulfilmentType.PICKUP
            and location_id == order.pickup_location_id
        ):
            keep = min(found_quantity, sum(line.quantity for line in held))
        kept, quantity = keep, 0  # quantity: the units routed again
        for line in held:
            kept_here = min(kept, line.quantity)
            kept -= kept_here
            if kept_here == line.quantity:
                continue
            stock.reservation_release(
                reservation_id=line.reservation_id,
                quantity=line.quantity - kept_here if kept_here else None,
                idempotency_key=f"{idempotency_key}:release:{line.pk}",
                actor=actor,
                reason=AdjustmentReason.NOT_ON_SHELF
                if reason == "not_on_shelf"
                else AdjustmentReason.DAMAGE,
            )
            quantity += line.quantity - kept_here
            if kept_here:
                line.quantity = kept_here
                line.save(update_fields=["quantity"])
            else:
                line.is_active = False
                line.save(update_fields=["is_active"])
        emptied = {line.allocation_id for line in held} - set(
            AllocationLine.objects.filter(
                allocation_id__in={line.allocation_id for line in held}, is_active=True
            ).values_list("allocation_id", flat=True)
        )
        Allocation.objects.filter(pk__in=emptied).update(status=AllocationStatus.RELEASED)
        _record_rejection_in_ledger(
            location_id=location_id,
            sku_id=order_line.sku_id,
            reason=reason,
            quantity=quantity,
            found=found_quantity,
            key=idempotency_key,
            actor=actor,
        )
        _event(
            order,
            "line_rejected",
            actor=actor,
            channel=channel,
            key=idempotency_key,
            data={
                "line": line_no,
                "sku": order_line.sku.code,
                "location": location_id,
                "reason": reason,
                "quantity": quantity,
                "found_quantity": found_quantity,
                "kept": keep,
            },
        )
        if quantity:
            _reroute(
                order,
                order_line,
                quantity,
                actor=actor,
                channel=channel,
                exclude=frozenset({location_id}),
                trigger="rejection",
            )
    return order


def _record_rejection_in_ledger(
    *, location_id: int, sku_id: int, reason: str, quantity: int, found: int, key: str, actor: str
) -> None:
    if reason == "damaged":
        stock.stock_set_aside(
            location_id=location_id,
            sku_id=sku_id,
            quantity=quantity,
            reason=AdjustmentReason.DAMAGE,
            idempotency_key=f"{key}:damaged",
            actor=actor,
        )
        return
    on_hand = (
        StockPosition.objects.filter(location_id=location_id, sku_id=sku_id)
        .values_list("on_hand", flat=True)
        .first()
        or 0
    )
    if found < on_hand:
        stock.stock_adjust(
            location_id=location_id,
            sku_id=sku_id,
            delta=found - on_hand,
            reason=AdjustmentReason.NOT_ON_SHELF,
            idempotency_key=f"{key}:not-on-shelf",
            note="rejected while picking an order",
            actor=actor,
        )


def _reroute(
    order: Order,
    order_line: OrderLine,
    quantity: int,
    *,
    actor: str,
    channel: str,
    exclude: frozenset[int],
    trigger: str,
) -> None:
    need = routing.Need(
        line=order_line.line_no,
        sku_id=order_line.sku_id,
        quantity=quantity,
        sku_code=order_line.sku.code,
    )
    pickup_store = None
    if order.fulfilment == FulfilmentType.PICKUP:
        pickup_store = selectors.location_with_calendar(order.pickup_location_id)
    try:
        allocated = _allocate(
            order,
            [need],
            trigger=trigger,
            actor=actor,
            at=timezone.now(),
            pickup_store=pickup_store,
            exclude=exclude,
        )
    except StoreAtCapacity:  # pragma: no cover - only raised for placements
        allocated = None
    if allocated is not None:
        _event(
            order,
            "line_rerouted",
            actor=actor,
            channel=channel,
            data={
                "line": order_line.line_no,
                "to": [a.location.code for a in allocated.plan.assignments],
            },
        )
        return
    held = sum(line.quantity for line in _open_lines(order) if line.order_line_id == order_line.pk)
    if held:  # some units are still held for it (found while picking, or received): it shrinks
        order_line.quantity = held
        order_line.save(update_fields=["quantity"])
    else:
        order_line.status = LineStatus.UNAVAILABLE
        order_line.save(update_fields=["status"])
    refund = Money(order_line.unit_price, order.currency) * quantity
    # The shopper is not charged for units that will not come: the total drops, and the payments
    # app takes the new total (nothing is captured before the goods leave).
    _lower_total(order, refund.amount)
    alternatives = _alternatives(order, order_line)
    _event(
        order,
        "line_unavailable",
        actor=actor,
        channel=channel,
        data={
            "line": order_line.line_no,
            "sku": order_line.sku.code,
            "quantity": quantity,
            "still_held": held,
            "refund_owed": refund.as_dict(),
            "alternatives": alternatives,
        },
    )
    if not order.lines.filter(status=LineStatus.OPEN).exists():
        _release_all(order, actor=actor, reason="nothing left to serve")
        returned = _return_capacity(order) if order.status == OrderStatus.ALLOCATED else 0
        _move(
            order,
            OrderStatus.CANCELLED,
            actor=actor,
            channel=channel,
            data={"reason": "no line can be served any more", "capacity_returned": returned},
        )
        _notify(order, "order_cancelled", reason="out_of_stock", alternatives=alternatives)
    else:
        _notify(order, "line_unavailable", line=order_line.line_no, alternatives=alternatives)


def _alternatives(order: Order, order_line: OrderLine) -> list[dict]:
    from inventory.selectors import availability_near

    if order.fulfilment == FulfilmentType.PICKUP:
        latitude, longitude = order.pickup_location.latitude, order.pickup_location.longitude
    else:
        latitude, longitude = order.ship_latitude, order.ship_longitude
    offers = availability_near(
        sku_code=order_line.sku.code,
        latitude=float(latitude),
        longitude=float(longitude),
        channel=order.channel,
        limit=3,
    )
    return [
        {
            "store": offer.location.code,
            "distance_km": offer.distance_km,
            "available": offer.available,
            "ready_by": offer.ready_by.isoformat() if offer.ready_by else None,
        }
        for offer in offers
    ]


# ---- returns in any store --------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnLineRequest:
    line_no: int
    quantity: int
    unsellable: bool = False
    reason: str = ""


@_retry_on_deadlock
def order_return(
    *,
    order_id: int,
    location_id: int,
    lines: Sequence[ReturnLineRequest],
    actor: str,
    channel: str,
    idempotency_key: str,
) -> Return:
    """Units of a collected or delivered order come back at any active location: into its
    sellable stock, or unsellable with a reason. The refund owed is recorded."""
    existing = Return.objects.filter(idempotency_key=idempotency_key).first()
    if existing:
        existing.replayed = True
        return existing
    if not lines:
        raise InvalidInput("A return needs at least one line.", details={"lines": ["empty"]})
    with transaction.atomic():
        order = _lock(order_id)
        if order.status not in (OrderStatus.COLLECTED, OrderStatus.DELIVERED):
            raise IllegalTransition(
                "Only a collected or delivered order can be returned.",
                details={"status": [order.status]},
            )
        location = Location.objects.filter(pk=location_id).first()
        if location is None:
            raise UnknownLocation(details={"location": [str(location_id)]})
        if not location.is_active:
            raise InvalidInput(f"{location.code} is inactive.", details={"location": ["inactive"]})
        by_no = {line.line_no: line for line in order.lines.select_for_update().order_by("pk")}
        record = Return.objects.create(
            order=order,
            customer_id=order.customer_id,
            location=location,
            refund_amount=0,
            currency=order.currency,
            actor=actor[:150],
            channel=channel,
            idempotency_key=idempotency_key,
        )
        refund = Money.zero(order.currency)
        seen = set()
        for request in lines:
            line = by_no.get(request.line_no)
            if line is None or request.line_no in seen:
                raise InvalidInput(
                    f"Line {request.line_no} is not on the order (or is given twice).",
                    details={"lines": [request.line_no]},
                )
            seen.add(request.line_no)
            validate_quantity(request.quantity, field_name=f"line {request.line_no} quantity")
            if line.quantity_returned + request.quantity > line.quantity:
                raise InvalidInput(
                    f"Line {request.line_no}: at most {line.quantity - line.quantity_returned} "
                    "more units can be returned.",
                    details={"lines": [request.line_no]},
                )
            if request.unsellable and not request.reason:
                raise InvalidInput(
                    "An unsellable return needs a reason.", details={"reason": ["required"]}
                )
            amount = (Money(line.unit_price, order.currency) * request.quantity).rounded()
            refund = refund + amount
            OrderLine.objects.filter(pk=line.pk).update(
                quantity_returned=F("quantity_returned") + request.quantity
            )
            line.quantity_returned += request.quantity
            ReturnLine.objects.create(
                order_return=record,
                order_line=line,
                quantity=request.quantity,
                unsellable=request.unsellable,
                reason=request.reason[:120],
                refund_amount=amount.amount,
            )
        for unsellable in (False, True):
            group = [
                (by_no[r.line_no].sku_id, r.quantity) for r in lines if r.unsellable == unsellable
            ]
            if group:
                stock.stock_return(
                    location_id=location_id,
                    lines=group,
                    unsellable=unsellable,
                    reason=AdjustmentReason.DAMAGE if unsellable else "",
                    idempotency_key=f"{idempotency_key}:{'unsellable' if unsellable else 'ok'}",
                    reference=order.reference,
                    actor=actor,
                    channel=channel,
                )
        record.refund_amount = refund.amount
        record.save(update_fields=["refund_amount"])
        _event(
            order,
            "returned",
            actor=actor,
            channel=channel,
            data={
                "return": record.pk,
                "location": location.code,
                "refund_owed": refund.as_dict(),
            },
        )
        _reverse_loyalty_points(order, record, actor=actor, channel=channel)
        if record.refund_amount > 0:  # back to the original tenders (the payments app's rule)
            from orders.tasks import order_refund_task

            record_id = record.pk
            transaction.on_commit(lambda: order_refund_task.delay(record_id, actor, channel))
    record.replayed = False
    return record


def order_return_refund(*, return_id: int, actor: str, channel: str) -> str:
    """Refund a return to the order's tenders (the payments app decides the split). Keyed by the
    return, so it refunds once. When the payments app cannot (nothing captured through it, or
    less than owed), the refund stays owed and the journal says why, for customer service.
    Returns "refunded", "already_refunded" or "manual"."""
    from payments.services.tenders import order_payment_refund

    record = Return.objects.select_related("order", "order__customer").get(pk=return_id)
    order = record.order
    key = f"order-return:{record.pk}"
    if OrderEvent.objects.filter(idempotency_key=key).exists():
        return "already_refunded"
    try:
        lines = order_payment_refund(
            order_reference=order.reference,
            amount=record.refund_amount,
            currency=order.currency,
            idempotency_key=key,
            channel=channel,
            actor=actor,
            customer=order.customer,
            reason=f"return {record.pk}",
        )
    except DomainError as exc:
        _event(
            order,
            "refund_manual",
            actor=actor,
            channel=channel,
            data={
                "return": record.pk,
                "amount": str(record.refund_amount),
                "reason": exc.message,
                "code": exc.code,
            },
        )
        return "manual"
    _event(
        order,
        "refunded",
        actor=actor,
        channel=channel,
        key=key,
        data={"return": record.pk, "amount": str(record.refund_amount), "tenders": lines},
    )
    return "refunded"

"""Placing an order: validate, route, reserve every line (or nothing) and write the order."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from common.channels import SalesChannel
from common.exceptions import InvalidInput
from common.idempotency import idempotency_key_check, request_fingerprint, run_once
from common.money import CurrencyMismatch, Money, parse_amount
from customers.models import Customer
from inventory.models import (
    Sku,
)
from inventory.services import validate_quantity
from orders import pickup, routing, selectors
from orders.exceptions import (
    OutOfStock,
)
from orders.models import (
    FulfilmentType,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
)
from orders.services.allocation import NewOrderRows, allocate, ready_by_promise
from orders.services.notifications import notification_owed, notifications_send_after_commit
from orders.services.status import retry_on_deadlock
from stores.models import Location

_REFERENCE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


_CHANNEL_PREFIX = {
    SalesChannel.WEB: "W",
    SalesChannel.APP: "A",
    SalesChannel.MARKETPLACE: "M",
    SalesChannel.CALL_CENTRE: "C",
    SalesChannel.STORE: "S",
    SalesChannel.BACKOFFICE: "B",
}


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


def _new_reference(channel: str) -> str:
    body = "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(9))
    return f"{_CHANNEL_PREFIX.get(channel, 'X')}{body}"


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


@retry_on_deadlock
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
    idempotency_key_check(idempotency_key)
    currency, prices = _validate_lines(lines)
    request_hash = _placement_fingerprint(
        channel=channel,
        lines=lines,
        prices=prices,
        fulfilment=fulfilment,
        pickup_location_id=pickup_location_id,
        address=address,
    )
    at = at or timezone.now()

    def perform() -> Order:
        pickup_store = _fulfilment_check(fulfilment, pickup_location_id, address, at=at)
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
            total_amount=_total(lines, prices, currency),
            fulfilment=fulfilment,
            pickup_location=pickup_store,
            **_shipping_fields(address),
            pickup_nonce=pickup.new_nonce() if pickup_store else "",
            placed_at=at,
        )
        return _placement_allocate(
            order, lines, prices, actor=actor, at=at, pickup_store=pickup_store
        )

    order, replayed = run_once(
        find=lambda: _placed_with(idempotency_key),
        same_request=lambda existing: _same_placement(existing, request_hash),
        perform=perform,
        reused_message="This key placed another order, with other lines or fulfilment.",
    )
    order.replayed = replayed
    return order


def _fulfilment_check(
    fulfilment: str, pickup_location_id: int | None, address: DeliveryAddress | None, *, at
) -> Location | None:
    """The pickup store of a click & collect order (checked: active, offers pickup, opens in
    the coming weeks); None for a home delivery, which needs an address."""
    if fulfilment == FulfilmentType.PICKUP:
        location = selectors.location_with_calendar(pickup_location_id)
        store = selectors.pickup_store_check(location, code=str(pickup_location_id or ""))
        selectors.pickup_promise(store, at=at)  # closed for weeks: refuse now
        return store
    if fulfilment == FulfilmentType.DELIVERY:
        if address is None:
            raise InvalidInput(
                "Home delivery needs an address with coordinates.",
                details={"address": ["required"]},
            )
        return None
    raise InvalidInput(
        "fulfilment is 'pickup' or 'delivery'.", details={"fulfilment": [str(fulfilment)]}
    )


def _total(lines: Sequence[OrderLineRequest], prices: list[Decimal], currency: str) -> Decimal:
    return (
        sum(
            (
                Money(price, currency) * line.quantity
                for price, line in zip(prices, lines, strict=True)
            ),
            Money.zero(currency),
        )
        .rounded()
        .amount
    )


def _shipping_fields(address: DeliveryAddress | None) -> dict:
    if address is None:
        return {}
    return {
        "ship_name": address.name,
        "ship_address": address.address,
        "ship_postcode": address.postcode,
        "ship_city": address.city,
        "ship_country": address.country,
        "ship_latitude": address.latitude,
        "ship_longitude": address.longitude,
    }


def _placement_allocate(
    order: Order,
    lines: Sequence[OrderLineRequest],
    prices: list[Decimal],
    *,
    actor: str,
    at: datetime,
    pickup_store: Location | None,
) -> Order:
    """Route and reserve a new order's lines, then write the order with everything it owns.
    The order row is written once routing has reserved its stock, already allocated: a refused
    order writes nothing, and an accepted one costs no status UPDATE."""
    needs = [
        routing.Need(line=index, sku_id=line.sku_id, quantity=line.quantity, sku_code=line.sku_code)
        for index, line in enumerate(lines, start=1)
    ]

    def persist(plan: routing.RoutingPlan) -> NewOrderRows:
        """The order's own rows, unsaved: `allocate` writes them with the rest."""
        order.status = OrderStatus.ALLOCATED
        order.ready_by = ready_by_promise(order, plan, at=at, store=pickup_store)
        return NewOrderRows(
            lines=[
                OrderLine(
                    order=order,
                    line_no=index,
                    sku_id=line.sku_id,
                    quantity=line.quantity,
                    unit_price=price,
                )
                for index, (line, price) in enumerate(zip(lines, prices, strict=True), start=1)
            ],
            events=_placement_events(order, plan, actor=actor, at=at),
            notifications=[notification_owed(order, "order_confirmed")],
        )

    allocated = allocate(
        order,
        needs,
        trigger="placement",
        actor=actor,
        at=at,
        pickup_store=pickup_store,
        persist=persist,
    )
    if allocated is None:
        raise OutOfStock(
            f"Not enough stock for: {'; '.join(_short_line_said(s) for s in order._short)}. "
            "Nothing was reserved.",
            details={"lines": order._short},
        )
    notifications_send_after_commit()  # "order_confirmed" is owed
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
    return order


def _short_line_said(short: dict) -> str:
    """'TEE-NVY-M: 2 wanted, 0 where it can come from (3 at PARIS-MARAIS, which does not
    ship)': what exists and why it cannot be used, not only "0"."""
    said = f"{short['sku']}: {short['requested']} wanted, {short['available']} available"
    elsewhere = short.get("elsewhere") or []
    if elsewhere:
        said += (
            " ("
            + ", ".join(
                f"{place['units']} at {place['location']}: {place['why']}"
                for place in elsewhere[:3]
            )
            + ")"
        )
    return said


def _placement_events(order: Order, plan: routing.RoutingPlan, *, actor: str, at) -> list:
    of_it = {"order": order, "actor": actor[:150], "channel": order.channel}
    return [
        OrderEvent(kind="placed", to_status=OrderStatus.PLACED, occurred_at=at, **of_it),
        OrderEvent(
            kind="allocated",
            from_status=OrderStatus.PLACED,
            to_status=OrderStatus.ALLOCATED,
            data={"outcome": plan.outcome},
            occurred_at=timezone.now(),
            **of_it,
        ),
    ]


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
    return request_fingerprint(
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


def _placed_with(idempotency_key: str) -> Order | None:
    return Order.objects.filter(created_by_key=idempotency_key).first()


def _same_placement(existing: Order, request_hash: str) -> bool:
    # Orders placed before the hash was kept have none and are not compared.
    return not existing.request_hash or existing.request_hash == request_hash

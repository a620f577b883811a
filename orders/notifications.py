"""What an order message says: the context the notification templates render."""

from __future__ import annotations

import io

import segno

from customers.models import CustomerIdentifier
from notifications.services import ORDER_KINDS, notification_deliver
from orders import pickup
from orders.models import Order, OrderStatus


def order_contacts(order: Order) -> tuple[str, str]:
    """Where the order's messages go: the contact given with the order, else the customer's
    email and phone in the customer reference (primary first)."""
    email, phone = order.contact_email, order.contact_phone
    if not email or not phone:
        known: dict[str, str] = {}
        for kind, value in (
            CustomerIdentifier.objects.filter(
                customer_id=order.customer_id, kind__in=["email", "phone"]
            )
            .order_by("-is_primary", "pk")
            .values_list("kind", "value_normalised")[:10]
        ):
            known.setdefault(kind, value)
        email = email or known.get("email", "")
        phone = phone or known.get("phone", "")
    return email, phone


def order_message_context(*, order_id: int, kind: str, extra: dict) -> tuple[Order, dict]:
    order = Order.objects.select_related("customer", "pickup_location").get(pk=order_id)
    store = order.pickup_location
    context = {
        "reference": order.reference,
        "first_name": order.customer.first_name,
        "is_pickup": order.fulfilment == "pickup",
        "store": store,
        "ready_by": order.ready_by,  # aware: written in the store's zone by `render`
        "delivery_on": order.delivery_expected_on,
        "pickup_deadline": order.pickup_deadline,
        "total": f"{order.total_amount} {order.currency}",
        "reason": extra.get("reason", ""),
        "alternatives": extra.get("alternatives", []),
        "line": extra.get("line"),
        "lines": [
            {"sku": line.sku.code, "name": line.sku.name, "quantity": line.quantity}
            for line in order.lines.select_related("sku")
        ],
    }
    if order.pickup_nonce and order.status in (OrderStatus.READY_FOR_PICKUP,):
        context["pickup_code"] = pickup.pickup_code(
            reference=order.reference, nonce=order.pickup_nonce
        )
        context["qr_payload"] = pickup.qr_payload(
            reference=order.reference, nonce=order.pickup_nonce
        )
    return order, context


def order_notification_send(*, order_id: int, kind: str, extra: dict | None = None) -> int:
    """Send one order message (email and/or SMS), once: deduplicated by order, kind and line."""
    if kind not in ORDER_KINDS:
        raise ValueError(f"unknown order notification {kind!r}")
    order, context = order_message_context(order_id=order_id, kind=kind, extra=extra or {})
    email, phone = order_contacts(order)
    suffix = f":{extra['line']}" if extra and "line" in extra else ""
    return notification_deliver(
        dedupe_key=f"order:{order.reference}:{kind}{suffix}",
        kind=kind,
        language=order.language,
        context=context,
        email=email,
        phone=phone,
        customer_id=order.customer_id,
        subject_reference=order.reference,
        time_zone=order.pickup_location.timezone if order.pickup_location else "",
        attachments=_pickup_qr(order.reference, context.get("qr_payload")),
    )


def _pickup_qr(reference: str, payload: str | None) -> tuple[tuple[str, bytes, str], ...]:
    """The pickup QR code as a PNG for the email: the store's scanner reads it into the board's
    code field (the hand-over accepts the whole payload, or the 6-character code)."""
    if not payload:
        return ()
    image = io.BytesIO()
    segno.make(payload, error="m").save(image, kind="png", scale=8, border=4)
    return ((f"retrait-{reference}.png", image.getvalue(), "image/png"),)

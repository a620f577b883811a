"""What orders contribute to the customer reference (registered in OrdersConfig.ready)."""

from django.db.models import Q

from customers import registry as rcu
from customers.registry import HistoryEntry
from orders.models import OPEN_STATUSES, Order, Return
from payments import selectors as payments


def open_orders(customer) -> list[str]:
    references = Order.objects.filter(customer=customer, status__in=OPEN_STATUSES).values_list(
        "reference", flat=True
    )
    return [f"Order {reference} is still open." for reference in references]


def anonymise_addresses(customer) -> dict[str, int]:
    # Orders and their amounts stay for accounting, linked to the anonymised customer.
    count = Order.objects.filter(customer=customer).update(
        ship_name="",
        ship_address="",
        ship_postcode="",
        ship_city="",
        ship_latitude=None,
        ship_longitude=None,
        contact_email="",
        contact_phone="",
    )
    return {"orders_anonymised": count}


def export_orders(customer) -> list[dict]:
    """Every order with its lines and what paid it (tenders, captures, refunds)."""
    orders = Order.objects.filter(customer=customer)
    tenders = payments.order_tenders_export(order_references=orders.values("reference"))
    return [
        {
            "reference": order.reference,
            "placed_at": order.placed_at.isoformat(),
            "channel": order.channel,
            "status": order.status,
            "fulfilment": order.fulfilment,
            "total": {"amount": str(order.total_amount), "currency": order.currency},
            "delivery_address": " ".join(
                part
                for part in (
                    order.ship_name,
                    order.ship_address,
                    order.ship_postcode,
                    order.ship_city,
                )
                if part
            ),
            "contact_email": order.contact_email,
            "contact_phone": order.contact_phone,
            "lines": [
                {
                    "sku": line.sku.code,
                    "quantity": line.quantity,
                    "unit_price": str(line.unit_price),
                }
                for line in order.lines.all()
            ],
            "payments": tenders.get(order.reference, []),
        }
        for order in orders.prefetch_related("lines__sku").order_by("placed_at", "pk")
    ]


def history(customer, *, before, limit) -> list[HistoryEntry]:
    orders = Order.objects.filter(customer=customer)
    if before is not None:
        orders = orders.filter(before.older_q("orders", time_field="placed_at"))
    return [
        HistoryEntry(
            occurred_at=order.placed_at,
            provider="orders",
            pk=order.pk,
            kind="order_placed",
            summary=f"Order {order.reference} ({order.total_amount} {order.currency}), "
            f"{order.get_fulfilment_display().lower()}, {order.get_status_display().lower()}",
            sales_channel=order.channel,
            data={"order": order.reference, "status": order.status},
        )
        for order in orders.order_by("-placed_at", "-pk")[:limit]
    ]


_PAYMENT_SUMMARY = {
    "captured": "Paid {amount} {currency} ({kind}) for order {order}",
    "paid_at_till": "Paid {amount} {currency} at the till for order {order}",
    "refunded": "Refunded {amount} {currency} ({kind}) on order {order}",
    "refund_failed": "A refund of {amount} {currency} ({kind}) on order {order} failed",
}


def payment_history(customer, *, before, limit) -> list[HistoryEntry]:
    """Money taken and given back on the person's orders, in their unified history."""
    events = payments.tender_events_for_history(
        order_references=Order.objects.filter(customer=customer).values("reference"),
        older_q=before.older_q("payments", time_field="occurred_at") if before else Q(),
        limit=limit,
    )
    return [
        HistoryEntry(
            occurred_at=event.occurred_at,
            provider="payments",
            pk=event.pk,
            kind=f"payment_{event.kind}",
            summary=_PAYMENT_SUMMARY[event.kind].format(
                amount=event.amount if event.amount is not None else event.tender.amount,
                currency=event.tender.currency,
                kind=event.tender.kind.replace("_", " "),
                order=event.tender.order_reference,
            ),
            sales_channel=event.tender.channel,
            data={
                "order": event.tender.order_reference,
                "tender": event.tender.kind,
                "amount": str(event.amount if event.amount is not None else event.tender.amount),
                "currency": event.tender.currency,
            },
        )
        for event in events
    ]


def register() -> None:

    rcu.register_customer_link(Order, "customer")
    rcu.register_customer_link(Return, "customer")
    rcu.register_erasure_blocker("orders.open", open_orders)
    rcu.register_erasure_handler("orders.addresses", anonymise_addresses)
    rcu.register_export_contributor("orders", export_orders)
    rcu.register_history_provider("orders", history)
    rcu.register_history_provider("payments", payment_history)

"""Store receipts in the single customer reference: merges, history, export, erasure."""

from customers import registry as rcu
from customers.registry import HistoryEntry
from integrations.models import PosEvent, StoreReceipt


def history(customer, *, before, limit) -> list[HistoryEntry]:
    receipts = StoreReceipt.objects.filter(customer=customer).select_related("location")
    if before is not None:
        receipts = receipts.filter(before.older_q("store_receipts"))
    return [
        HistoryEntry(
            occurred_at=receipt.occurred_at,
            provider="store_receipts",
            pk=receipt.pk,
            kind=f"store_{receipt.kind}",
            summary=f"Store {receipt.kind} {receipt.number} at {receipt.location.name}, "
            f"{receipt.total} {receipt.currency}",
            sales_channel="store",
            data={
                "receipt": receipt.number,
                "store": receipt.location.code,
                "lines": receipt.lines,
                "order_reference": receipt.order_reference,
            },
        )
        for receipt in receipts.order_by("-occurred_at", "-pk")[:limit]
    ]


def export(customer) -> list[dict]:
    return [
        {
            "kind": r.kind,
            "number": r.number,
            "store": r.location.code,
            "till": r.till,
            "occurred_at": r.occurred_at.isoformat(),
            "currency": r.currency,
            "total": str(r.total),
            "lines": r.lines,
            "tenders": r.tenders,
            "order_reference": r.order_reference,
        }
        for r in StoreReceipt.objects.filter(customer=customer).select_related("location")
    ]


def erase(customer) -> dict:
    """Receipts stay for accounting, linked to the anonymised customer; the identifiers the till
    sent (card, phone, email) are removed from the stored events."""
    events = PosEvent.objects.filter(receipt__customer=customer)
    scrubbed = 0
    for event in events:
        payload = event.payload or {}
        if isinstance(payload.get("data"), dict) and payload["data"].pop("customer", None):
            event.payload = payload
            event.raw_body = ""
            event.save(update_fields=["payload", "raw_body"])
            scrubbed += 1
    return {"pos_events_scrubbed": scrubbed}


def register() -> None:
    rcu.register_customer_link(StoreReceipt, "customer")
    rcu.register_history_provider("store_receipts", history)
    rcu.register_export_contributor("store_receipts", export)
    rcu.register_erasure_handler("store_receipts.identifiers", erase)

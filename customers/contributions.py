"""The customers app's own registrations: it plugs into its registry like any other app will.

Imported once by CustomersConfig.ready().
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils import timezone

from common.channels import SalesChannel
from common.models import IdempotencyRecord
from customers.models import (
    Address,
    Consent,
    ConsentEvent,
    Customer,
    CustomerEvent,
    CustomerIdentifier,
    CustomerMerge,
    IdentifierKind,
)
from customers.registry import (
    HistoryCursor,
    HistoryEntry,
    register_customer_link,
    register_erasure_handler,
    register_export_contributor,
    register_history_provider,
    register_merge_blocker,
    register_merge_handler,
)
from customers.selectors import consent_latest_from_log, consent_state, customer_absorbed_ids
from customers.services import consent_cache_rebuild

ECOMMERCE_SOURCE = "ecommerce"


# ---- merge -----------------------------------------------------------------------------------


def _blocker_two_cards(survivor: Customer, absorbed: Customer) -> list[str]:
    both = (
        CustomerIdentifier.objects.filter(
            customer__in=[survivor, absorbed], kind=IdentifierKind.LOYALTY_CARD
        )
        .values_list("customer_id", flat=True)
        .distinct()
    )
    return (
        ["Both records hold a loyalty card (two different card numbers)."]
        if len(set(both)) == 2
        else []
    )


def _blocker_two_ecommerce_accounts(survivor: Customer, absorbed: Customer) -> list[str]:
    both = (
        CustomerIdentifier.objects.filter(
            customer__in=[survivor, absorbed], kind=IdentifierKind.EXTERNAL, source=ECOMMERCE_SOURCE
        )
        .values_list("customer_id", flat=True)
        .distinct()
    )
    return ["Both records have an e-commerce account."] if len(set(both)) == 2 else []


def _merge_primary_identifiers(survivor: Customer, absorbed: Customer) -> list[int]:
    """The survivor keeps its primary email/phone/card: the absorbed ones of the same kinds stop
    being primary. Returns their pks so that an unmerge makes them primary again."""
    kinds = set(
        CustomerIdentifier.objects.filter(customer=survivor, is_primary=True).values_list(
            "kind", flat=True
        )
    )
    demoted = list(
        CustomerIdentifier.objects.filter(
            customer=absorbed, is_primary=True, kind__in=kinds
        ).values_list("pk", flat=True)
    )
    CustomerIdentifier.objects.filter(pk__in=demoted).update(is_primary=False)
    return demoted


def _unmerge_primary_identifiers(
    survivor: Customer, absorbed: Customer, demoted: list[int]
) -> None:
    CustomerIdentifier.objects.filter(pk__in=demoted or [], customer=absorbed).update(
        is_primary=True
    )


# ---- registrations ---------------------------------------------------------------------------


def _export_profile(customer: Customer) -> dict[str, Any]:
    def one(c: Customer) -> dict[str, Any]:
        return {
            "reference": str(c.reference),
            "number": c.number,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "language": c.language,
            "preferred_store": c.preferred_store.code if c.preferred_store else None,
            "status": c.status,
            "created_channel": c.created_channel,
            "created_at": c.created_at.isoformat(),
            "updated_at": c.updated_at.isoformat(),
        }

    absorbed = Customer.objects.filter(pk__in=customer_absorbed_ids(customer.pk)).select_related(
        "preferred_store"
    )
    return {**one(customer), "merged_records": [one(c) for c in absorbed.order_by("pk")]}


def _export_identifiers(customer: Customer) -> list[dict[str, Any]]:
    return [
        {
            "kind": i.kind,
            "source": i.source,
            "value": i.value_normalised,
            "as_typed": i.value_raw,
            "primary": i.is_primary,
            "channel": i.created_channel,
            "added_at": i.created_at.isoformat(),
        }
        for i in customer.identifiers.order_by("kind", "pk")
    ]


def _export_addresses(customer: Customer) -> list[dict[str, Any]]:
    return [
        {
            "label": a.label,
            "line1": a.line1,
            "line2": a.line2,
            "postcode": a.postcode,
            "city": a.city,
            "country": a.country,
            "added_at": a.created_at.isoformat(),
        }
        for a in customer.addresses.order_by("pk")
    ]


def _export_consents(customer: Customer) -> dict[str, Any]:
    log = [
        {
            "purpose": e.purpose,
            "channel": e.channel,
            "granted": e.granted,
            "wording_version": e.wording_version,
            "sales_channel": e.sales_channel,
            "actor": e.actor,
            "at": e.occurred_at.isoformat(),
        }
        for e in customer.consent_events.order_by("occurred_at", "pk")
    ]
    current = [
        {**row, "changed_at": row["changed_at"].isoformat() if row["changed_at"] else None}
        for row in consent_state(customer=customer)
    ]
    return {"current": current, "log": log}


def _export_events(customer: Customer) -> list[dict[str, Any]]:
    return [
        {
            "kind": e.kind,
            "at": e.occurred_at.isoformat(),
            "sales_channel": e.sales_channel,
            "data": e.data,
        }
        for e in customer.events.order_by("occurred_at", "pk")
    ]


def _export_merges(customer: Customer) -> list[dict[str, Any]]:
    merges = CustomerMerge.objects.filter(survivor=customer) | CustomerMerge.objects.filter(
        absorbed=customer
    )
    return [
        {
            "survivor": str(m.survivor.reference),
            "absorbed": str(m.absorbed.reference),
            "merged_at": m.merged_at.isoformat(),
            "unmerged_at": m.unmerged_at.isoformat() if m.unmerged_at else None,
        }
        for m in merges.select_related("survivor", "absorbed").order_by("merged_at", "pk")
    ]


def _erase_identifiers(customer: Customer) -> dict[str, int]:
    deleted, _ = CustomerIdentifier.objects.filter(customer=customer).delete()
    return {"identifiers_deleted": deleted}


def _erase_addresses(customer: Customer) -> dict[str, int]:
    deleted, _ = Address.objects.filter(customer=customer).delete()
    return {"addresses_deleted": deleted}


def _erase_consents(customer: Customer) -> dict[str, int]:
    """The consent log is the proof of what the person agreed to, and when: it is kept, linked
    to the record that erasure anonymises (no name, no identifier left on it). Every consent
    still granted is withdrawn by a last logged event, so the log ends with the erasure."""
    now = timezone.now()
    granted = list(Consent.objects.filter(customer=customer, granted=True))
    for consent in granted:
        event = ConsentEvent.objects.create(
            customer=customer,
            purpose=consent.purpose,
            channel=consent.channel,
            granted=False,
            wording_version="erasure",
            sales_channel=SalesChannel.BACKOFFICE,
            actor="customers:erase",
            occurred_at=now,
        )
        Consent.objects.filter(pk=consent.pk).update(granted=False, event=event)
    kept = ConsentEvent.objects.filter(customer=customer).count()
    return {"consent_events_kept": kept, "consents_withdrawn": len(granted)}


def _erase_events(customer: Customer) -> dict[str, int]:
    deleted, _ = CustomerEvent.objects.filter(customer=customer).delete()
    return {"history_events_deleted": deleted}


def _erase_traces(customer: Customer) -> dict[str, int]:
    """Copies of personal data kept by shared plumbing: stored API responses (idempotency replay)
    of the customers endpoints about this person, and the admin log's object names."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    ids = [customer.pk, *customer_absorbed_ids(customer.pk)]
    keys = list(Customer.objects.filter(pk__in=ids).values_list("reference", "number"))
    about = Q()
    for reference, number in keys:
        about |= Q(response_body__customer__reference=str(reference))
        about |= Q(endpoint__endswith=f":{reference}") | Q(endpoint__endswith=f":{number}")
    records = IdempotencyRecord.objects.filter(about, endpoint__startswith="customers.").exclude(
        endpoint__startswith="customers.erase:"
    )
    deleted, _ = records.delete()
    renamed = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Customer),
        object_id__in=[str(pk) for pk in ids],
    ).update(object_repr="(erased customer)")
    return {"stored_api_responses_deleted": deleted, "admin_log_entries_renamed": renamed}


_EVENT_SUMMARIES = {
    "created": "Customer record created",
    "profile_updated": "Profile updated: {fields}",
    "identifier_added": "{kind} added: {value}",
    "identifier_removed": "{kind} removed: {value}",
    "merged": "Record {absorbed_number} merged into this one",
    "unmerged": "Merge #{merge} undone",
}


def _summary(kind: str, data: dict[str, Any]) -> str:
    template = _EVENT_SUMMARIES.get(kind, kind)
    values = {**data}
    if isinstance(values.get("fields"), list):
        values["fields"] = ", ".join(values["fields"])
    try:
        return template.format(**values)
    except (KeyError, IndexError):
        return template


def history_customer_events(
    customer: Customer, *, before: HistoryCursor | None, limit: int
) -> list[HistoryEntry]:
    name = "customers.events"
    events = CustomerEvent.objects.filter(customer=customer)
    if before is not None:
        events = events.filter(before.older_q(name))
    return [
        HistoryEntry(
            e.occurred_at, name, e.pk, e.kind, _summary(e.kind, e.data), e.sales_channel, e.data
        )
        for e in events.order_by("-occurred_at", "-pk")[:limit]
    ]


def history_consent_events(
    customer: Customer, *, before: HistoryCursor | None, limit: int
) -> list[HistoryEntry]:
    name = "customers.consents"
    events = ConsentEvent.objects.filter(customer=customer)
    if before is not None:
        events = events.filter(before.older_q(name))
    return [
        HistoryEntry(
            e.occurred_at,
            name,
            e.pk,
            "consent_changed",
            f"Consent {e.purpose} by {e.channel} "
            f"{'granted' if e.granted else 'withdrawn'} ({e.wording_version})",
            e.sales_channel,
            {
                "purpose": e.purpose,
                "channel": e.channel,
                "granted": e.granted,
                "wording_version": e.wording_version,
            },
        )
        for e in events.order_by("-occurred_at", "-pk")[:limit]
    ]


def register() -> None:
    register_customer_link(CustomerIdentifier, "customer")
    register_customer_link(Address, "customer")
    register_customer_link(ConsentEvent, "customer")
    register_customer_link(CustomerEvent, "customer")
    register_merge_blocker("customers.two_loyalty_cards", _blocker_two_cards)
    register_merge_blocker("customers.two_ecommerce_accounts", _blocker_two_ecommerce_accounts)
    register_merge_handler(
        "customers.primary_identifiers",
        merge=_merge_primary_identifiers,
        unmerge=_unmerge_primary_identifiers,
    )
    register_merge_handler(
        "customers.consents", merge=_merge_consents_state, unmerge=_unmerge_consents_state
    )
    register_export_contributor("customer", _export_profile)
    register_export_contributor("identifiers", _export_identifiers)
    register_export_contributor("addresses", _export_addresses)
    register_export_contributor("consents", _export_consents)
    register_export_contributor("history", _export_events)
    register_export_contributor("merges", _export_merges)
    register_erasure_handler("customers.identifiers", _erase_identifiers)
    register_erasure_handler("customers.addresses", _erase_addresses)
    register_erasure_handler("customers.consents", _erase_consents)
    register_erasure_handler("customers.history", _erase_events)
    register_erasure_handler("customers.traces", _erase_traces)
    register_history_provider("customers.events", history_customer_events)
    register_history_provider("customers.consents", history_consent_events)


def _merge_consents_state(survivor: Customer, absorbed: Customer) -> None:
    """Runs before the links move, when each record still holds its own log: the survivor's
    current state becomes the latest decision across both logs (what the person said last, on
    whichever record); the absorbed record's state is dropped with it. Returns nothing: the state
    is derived from the log, so an unmerge simply recomputes it."""
    latest: dict[tuple[str, str], ConsentEvent] = {}
    for (_, purpose, channel), event in consent_latest_from_log(
        customer_ids=[survivor.pk, absorbed.pk]
    ).items():
        current = latest.get((purpose, channel))
        if current is None or (event.occurred_at, event.pk) > (current.occurred_at, current.pk):
            latest[(purpose, channel)] = event
    Consent.objects.filter(customer__in=[survivor, absorbed]).delete()
    Consent.objects.bulk_create(
        [
            Consent(
                customer=survivor,
                purpose=purpose,
                channel=channel,
                granted=event.granted,
                event=event,
            )
            for (purpose, channel), event in latest.items()
        ]
    )


def _unmerge_consents_state(survivor: Customer, absorbed: Customer, payload: Any) -> None:
    consent_cache_rebuild(customer_ids=[survivor.pk, absorbed.pk])

"""Reads with rules in them: resolve, consent state, unified history, export, duplicates."""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, Value
from django.db.models.functions import Right, StrIndex, Substr

from common.exceptions import InvalidInput
from customers.exceptions import (
    CustomerErased,
    CustomerNotFound,
    InvalidIdentifier,
    MergeNotFound,
)
from customers.identifiers import (
    Identifier,
    customer_number_is_valid,
    junk_rules,
    parse_identifier,
)
from customers.models import (
    Address,
    Consent,
    ConsentChannel,
    ConsentEvent,
    ConsentPurpose,
    Customer,
    CustomerIdentifier,
    CustomerMerge,
    CustomerStatus,
    IdentifierKind,
)
from customers.registry import HistoryCursor, HistoryEntry, registry

MAX_MERGE_CHAIN = 50
MAX_HISTORY_PAGE = 200


# ---- customers -------------------------------------------------------------------------------


def customer_follow(customer: Customer) -> Customer:
    """The record that holds this person now: follows `merged_into` (A→B→C) to the survivor."""
    hops = 0
    while customer.merged_into_id is not None:
        hops += 1
        if hops > MAX_MERGE_CHAIN:  # pragma: no cover - a cycle is prevented by the merge service
            raise RuntimeError(f"merge chain too long from customer {customer.pk}")
        customer = Customer.objects.select_related("preferred_store").get(
            pk=customer.merged_into_id
        )
    return customer


def customer_get(
    *, reference: str | uuid.UUID, allow_erased: bool = False, with_store: bool = True
) -> Customer:
    """A customer by public reference (UUID) or customer number, following merges.

    `with_store=False` skips loading the preferred store (an order placement needs only the
    record, and joins the store's many columns on every order otherwise).
    Raises CustomerNotFound, or CustomerErased unless `allow_erased`."""
    column = value = None
    text = str(reference).strip()
    try:
        column, value = "reference", uuid.UUID(text)
    except ValueError:
        compact = text.replace(" ", "")
        if customer_number_is_valid(compact):
            column, value = "number", compact
    customer = None
    if column is not None:
        queryset = Customer.objects.filter(**{column: value})
        if with_store:
            queryset = queryset.select_related("preferred_store")
        customer = next(iter(queryset[:1]), None)  # a unique column: no `.first()` ORDER BY
    if customer is None:
        raise CustomerNotFound(details={"reference": [text[:64]]})
    customer = customer_follow(customer)
    if customer.status == CustomerStatus.ERASED and not allow_erased:
        raise CustomerErased()
    return customer


@dataclass
class Resolution:
    customer: Customer | None
    matched_by: Identifier | None = None
    ignored: list[Identifier] = field(default_factory=list)  # placeholder values, never matched
    other_customers: list[Customer] = field(default_factory=list)  # lower-priority conflicts


def identifiers_parse(
    items: Iterable[tuple[str, str, str]], *, region: str | None = None
) -> tuple[list[Identifier], list[Identifier]]:
    """(kind, raw, source) items -> (usable, junk). Invalid values raise InvalidIdentifier;
    duplicates are dropped. Junk is checked on the raw value first, so a placeholder that is not
    even a valid phone ("0000000000") is ignored rather than refused."""
    rules = junk_rules()
    usable: dict[tuple[str, str, str], Identifier] = {}
    junk: list[Identifier] = []
    for kind, raw, source in items:
        raw_text = raw if isinstance(raw, str) else ""
        if kind in IdentifierKind.values and isinstance(raw, str) and rules.is_junk(kind, raw_text):
            junk.append(Identifier(kind, source or "", "", raw_text.strip()))
            continue
        ident = parse_identifier(kind, raw, source=source, region=region)
        if rules.is_junk(kind, ident.raw, ident.value):
            junk.append(ident)
            continue
        usable.setdefault(ident.key, ident)
    return sorted(usable.values(), key=lambda i: (i.priority, i.key)), junk


def identifier_rows(identifiers: Sequence[Identifier]) -> list[CustomerIdentifier]:
    """The stored rows for these identifiers (customers joined), one indexed query."""
    if not identifiers:
        return []
    query = Q()
    for ident in identifiers:
        query |= Q(kind=ident.kind, source=ident.source, value_normalised=ident.value)
    return list(
        CustomerIdentifier.objects.filter(query).select_related(
            "customer", "customer__preferred_store"
        )
    )


def resolution_from(
    identifiers: Sequence[Identifier],
    rows: Sequence[CustomerIdentifier],
    junk: list[Identifier] | None = None,
) -> Resolution:
    """Pick the customer of the highest-priority identifier found (then the order of
    `identifiers`, which is sorted by priority and value)."""
    by_key = {(row.kind, row.source, row.value_normalised): row for row in rows}
    resolution = Resolution(customer=None, ignored=list(junk or []))
    seen: set[int] = set()
    for ident in identifiers:
        row = by_key.get(ident.key)
        if row is None:
            continue
        customer = customer_follow(row.customer)
        if customer.pk in seen:
            continue
        seen.add(customer.pk)
        if resolution.customer is None:
            resolution.customer, resolution.matched_by = customer, ident
        else:
            resolution.other_customers.append(customer)
    return resolution


def customer_resolve(
    *, identifiers: Iterable[tuple[str, str, str]], region: str | None = None
) -> Resolution:
    """Which customer do these identifiers belong to? (kind, raw value, source) triples.

    Placeholder values never match. Several identifiers pointing at different customers: the
    highest-priority one wins (loyalty card > external id > email > phone); the others are listed
    in `other_customers` (identify-or-create records a merge suggestion for them; a read does not).
    """
    usable, junk = identifiers_parse(identifiers, region=region)
    return resolution_from(usable, identifier_rows(usable), junk)


def customer_resolve_one(*, kind: str, value: str, source: str = "") -> Customer | None:
    """The hot path of a till: one identifier, one query. Returns None for unknown or junk."""
    try:
        return customer_resolve(identifiers=[(kind, value, source)]).customer
    except InvalidIdentifier:
        return None


def customer_absorbed_ids(customer_id: int) -> list[int]:
    """Every record merged into this one, directly or through a chain."""
    found: list[int] = []
    frontier = [customer_id]
    while frontier:
        frontier = list(
            Customer.objects.filter(merged_into__in=frontier).values_list("pk", flat=True)
        )
        found += frontier
    return found


# ---- consents --------------------------------------------------------------------------------


def consent_state(*, customer: Customer) -> list[dict[str, Any]]:
    """Every (purpose, channel) with its current decision; never asked = not granted."""
    current = {
        (c.purpose, c.channel): c
        for c in Consent.objects.filter(customer=customer).select_related("event")
    }
    state = []
    for purpose in ConsentPurpose.values:
        for channel in ConsentChannel.values:
            consent = current.get((purpose, channel))
            state.append(
                {
                    "purpose": purpose,
                    "channel": channel,
                    "granted": bool(consent and consent.granted),
                    "wording_version": consent.event.wording_version if consent else None,
                    "changed_at": consent.event.occurred_at if consent else None,
                    "sales_channel": consent.event.sales_channel if consent else None,
                }
            )
    return state


def customer_has_consent(customer: Customer | int, purpose: str, channel: str) -> bool:
    """May we use this person's data for `purpose` over `channel`? For other apps (e.g.
    back-in-stock SMS: purpose="marketing", channel="sms"). No decision recorded = no consent.
    A merged record answers for its survivor; an erased one never consents."""
    customer_id = customer if isinstance(customer, int) else customer.pk
    row = Customer.objects.filter(pk=customer_id).values("status", "merged_into_id").first()
    hops = 0
    while row and row["merged_into_id"] and hops < MAX_MERGE_CHAIN:
        customer_id = row["merged_into_id"]
        row = Customer.objects.filter(pk=customer_id).values("status", "merged_into_id").first()
        hops += 1
    if row is None or row["status"] != CustomerStatus.ACTIVE:
        return False
    return Consent.objects.filter(
        customer_id=customer_id, purpose=purpose, channel=channel, granted=True
    ).exists()


def consent_latest_from_log(
    *, customer_ids: Iterable[int] | None = None
) -> dict[tuple, ConsentEvent]:
    """(customer_id, purpose, channel) -> latest ConsentEvent, computed from the log alone."""
    events = ConsentEvent.objects.order_by("occurred_at", "pk")
    if customer_ids is not None:
        events = events.filter(customer_id__in=list(customer_ids))
    latest: dict[tuple, ConsentEvent] = {}
    for event in events.iterator():
        latest[(event.customer_id, event.purpose, event.channel)] = event
    return latest


def consent_cache_mismatches() -> list[dict[str, Any]]:
    """Proof that the Consent table equals the log: every difference, empty when they agree."""
    from_log = {key: (event.granted, event.pk) for key, event in consent_latest_from_log().items()}
    cached = {
        (c.customer_id, c.purpose, c.channel): (c.granted, c.event_id)
        for c in Consent.objects.all()
    }
    return [
        {"key": key, "log": from_log.get(key), "cache": cached.get(key)}
        for key in sorted(set(from_log) | set(cached))
        if from_log.get(key) != cached.get(key)
    ]


# ---- unified history -------------------------------------------------------------------------


@dataclass
class HistoryPage:
    entries: list[HistoryEntry]
    next_cursor: str | None


def customer_history(
    *, customer: Customer, cursor: str | None = None, limit: int = 50
) -> HistoryPage:
    """Newest first, across every registered provider. Each provider returns its newest `limit`
    entries after the cursor; the pages are merged and cut at `limit` — so a page costs one
    query per provider, however long the history."""
    limit = max(1, min(limit, MAX_HISTORY_PAGE))
    before = None
    if cursor:
        try:
            before = HistoryCursor.decode(cursor)
        except (ValueError, TypeError, UnicodeDecodeError):
            raise InvalidInput(
                "This history cursor is not valid.", details={"cursor": ["invalid"]}
            ) from None
    streams = []
    for _name, provide in sorted(registry.history_providers.items()):
        entries = provide(customer, before=before, limit=limit + 1)
        streams.append(entries[: limit + 1])
    merged = list(heapq.merge(*streams, key=lambda e: e.cursor, reverse=True))
    page = merged[:limit]
    has_more = len(merged) > limit
    return HistoryPage(entries=page, next_cursor=page[-1].cursor.encode() if has_more else None)


# ---- GDPR export -----------------------------------------------------------------------------


def customer_export(*, customer: Customer) -> dict[str, Any]:
    """Everything held about the person, one section per registered export contributor."""
    return {
        name: contribute(customer)
        for name, contribute in sorted(registry.export_contributors.items())
    }


# ---- duplicate candidates --------------------------------------------------------------------


@dataclass(frozen=True)
class DuplicateCandidate:
    customer_a: int
    customer_b: int
    rule: str
    details: dict[str, str]


def _pairs(
    groups: dict[tuple, set[int]], rule: str, labels: Sequence[str]
) -> list[DuplicateCandidate]:
    """Each group of 2+ customers sharing a key gives pairs (oldest record, each other one)."""
    candidates = []
    for key, ids in sorted(groups.items()):
        if len(ids) < 2:
            continue
        ordered = sorted(ids)
        for other in ordered[1:]:
            candidates.append(
                DuplicateCandidate(ordered[0], other, rule, dict(zip(labels, key, strict=True)))
            )
    return candidates


def duplicate_candidates() -> list[DuplicateCandidate]:
    """Pairs of active customers that are probably one person. Rules (documented in
    docs/customers.md), all on the accent-free lower-case full name (`name_key`, 2 words min.):

    - `name_postcode`:   same name and an address with the same postcode;
    - `name_phone_tail`: same name and phones ending with the same 6 digits (a mistyped prefix);
    - `name_email_local`: same name and emails with the same local part (jean.dupont@ at two
      providers).
    Same email or phone is impossible: identifiers are unique.
    """
    active = Q(customer__status=CustomerStatus.ACTIVE, customer__name_key__contains=" ")
    groups: dict[str, dict[tuple, set[int]]] = {
        "name_postcode": {},
        "name_phone_tail": {},
        "name_email_local": {},
    }

    shared_names = (
        Customer.objects.filter(status=CustomerStatus.ACTIVE, name_key__contains=" ")
        .values("name_key")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .values_list("name_key", flat=True)
    )
    names = Q(customer__name_key__in=shared_names)
    for name, postcode, customer_id in (
        Address.objects.filter(active, names)
        .exclude(postcode="")
        .values_list("customer__name_key", "postcode", "customer_id")
    ):
        groups["name_postcode"].setdefault((name, postcode), set()).add(customer_id)
    phones = (
        CustomerIdentifier.objects.filter(active, names, kind=IdentifierKind.PHONE)
        .annotate(tail=Right("value_normalised", 6))
        .values_list("customer__name_key", "tail", "customer_id")
    )
    for name, tail, customer_id in phones:
        groups["name_phone_tail"].setdefault((name, tail), set()).add(customer_id)
    emails = (
        CustomerIdentifier.objects.filter(active, names, kind=IdentifierKind.EMAIL)
        .annotate(local=Substr("value_normalised", 1, StrIndex("value_normalised", Value("@")) - 1))
        .values_list("customer__name_key", "local", "customer_id")
    )
    for name, local, customer_id in emails:
        groups["name_email_local"].setdefault((name, local), set()).add(customer_id)

    labels = {
        "name_postcode": ("name", "postcode"),
        "name_phone_tail": ("name", "phone_ends_with"),
        "name_email_local": ("name", "email_local_part"),
    }
    found: dict[tuple[int, int], DuplicateCandidate] = {}
    for rule in ("name_postcode", "name_phone_tail", "name_email_local"):
        for candidate in _pairs(groups[rule], rule, labels[rule]):
            found.setdefault((candidate.customer_a, candidate.customer_b), candidate)
    return [found[pair] for pair in sorted(found)]


# ---- merges ----------------------------------------------------------------------------------


def merge_get(*, merge_id: int) -> CustomerMerge:
    """A merge with its two records and how many rows it moved. Raises MergeNotFound."""
    merge = (
        CustomerMerge.objects.select_related("survivor", "absorbed")
        .annotate(rows_moved=Count("rows"))
        .filter(pk=merge_id)
        .first()
    )
    if merge is None:
        raise MergeNotFound(details={"merge": [str(merge_id)]})
    return merge


def contact_on_file(*, customer: Customer, kind: str) -> str:
    """The customer's email or phone on file (the primary one first), normalised; "" if none."""
    identifier = (
        CustomerIdentifier.objects.filter(customer=customer, kind=kind)
        .order_by("-is_primary", "pk")
        .values_list("value_normalised", flat=True)
        .first()
    )
    return identifier or ""

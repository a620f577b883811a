"""Every write to the customer reference.

Locking: a service that changes a customer locks its row first (`SELECT … FOR UPDATE`; several
rows in primary-key order), and re-reads `merged_into` under the lock, so a change can never land
on a record that a concurrent merge has just absorbed.

Identify-or-create and concurrency: identifiers are unique in the database. Two channels that
send the same new email at the same second both try to insert it; the second insert waits for
the first transaction and then fails with IntegrityError. That attempt ran inside a savepoint,
which is rolled back (its half-created customer with it), and the attempt is replayed: it now
finds the identifier and attaches to that customer. Identifiers are inserted in one fixed order
(kind, source, value) so that two calls with overlapping identifiers cannot deadlock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from common.exceptions import InvalidInput
from customers.exceptions import (
    CustomerErased,
    CustomerNotFound,
    ErasureBlocked,
    IdentifierTaken,
    InvalidIdentifier,
    MergeBlocked,
    MergeRefused,
    NoUsableIdentifier,
    UnmergeRefused,
)
from customers.identifiers import (
    Identifier,
    customer_number_new,
    junk_rules,
    name_key,
    parse_identifier,
)
from customers.models import (
    Consent,
    ConsentChannel,
    ConsentEvent,
    ConsentPurpose,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    CustomerIdentifier,
    CustomerMerge,
    CustomerMergeRow,
    CustomerStatus,
    ErasureRecord,
    Language,
    MergeSuggestion,
    SuggestionStatus,
)
from customers.registry import registry
from customers.selectors import (
    consent_latest_from_log,
    customer_absorbed_ids,
    duplicate_candidates,
    identifier_rows,
    identifiers_parse,
    resolution_from,
)
from stores.models import Location

IDENTIFY_ATTEMPTS = 5
_MOVE_CHUNK = 1000
_UNSET: Any = object()


# ---- helpers ---------------------------------------------------------------------------------


def _lock(customer_ids: Iterable[int]) -> dict[int, Customer]:
    """Lock customer rows in primary-key order (no deadlock between two multi-row lockers)."""
    ids = sorted(set(customer_ids))
    rows = Customer.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    return {customer.pk: customer for customer in rows}


def customer_lock_live(customer: Customer | int) -> Customer:
    """Lock the record that holds the person now (following merges made meanwhile).

    Raises CustomerErased for an erased person."""
    customer_id = customer if isinstance(customer, int) else customer.pk
    for _ in range(50):
        locked = _lock([customer_id]).get(customer_id)
        if locked is None:
            raise CustomerNotFound()
        if locked.merged_into_id is None:
            if locked.status == CustomerStatus.ERASED:
                raise CustomerErased()
            return locked
        customer_id = locked.merged_into_id
    raise RuntimeError("merge chain too long")  # pragma: no cover


def _event(
    customer: Customer,
    kind: str,
    *,
    sales_channel: str = "",
    actor: str = "",
    data: dict | None = None,
    at=None,
) -> CustomerEvent:
    return CustomerEvent.objects.create(
        customer=customer,
        kind=kind,
        sales_channel=sales_channel,
        actor=actor[:120],
        data=data or {},
        occurred_at=at or timezone.now(),
    )


def _clean_name(value: str | None, field_name: str) -> str:
    value = (value or "").strip()
    if len(value) > 100:
        raise InvalidInput(
            f"{field_name} is longer than 100 characters.", details={field_name: ["too long"]}
        )
    return value


def _clean_language(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in Language.values:
        raise InvalidInput(
            f"Language must be one of {', '.join(Language.values)}.",
            details={"language": ["invalid"]},
        )
    return value


# ---- identify-or-create ----------------------------------------------------------------------


@dataclass
class IdentifyResult:
    customer: Customer
    created: bool
    matched_by: Identifier | None
    attached: list[Identifier] = field(default_factory=list)
    ignored: list[Identifier] = field(default_factory=list)
    conflicts: list[Identifier] = field(default_factory=list)  # owned by another customer
    suggestions: list[MergeSuggestion] = field(default_factory=list)


def customer_identify_or_create(
    *,
    identifiers: Sequence[tuple[str, str, str]],
    first_name: str = "",
    last_name: str = "",
    language: str | None = None,
    preferred_store: Location | None = None,
    sales_channel: str,
    actor: str,
    region: str | None = None,
) -> IdentifyResult:
    """Find the person these (kind, raw value, source) identifiers belong to, or create them.

    Matching (deterministic): placeholder values are dropped; the customer owning the
    highest-priority identifier wins (loyalty card > external id > email > phone, then by value).
    Identifiers the customer did not have yet, and that nobody else owns, are attached. Blank
    profile fields are filled in; filled ones are never overwritten. Identifiers owned by other
    customers are not moved: a MergeSuggestion is recorded per other customer instead.

    Raises InvalidIdentifier (malformed value; nothing is written) or NoUsableIdentifier.
    """
    usable, junk = identifiers_parse(identifiers, region=region)
    if not usable:
        raise NoUsableIdentifier(details={"ignored": [i.raw for i in junk]})
    first_name = _clean_name(first_name, "first_name")
    last_name = _clean_name(last_name, "last_name")
    language = _clean_language(language)
    for attempt in range(IDENTIFY_ATTEMPTS):
        try:
            with transaction.atomic():
                return _identify_once(
                    usable,
                    junk,
                    first_name=first_name,
                    last_name=last_name,
                    language=language,
                    preferred_store=preferred_store,
                    sales_channel=sales_channel,
                    actor=actor,
                )
        except IntegrityError:
            # Someone else inserted one of these identifiers (or drew the same customer number)
            # since we looked: the savepoint is gone, look again.
            if attempt == IDENTIFY_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _identify_once(
    usable: list[Identifier],
    junk: list[Identifier],
    *,
    first_name: str,
    last_name: str,
    language: str | None,
    preferred_store: Location | None,
    sales_channel: str,
    actor: str,
) -> IdentifyResult:
    rows = identifier_rows(usable)
    resolution = resolution_from(usable, rows, junk)
    if resolution.customer is None:
        customer = Customer.objects.create(
            number=customer_number_new(),
            first_name=first_name,
            last_name=last_name,
            name_key=name_key(first_name, last_name),
            language=language or Language.FR,
            preferred_store=preferred_store,
            created_channel=sales_channel,
        )
        _event(
            customer,
            CustomerEventKind.CREATED,
            sales_channel=sales_channel,
            actor=actor,
            data={"number": customer.number},
            at=customer.created_at,
        )
        result = IdentifyResult(customer=customer, created=True, matched_by=None, ignored=junk)
    else:
        customer = customer_lock_live(resolution.customer)
        rows = identifier_rows(usable)  # re-read under the lock: a merge may have moved some
        _fill_blanks(
            customer,
            first_name=first_name,
            last_name=last_name,
            language=language,
            preferred_store=preferred_store,
            sales_channel=sales_channel,
            actor=actor,
        )
        result = IdentifyResult(
            customer=customer, created=False, matched_by=resolution.matched_by, ignored=junk
        )

    owner = {(r.kind, r.source, r.value_normalised): r.customer_id for r in rows}
    result.conflicts = [i for i in usable if owner.get(i.key) not in (None, customer.pk)]
    new = [i for i in usable if i.key not in owner]
    result.attached = _attach(customer, new, sales_channel=sales_channel, actor=actor)

    others: dict[int, list[Identifier]] = defaultdict(list)
    for ident in result.conflicts:
        others[owner[ident.key]].append(ident)
    for other_id, idents in sorted(others.items()):
        result.suggestions.append(
            merge_suggestion_record(
                customer_ids=(customer.pk, other_id),
                rule="identify_conflict",
                details={
                    "identifiers": [i.as_dict() for i in idents],
                    "sales_channel": sales_channel,
                    "matched_by": result.matched_by.as_dict() if result.matched_by else None,
                },
            )
        )
    return result


def _attach(
    customer: Customer, identifiers: list[Identifier], *, sales_channel: str, actor: str
) -> list[Identifier]:
    if not identifiers:
        return []
    kinds_with_primary = set(
        CustomerIdentifier.objects.filter(customer=customer, is_primary=True).values_list(
            "kind", flat=True
        )
    )
    rows = []
    for ident in sorted(identifiers, key=lambda i: i.key):  # fixed order: no deadlock
        primary = ident.kind not in kinds_with_primary
        kinds_with_primary.add(ident.kind)
        rows.append(
            CustomerIdentifier(
                customer=customer,
                kind=ident.kind,
                source=ident.source,
                value_normalised=ident.value,
                value_raw=ident.raw[:254],
                is_primary=primary,
                created_channel=sales_channel,
            )
        )
    CustomerIdentifier.objects.bulk_create(rows)
    now = timezone.now()
    CustomerEvent.objects.bulk_create(
        [
            CustomerEvent(
                customer=customer,
                kind=CustomerEventKind.IDENTIFIER_ADDED,
                sales_channel=sales_channel,
                actor=actor[:120],
                data=ident.as_dict(),
                occurred_at=now,
            )
            for ident in identifiers
        ]
    )
    return list(identifiers)


def _fill_blanks(
    customer: Customer,
    *,
    first_name: str,
    last_name: str,
    language: str | None,
    preferred_store: Location | None,
    sales_channel: str,
    actor: str,
) -> None:
    changes: dict[str, Any] = {}
    if first_name and not customer.first_name:
        changes["first_name"] = first_name
    if last_name and not customer.last_name:
        changes["last_name"] = last_name
    if preferred_store is not None and customer.preferred_store_id is None:
        changes["preferred_store"] = preferred_store
    if changes:
        _apply_profile(customer, changes, sales_channel=sales_channel, actor=actor)


def _apply_profile(customer: Customer, changes: dict[str, Any], *, sales_channel: str, actor: str):
    for name, value in changes.items():
        setattr(customer, name, value)
    customer.name_key = name_key(customer.first_name, customer.last_name)
    customer.save(update_fields=[*changes, "name_key", "updated_at"])
    _event(
        customer,
        CustomerEventKind.PROFILE_UPDATED,
        sales_channel=sales_channel,
        actor=actor,
        data={"fields": sorted(changes)},
    )


# ---- profile and identifiers -----------------------------------------------------------------


def customer_update(
    *,
    customer: Customer,
    sales_channel: str,
    actor: str,
    first_name: str = _UNSET,
    last_name: str = _UNSET,
    language: str = _UNSET,
    preferred_store: Location | None = _UNSET,
) -> Customer:
    """Change profile fields (only those given). Raises CustomerErased, InvalidInput."""
    changes: dict[str, Any] = {}
    if first_name is not _UNSET:
        changes["first_name"] = _clean_name(first_name, "first_name")
    if last_name is not _UNSET:
        changes["last_name"] = _clean_name(last_name, "last_name")
    if language is not _UNSET:
        cleaned = _clean_language(language)
        if cleaned is None:
            raise InvalidInput("Language may not be empty.", details={"language": ["required"]})
        changes["language"] = cleaned
    if preferred_store is not _UNSET:
        changes["preferred_store"] = preferred_store
    with transaction.atomic():
        customer = customer_lock_live(customer)
        changes = {k: v for k, v in changes.items() if getattr(customer, k) != v}
        if changes:
            _apply_profile(customer, changes, sales_channel=sales_channel, actor=actor)
    return customer


def identifier_add(
    *,
    customer: Customer,
    kind: str,
    value: str,
    source: str = "",
    is_primary: bool = False,
    sales_channel: str,
    actor: str,
) -> CustomerIdentifier:
    """Attach an identifier. Adding one the customer already has returns it (a retry is safe).

    Raises InvalidIdentifier (malformed or a placeholder value), IdentifierTaken (owned by
    someone else: the other customer is not named, it is their personal data)."""
    ident = parse_identifier(kind, value, source=source)
    if junk_rules().is_junk(kind, ident.raw, ident.value):
        raise InvalidIdentifier(
            f"{value!r} is a placeholder value, not a real {kind}.", details={kind: ["placeholder"]}
        )
    with transaction.atomic():
        customer = customer_lock_live(customer)
        existing = CustomerIdentifier.objects.filter(
            kind=ident.kind, source=ident.source, value_normalised=ident.value
        ).first()
        if existing is not None:
            if existing.customer_id != customer.pk:
                raise IdentifierTaken(details={kind: ["taken"]})
            row = existing
        else:
            try:
                with transaction.atomic():
                    _attach(customer, [ident], sales_channel=sales_channel, actor=actor)
            except IntegrityError:
                raise IdentifierTaken(details={kind: ["taken"]}) from None
            row = CustomerIdentifier.objects.get(
                kind=ident.kind, source=ident.source, value_normalised=ident.value
            )
        if is_primary and not row.is_primary:
            CustomerIdentifier.objects.filter(
                customer=customer, kind=row.kind, is_primary=True
            ).update(is_primary=False)
            row.is_primary = True
            row.save(update_fields=["is_primary"])
    return row


def identifier_remove(
    *, customer: Customer, identifier_id: int, sales_channel: str, actor: str
) -> None:
    """Detach (delete) an identifier so it may be used by someone else. If it was the primary one
    of its kind, the oldest remaining one of that kind becomes primary."""
    with transaction.atomic():
        customer = customer_lock_live(customer)
        row = CustomerIdentifier.objects.filter(pk=identifier_id, customer=customer).first()
        if row is None:
            raise CustomerNotFound(
                "This customer has no such identifier.",
                details={"identifier": [str(identifier_id)]},
            )
        row.delete()
        if row.is_primary:
            heir = (
                CustomerIdentifier.objects.filter(customer=customer, kind=row.kind)
                .order_by("created_at", "pk")
                .first()
            )
            if heir is not None:
                CustomerIdentifier.objects.filter(pk=heir.pk).update(is_primary=True)
        _event(
            customer,
            CustomerEventKind.IDENTIFIER_REMOVED,
            sales_channel=sales_channel,
            actor=actor,
            data={"kind": row.kind, "source": row.source, "value": row.value_normalised},
        )


# ---- consents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentChange:
    purpose: str
    channel: str
    granted: bool
    wording_version: str


def consent_record(
    *, customer: Customer, changes: Sequence[ConsentChange], sales_channel: str, actor: str
) -> list[ConsentEvent]:
    """Append one ConsentEvent per change and update the current state in the same transaction.
    The customer row is locked, so events of one person are totally ordered."""
    if not changes:
        raise InvalidInput("Send at least one consent change.", details={"changes": ["required"]})
    for change in changes:
        if change.purpose not in ConsentPurpose.values:
            raise InvalidInput(
                f"Unknown purpose {change.purpose!r}.", details={"purpose": ["invalid"]}
            )
        if change.channel not in ConsentChannel.values:
            raise InvalidInput(
                f"Unknown channel {change.channel!r}.", details={"channel": ["invalid"]}
            )
        if not isinstance(change.granted, bool):
            raise InvalidInput("`granted` is true or false.", details={"granted": ["invalid"]})
        if not (change.wording_version or "").strip() or len(change.wording_version) > 40:
            raise InvalidInput(
                "Say which wording the person saw (`wording_version`, up to 40 characters).",
                details={"wording_version": ["required"]},
            )
    with transaction.atomic():
        customer = customer_lock_live(customer)
        now = timezone.now()
        events = []
        for change in changes:
            event = ConsentEvent.objects.create(
                customer=customer,
                purpose=change.purpose,
                channel=change.channel,
                granted=change.granted,
                wording_version=change.wording_version.strip(),
                sales_channel=sales_channel,
                actor=actor[:120],
                occurred_at=now,
            )
            Consent.objects.update_or_create(
                customer=customer,
                purpose=change.purpose,
                channel=change.channel,
                defaults={"granted": change.granted, "event": event},
            )
            events.append(event)
    return events


def consent_cache_rebuild(*, customer_ids: Iterable[int]) -> None:
    """Recompute the current consent state of these customers from their logs."""
    ids = list(customer_ids)
    Consent.objects.filter(customer_id__in=ids).delete()
    Consent.objects.bulk_create(
        [
            Consent(
                customer_id=customer_id,
                purpose=purpose,
                channel=channel,
                granted=event.granted,
                event=event,
            )
            for (customer_id, purpose, channel), event in consent_latest_from_log(
                customer_ids=ids
            ).items()
        ]
    )


# ---- merge suggestions -----------------------------------------------------------------------


def merge_suggestion_record(
    *, customer_ids: tuple[int, int], rule: str, details: dict | None = None
) -> MergeSuggestion:
    """One open suggestion per pair: recording it again returns the open one."""
    a, b = sorted(customer_ids)
    if a == b:
        raise InvalidInput("A suggestion needs two different customers.")
    existing = MergeSuggestion.objects.filter(
        customer_a_id=a, customer_b_id=b, status=SuggestionStatus.OPEN
    ).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            return MergeSuggestion.objects.create(
                customer_a_id=a, customer_b_id=b, rule=rule, details=details or {}
            )
    except IntegrityError:  # recorded by a concurrent call
        return MergeSuggestion.objects.get(
            customer_a_id=a, customer_b_id=b, status=SuggestionStatus.OPEN
        )


def merge_suggestion_dismiss(*, suggestion: MergeSuggestion, actor: str) -> MergeSuggestion:
    with transaction.atomic():
        suggestion = MergeSuggestion.objects.select_for_update().get(pk=suggestion.pk)
        if suggestion.status != SuggestionStatus.OPEN:
            raise MergeRefused("This suggestion is already closed.")
        suggestion.status = SuggestionStatus.DISMISSED
        suggestion.resolved_at = timezone.now()
        suggestion.resolved_by = actor[:120]
        suggestion.save(update_fields=["status", "resolved_at", "resolved_by"])
    return suggestion


def duplicate_suggestions_refresh() -> int:
    """Record a suggestion for each duplicate candidate never suggested before (a pair customer
    service dismissed is not suggested again). Returns how many were created."""
    known = set(MergeSuggestion.objects.values_list("customer_a_id", "customer_b_id"))
    created = 0
    for candidate in duplicate_candidates():
        if (candidate.customer_a, candidate.customer_b) in known:
            continue
        merge_suggestion_record(
            customer_ids=(candidate.customer_a, candidate.customer_b),
            rule=candidate.rule,
            details=candidate.details,
        )
        created += 1
    return created


# ---- merge and unmerge -----------------------------------------------------------------------


def merge_blockers(*, survivor: Customer, absorbed: Customer) -> list[str]:
    return [
        reason
        for _, check in sorted(registry.merge_blockers.items())
        for reason in check(survivor, absorbed)
    ]


def customer_merge(
    *,
    survivor: Customer,
    absorbed: Customer,
    actor: str,
    reason: str = "",
    automatic: bool = False,
    force: bool = False,
) -> CustomerMerge:
    """Make `absorbed` part of `survivor`, in one transaction.

    Merge handlers run first (both records still hold their own rows), then every registered
    customer link is moved, each moved row recorded in the journal; `absorbed` then points to
    `survivor` (its reference and number keep resolving). Blockers (two loyalty cards, two
    e-commerce accounts, or any registered blocker) refuse the merge unless a staff member
    forces it with a reason; an automatic merge can never be forced.

    Raises MergeRefused (same customer, erased, already merged), MergeBlocked.
    """
    if survivor.pk == absorbed.pk:
        raise MergeRefused(
            "A customer cannot be merged into itself.", details={"absorbed": ["same as survivor"]}
        )
    reason = (reason or "").strip()
    with transaction.atomic():
        locked = _lock([survivor.pk, absorbed.pk])
        survivor, absorbed = locked[survivor.pk], locked[absorbed.pk]
        _mergeable(survivor, absorbed)
        blockers = merge_blockers(survivor=survivor, absorbed=absorbed)
        if blockers and (automatic or not force):
            raise MergeBlocked(
                " ".join([str(MergeBlocked.default_message), *blockers]),
                details={"blockers": blockers},
            )
        if blockers and not reason:
            raise InvalidInput(
                "A forced merge needs a written reason.", details={"reason": ["required"]}
            )

        now = timezone.now()
        merge = CustomerMerge.objects.create(
            survivor=survivor,
            absorbed=absorbed,
            actor=actor[:120],
            reason=reason,
            automatic=automatic,
            forced=bool(blockers),
            blockers_overridden=blockers,
            merged_at=now,
        )
        merge.handler_results = {
            name: handler.merge(survivor, absorbed)
            for name, handler in registry.merge_handlers.items()
        }
        journal = _links_move(merge, survivor, absorbed)
        merge.save(update_fields=["handler_results"])

        absorbed.status = CustomerStatus.MERGED
        absorbed.merged_into = survivor
        absorbed.save(update_fields=["status", "merged_into", "updated_at"])
        MergeSuggestion.objects.filter(
            customer_a_id=min(survivor.pk, absorbed.pk),
            customer_b_id=max(survivor.pk, absorbed.pk),
            status=SuggestionStatus.OPEN,
        ).update(status=SuggestionStatus.MERGED, resolved_at=now, resolved_by=actor[:120])
        _event(
            survivor,
            CustomerEventKind.MERGED,
            actor=actor,
            at=now,
            data={
                "merge": merge.pk,
                "absorbed": str(absorbed.reference),
                "absorbed_number": absorbed.number,
                "rows": len(journal),
            },
        )
    return merge


def _mergeable(survivor: Customer, absorbed: Customer) -> None:
    for role, customer in (("survivor", survivor), ("absorbed", absorbed)):
        if customer.status == CustomerStatus.ERASED:
            raise MergeRefused(f"The {role} customer was erased.", details={role: ["erased"]})
        if customer.status == CustomerStatus.MERGED:
            raise MergeRefused(
                f"The {role} customer was already merged into another one; "
                "merge its survivor instead.",
                details={role: ["merged"]},
            )


def _links_move(
    merge: CustomerMerge, survivor: Customer, absorbed: Customer
) -> list[CustomerMergeRow]:
    """Move every registered link of `absorbed` to `survivor`, each moved row journaled (so an
    unmerge can move exactly those back)."""
    journal = []
    for link in registry.links.values():
        manager = link.model._base_manager
        pks = list(manager.filter(**{link.field_name: absorbed.pk}).values_list("pk", flat=True))
        for start in range(0, len(pks), _MOVE_CHUNK):
            chunk = pks[start : start + _MOVE_CHUNK]
            manager.filter(pk__in=chunk).update(**{link.field_name: survivor.pk})
        journal += [
            CustomerMergeRow(
                merge=merge, model_label=link.label, object_pk=str(pk), field_name=link.field_name
            )
            for pk in pks
        ]
    CustomerMergeRow.objects.bulk_create(journal, batch_size=_MOVE_CHUNK)
    return journal


def customer_unmerge(*, merge: CustomerMerge, actor: str, reason: str) -> CustomerMerge:
    """Split a mistaken merge: every journalled row that still points to the survivor goes back
    to the absorbed customer, handlers reverse what they did, and the absorbed record is active
    again. Rows created on the survivor after the merge stay there.

    Refused when already undone, or when the survivor has since been merged or erased (undo the
    later merge first)."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why the merge is undone.", details={"reason": ["required"]})
    with transaction.atomic():
        merge = CustomerMerge.objects.select_for_update().get(pk=merge.pk)
        if merge.unmerged_at is not None:
            raise UnmergeRefused("This merge was already undone.")
        locked = _lock([merge.survivor_id, merge.absorbed_id])
        survivor, absorbed = locked[merge.survivor_id], locked[merge.absorbed_id]
        if survivor.status != CustomerStatus.ACTIVE:
            raise UnmergeRefused(
                "The survivor has since been merged into another record or erased; "
                "undo that first.",
                details={"survivor": [survivor.status]},
            )
        if absorbed.merged_into_id != survivor.pk:  # pragma: no cover - guarded by the line above
            raise UnmergeRefused("The absorbed record no longer points to the survivor.")

        grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
        for label, pk, field_name in merge.rows.values_list(
            "model_label", "object_pk", "field_name"
        ):
            grouped[(label, field_name)].append(pk)
        moved_back = 0
        for (label, field_name), pks in grouped.items():
            manager = apps.get_model(label)._base_manager
            for start in range(0, len(pks), _MOVE_CHUNK):
                moved_back += manager.filter(
                    pk__in=pks[start : start + _MOVE_CHUNK], **{field_name: survivor.pk}
                ).update(**{field_name: absorbed.pk})
        for name, handler in reversed(list(registry.merge_handlers.items())):
            if name in merge.handler_results:
                handler.unmerge(survivor, absorbed, merge.handler_results[name])

        now = timezone.now()
        absorbed.status = CustomerStatus.ACTIVE
        absorbed.merged_into = None
        absorbed.save(update_fields=["status", "merged_into", "updated_at"])
        merge.unmerged_at, merge.unmerged_by, merge.unmerge_reason = now, actor[:120], reason
        merge.save(update_fields=["unmerged_at", "unmerged_by", "unmerge_reason"])
        for customer, other in ((survivor, absorbed), (absorbed, survivor)):
            _event(
                customer,
                CustomerEventKind.UNMERGED,
                actor=actor,
                at=now,
                data={
                    "merge": merge.pk,
                    "other": str(other.reference),
                    "rows_moved_back": moved_back,
                },
            )
    return merge


# ---- erasure ---------------------------------------------------------------------------------


def erasure_blockers(*, customer: Customer) -> list[str]:
    return [
        reason
        for _, check in sorted(registry.erasure_blockers.items())
        for reason in check(customer)
    ]


def customer_erase(
    *, customer: Customer, actor: str, reason: str, sales_channel: str = ""
) -> ErasureRecord:
    """Right to erasure: run every erasure handler (identifiers freed, addresses and history
    deleted, the consent log kept and closed by withdrawals; other apps anonymise theirs, and
    say in a "warning" what the person loses, e.g. forfeited points), blank the profile of this
    record and of every record merged into it, and keep the row so that orders, payments and
    ledger movements stay linked to an anonymous customer. Refused with the blockers' reasons
    (e.g. an open order, store credit left)."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(
            "Say why the customer is erased (e.g. 'GDPR request #123').",
            details={"reason": ["required"]},
        )
    with transaction.atomic():
        customer = customer_lock_live(customer)
        blockers = erasure_blockers(customer=customer)
        if blockers:
            raise ErasureBlocked(details={"blockers": blockers})
        summary = {name: erase(customer) for name, erase in registry.erasure_handlers.items()}
        now = timezone.now()
        absorbed_ids = customer_absorbed_ids(customer.pk)
        Customer.objects.filter(pk__in=[customer.pk, *absorbed_ids]).update(
            first_name="", last_name="", name_key="", preferred_store=None, updated_at=now
        )
        Customer.objects.filter(pk=customer.pk).update(status=CustomerStatus.ERASED, erased_at=now)
        # suggestions quote the identifiers that clashed: personal data, and moot now
        suggestions, _ = MergeSuggestion.objects.filter(
            Q(customer_a__in=[customer.pk, *absorbed_ids])
            | Q(customer_b__in=[customer.pk, *absorbed_ids])
        ).delete()
        summary["customers.merged_records"] = {"anonymised": len(absorbed_ids)}
        # What the person loses with the erasure, said in the answer (a handler's "warning").
        summary["warnings"] = [
            part["warning"]
            for part in summary.values()
            if isinstance(part, dict) and part.get("warning")
        ]
        summary["customers.merge_suggestions"] = {"deleted": suggestions}
        record = ErasureRecord.objects.create(
            customer=customer,
            actor=actor[:120],
            reason=reason,
            sales_channel=sales_channel,
            summary=summary,
            erased_at=now,
        )
    return record

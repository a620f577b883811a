"""POS integration: signed, idempotent inbound events that keep the tills and the ledger one truth.

Intake (`pos_event_receive`), in this order, so that a refused request changes nothing:
1. the integration must exist and be active (404);
2. the body must fit `POS_MAX_BODY_BYTES` (413, recorded as rejected);
3. the HMAC-SHA256 signature over "<timestamp>.<raw body>" must match the current or the previous
   secret within the tolerance window (401, nothing recorded: an unsigned caller cannot write);
4. the JSON, the envelope and the event's data must be valid, the store one of the
   integration's, the till registered there, every SKU known (4xx, recorded as rejected with the
   reason: the admin shows what a till sent wrong);
5. the event is inserted in the inbox under the unique (integration, POS event id): a second
   delivery of the same id is acknowledged as a duplicate and has no effect.
It answers 202 at once; a Celery task applies the event after commit (`pos_event_process`).

Processing is idempotent too: every stock change carries the key "pos:<integration>:<event id>",
so a replayed event cannot move stock twice. Events are dated by the till's clock; the ledger
absorbs a sale or return dated before a count already recorded (see
`inventory.services.ledger.absorbed_by_later_counts`), so a backlog replayed after an outage, in any
order, ends with the same stock as live delivery.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby

from django.conf import settings
from django.core.cache import caches
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy
from rest_framework import serializers as drf_serializers

from common.api import validation_details
from common.exceptions import Conflict, DomainError, InvalidInput, NotFound
from common.money import Money
from common.parsing import MalformedJson, strict_json_loads
from common.signing import verify_signature
from common.tasks import task_named
from customers.exceptions import NoUsableIdentifier
from customers.selectors import customer_resolve
from customers.services import ConsentChange, consent_record, customer_identify_or_create
from integrations.models import (
    PosEvent,
    PosEventStatus,
    PosEventType,
    PosIntegration,
    PosTill,
    StoreReceipt,
)
from integrations.pos_serializers import (
    STORED_VALUE_TENDERS,
    CustomerLookupSerializer,
    EnvelopeSerializer,
)
from inventory import services as stock
from inventory.exceptions import UnknownSku
from inventory.models import Sku, TillDiscrepancy
from loyalty.coupons import offers_for
from loyalty.selectors import account_get, points_summary
from loyalty.services import (
    PurchaseLine,
    ReturnedLine,
    points_earn_for_source,
    points_reverse_for_return,
)
from orders.models import Order
from orders.services import ReturnLineRequest, order_handover, order_return
from payments.services import stored_value as sv
from stores.models import Location

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Omnistock-Signature"
local_cache = caches["local"]


class UnknownIntegration(NotFound):
    code = "unknown_integration"
    default_message = gettext_lazy("No active POS integration at this address.")


class PayloadTooLarge(DomainError):
    code = "request_too_large"
    http_status = 413
    default_message = gettext_lazy("The event is larger than this endpoint accepts.")


class MalformedEvent(InvalidInput):
    code = "malformed_request"
    default_message = gettext_lazy("The body is not valid JSON.")


class StoreNotInIntegration(DomainError):
    code = "store_not_in_integration"
    http_status = 403
    default_message = gettext_lazy("This integration may not post events for this store.")


class UnknownStore(NotFound):
    code = "unknown_location"
    default_message = gettext_lazy("Unknown store.")


class UnknownTill(NotFound):
    code = "unknown_till"
    default_message = gettext_lazy("This till is not registered for this store.")


class EventNotReplayable(Conflict):
    code = "event_not_replayable"
    default_message = gettext_lazy("Only a failed event can be replayed.")


def max_body_bytes() -> int:
    return getattr(settings, "POS_MAX_BODY_BYTES", 256 * 1024)


@dataclass(frozen=True)
class IntakeResult:
    status_code: int
    body: dict


def integration_get(*, slug: str) -> PosIntegration:
    integration = PosIntegration.objects.filter(slug=slug, is_active=True).first()
    if integration is None:
        raise UnknownIntegration()
    return integration


def verify_request(*, integration: PosIntegration, raw_body: bytes, signature: str | None) -> None:
    verify_signature(
        header=signature,
        body=raw_body,
        secrets=integration.valid_secrets,
        tolerance_seconds=settings.OMNISTOCK["WEBHOOK_SIGNATURE_TOLERANCE_SECONDS"],
    )


def _reject(
    integration: PosIntegration,
    error: DomainError,
    *,
    raw_body: bytes = b"",
    payload=None,
    envelope: dict | None = None,
) -> None:
    """Record a refused event (nothing applied) so staff can see what the till sent."""
    _rejected_event(
        integration, error, raw_body=raw_body, payload=payload, envelope=envelope
    ).save()


def _rejected_event(
    integration: PosIntegration,
    error: DomainError,
    *,
    raw_body: bytes = b"",
    payload=None,
    envelope: dict | None = None,
) -> PosEvent:
    if envelope is None and isinstance(payload, dict):
        envelope = payload
    envelope = envelope or {}
    if not raw_body and payload is not None:
        raw_body = json.dumps(payload).encode()
    return PosEvent(
        integration=integration,
        event_id=None,
        event_type=str(envelope.get("type", ""))[:20],
        till=str(envelope.get("till", ""))[:40],
        payload=payload if isinstance(payload, dict) else None,
        # Kept for staff to read; NUL cannot be stored in a PostgreSQL text column.
        raw_body=raw_body[:10_000].decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
        status=PosEventStatus.REJECTED,
        error=f"{error.code}: {error.message} {error.details or ''}"[:500],
    )


def _validate_event(payload, validator: EnvelopeSerializer | None = None) -> dict:
    """One parsed event's envelope and data, validated (InvalidInput with per-field details if
    not). A batch passes one `validator` for all its events (DRF copies a serializer's fields
    on creation: one instance per event cost three times as much)."""
    if not isinstance(payload, dict):
        raise InvalidInput("The event is invalid.", details={"body": ["not an object"]})
    try:
        return (validator or EnvelopeSerializer()).run_validation(payload)
    except drf_serializers.ValidationError as exc:
        details = validation_details(exc.detail)
        raise InvalidInput("The event is invalid.", details=details) from None


def _admit(integration: PosIntegration, payload) -> tuple[dict, Location]:
    """Validate one parsed event (envelope, data, store, till, SKUs). Returns (event, location);
    raises DomainError with what is wrong."""
    event = _validate_event(payload)
    return event, _check_references(integration, event)


def _parse(integration: PosIntegration, raw_body: bytes, signature, size: int, limit: int):
    """The checks every POST passes before its events are looked at: size, signature, JSON."""
    if size > limit:
        error = PayloadTooLarge(f"The body is {size} bytes; the limit is {limit}.")
        _reject(integration, error)
        raise error
    verify_request(integration=integration, raw_body=raw_body, signature=signature)
    try:
        return strict_json_loads(raw_body)
    except MalformedJson as exc:
        error = MalformedEvent(f"{MalformedEvent.default_message} ({exc})")
        _reject(integration, error, raw_body=raw_body)
        raise error from None


def pos_event_receive(
    *,
    integration: PosIntegration,
    raw_body: bytes,
    signature: str | None,
    content_length: int | None = None,
) -> IntakeResult:
    """Take one event from a till. Raises DomainError (4xx) when it is refused."""
    size = content_length if content_length is not None else len(raw_body)
    payload = _parse(integration, raw_body, signature, size, max_body_bytes())
    try:
        event, location = _admit(integration, payload)
    except DomainError as error:
        envelope = payload if isinstance(payload, dict) else None
        _reject(integration, error, raw_body=raw_body, payload=payload, envelope=envelope)
        raise

    try:
        with transaction.atomic():
            inbox = _inbox_event(integration, event, location, payload)
            inbox.save(force_insert=True)
            transaction.on_commit(lambda: _schedule(inbox.pk), robust=True)
    except IntegrityError:
        first = _first_copy(integration, event, location)
        return IntakeResult(
            200,
            {
                "status": "duplicate",
                "event": first.pk,
                "event_id": first.event_id,
                "processing": first.status,
            },
        )
    return IntakeResult(202, {"status": "accepted", "event": inbox.pk, "event_id": inbox.event_id})


def max_batch_body_bytes() -> int:
    return getattr(settings, "POS_MAX_BATCH_BODY_BYTES", 1024 * 1024)


def max_batch_events() -> int:
    return getattr(settings, "POS_MAX_BATCH_EVENTS", 500)


def pos_events_receive_batch(
    *,
    integration: PosIntegration,
    raw_body: bytes,
    signature: str | None,
    content_length: int | None = None,
) -> IntakeResult:
    """Take many events in one signed request: a till's backlog after an outage, or a busy
    store's last seconds. Body: {"events": [<event>, …]}.

    The request as a whole is refused (4xx, nothing recorded but the rejection) when it is too
    large, unsigned, not JSON, or not such a list. Otherwise each event is judged alone, exactly
    as the single endpoint would: accepted, duplicate (its id was seen before, or earlier in
    this batch) or rejected with the reason (stored as rejected). One task applies the accepted
    ones, in the POS's time order.
    """
    size = content_length if content_length is not None else len(raw_body)
    payload = _parse(integration, raw_body, signature, size, max_batch_body_bytes())
    items = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= max_batch_events():
        error = InvalidInput(
            f'The body must be {{"events": [...]}} with 1 to {max_batch_events()} events.',
            details={"events": [f"a list of 1 to {max_batch_events()} events"]},
        )
        _reject(integration, error, raw_body=raw_body)
        raise error

    results, admitted, rejected = _judge_batch(integration, items)
    if rejected:
        PosEvent.objects.bulk_create(rejected)
    inserted = _inbox_insert(integration, admitted.values()) if admitted else {}
    if inserted:
        pks = sorted(inserted.values())
        transaction.on_commit(lambda: _schedule_batch(pks), robust=True)
    _mark_duplicates(integration, results, inserted, admitted)
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for result in results:
        counts[result["status"]] += 1
    return IntakeResult(
        200,
        {
            "accepted": counts["accepted"],
            "duplicates": counts["duplicate"],
            "rejected": counts["rejected"],
            "results": results,
        },
    )


def _judge_batch(integration: PosIntegration, items: list):
    """Each event of a batch judged alone, exactly as the single endpoint would: accepted,
    duplicate (earlier in this batch) or rejected with the reason. Returns (results, admitted
    {event id: (index, event, location, item)}, rejected PosEvent rows)."""
    # Every event validated first, then one SKU lookup for the batch on the validated codes,
    # then each event's references: the same judgement as the single endpoint, in 3 queries.
    validator = EnvelopeSerializer()
    judged: list[tuple[object, dict | None, DomainError | None]] = []
    for item in items:
        try:
            judged.append((item, _validate_event(item, validator), None))
        except DomainError as error:
            judged.append((item, None, error))
    codes = {
        line["sku"] for _, event, _ in judged if event for line in event["data"].get("lines", [])
    }
    known_skus = set(Sku.objects.filter(code__in=codes).values_list("code", flat=True))
    results: list[dict] = []
    admitted: dict[str, tuple[int, dict, Location, dict]] = {}  # event id → (index, …)
    rejected: list[PosEvent] = []
    receipts: dict[tuple, str] = {}  # (store, till, receipt) of a sale → its event id
    for index, (item, event, error) in enumerate(judged):
        location = None
        if event is not None:
            try:
                location = _check_references(integration, event, known_skus)
            except DomainError as exc:
                error = exc
        if error is not None:
            given_id = item.get("event_id") if isinstance(item, dict) else None
            results.append(
                {
                    "index": index,
                    "event_id": None if given_id is None else str(given_id),
                    "status": "rejected",
                    "error": {
                        "code": error.code,
                        "message": error.message,
                        "details": error.details,
                    },
                }
            )
            rejected.append(_rejected_event(integration, error, payload=item))
            continue
        if event["event_id"] in admitted:
            results.append({"index": index, "event_id": event["event_id"], "status": "duplicate"})
            continue
        receipt = _receipt_key(event, location)
        if receipt in receipts:  # the same sale again under another id, in this batch
            results.append(
                {
                    "index": index,
                    "event_id": event["event_id"],
                    "status": "duplicate",
                    "same_as": receipts[receipt],
                }
            )
            continue
        if receipt is not None:
            receipts[receipt] = event["event_id"]
        admitted[event["event_id"]] = (index, event, location, item)
        results.append({"index": index, "event_id": event["event_id"], "status": "accepted"})

    return results, admitted, rejected


def _mark_duplicates(
    integration: PosIntegration, results: list[dict], inserted: dict[str, int], admitted: dict
) -> None:
    """Accepted events the inbox had already (the same id, or a sale of the same store, till and
    receipt, sent before) or that this batch brought twice are duplicates; each result names
    the inbox row of the first copy."""
    seen = {
        event_id: (pk, status)
        for event_id, pk, status in PosEvent.objects.filter(
            integration=integration, event_id__in=set(admitted) - set(inserted)
        ).values_list("event_id", "pk", "status")
    }

    def first_copy(event_id: str) -> dict:
        if event_id in inserted:  # brought by this batch
            return {"event": inserted[event_id]}
        if event_id not in seen:  # its receipt was sold before, under another id (rare)
            _, event, location, _ = admitted[event_id]
            first = _first_copy(integration, event, location)
            seen[event_id] = (first.pk, first.status)
        pk, status = seen[event_id]
        return {"event": pk, "processing": status}

    for result in results:
        if result["status"] == "rejected":
            continue
        if result["status"] == "accepted" and result["event_id"] in inserted:
            result["event"] = inserted[result["event_id"]]
            continue
        result["status"] = "duplicate"
        result.update(first_copy(result.pop("same_as", result["event_id"])))


def _receipt_key(event: dict, location) -> tuple | None:
    """What makes a sale one sale, whatever event id it comes under: store, till, receipt."""
    if event["type"] != PosEventType.SALE:
        return None
    return (location.pk, event["till"], event["data"]["receipt"])


def _first_copy(integration: PosIntegration, event: dict, location) -> PosEvent:
    """The inbox row an admitted event repeats: the same event id, or the same sale."""
    same = Q(event_id=event["event_id"])
    if (receipt := _receipt_key(event, location)) is not None:
        store_id, till, number = receipt
        same |= Q(
            event_type=PosEventType.SALE, location_id=store_id, till=till, receipt_number=number
        )
    return PosEvent.objects.filter(integration=integration).filter(same).order_by("pk").first()


def _inbox_event(integration: PosIntegration, event: dict, location, payload) -> PosEvent:
    """An admitted event as its inbox row (received, not applied yet)."""
    return PosEvent(
        integration=integration,
        event_id=event["event_id"],
        event_type=event["type"],
        location=location,
        till=event["till"],
        receipt_number=event["data"]["receipt"] if event["type"] == PosEventType.SALE else "",
        occurred_at=event["occurred_at"],
        payload=payload,
        status=PosEventStatus.RECEIVED,
    )


def _inbox_insert(integration: PosIntegration, admitted) -> dict[str, int]:
    """Insert admitted events in the inbox, skipping ids already there. Returns {event id:
    inbox pk} of the rows this call inserted. A concurrent request that inserts one of the same
    ids first makes this attempt fail on the unique key: it is rolled back and made again, and
    then finds that id (a duplicate)."""
    admitted = list(admitted)
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                return _inbox_insert_new(integration, admitted)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _inbox_insert_new(integration: PosIntegration, admitted) -> dict[str, int]:
    seen = set(
        PosEvent.objects.filter(
            integration=integration, event_id__in=[event["event_id"] for _, event, _, _ in admitted]
        ).values_list("event_id", flat=True)
    )
    receipts = {_receipt_key(event, location) for _, event, location, _ in admitted} - {None}
    sold = set(
        PosEvent.objects.filter(
            integration=integration,
            event_type=PosEventType.SALE,
            receipt_number__in={number for _, _, number in receipts},
        ).values_list("location_id", "till", "receipt_number")
    )
    created = PosEvent.objects.bulk_create(
        [
            _inbox_event(integration, event, location, payload)
            for _, event, location, payload in admitted
            if event["event_id"] not in seen and _receipt_key(event, location) not in sold
        ]
    )
    return {event.event_id: event.pk for event in created}


# After commit, robust: a publish that fails (the broker is down) leaves the event `received`,
# and the beat's pending sweep (pos_events_process_pending_task) applies it later. The till was
# answered 202: its event is stored.
def _schedule(inbox_pk: int) -> None:
    task_named("integrations.tasks.pos_event_process_task").delay(inbox_pk)


def _schedule_batch(inbox_pks: list[int]) -> None:
    task_named("integrations.tasks.pos_events_process_batch_task").delay(inbox_pks)


_SCOPE_SECONDS = 10


def _integration_scope(integration: PosIntegration) -> dict:
    """Which stores (by code) and tills an integration may post for. Kept in process memory for
    a few seconds: the intake is the hot path, and a store or till added in the admin is seen
    after `_SCOPE_SECONDS` at most."""
    key = f"pos:scope:{integration.pk}"
    scope = local_cache.get(key)
    if scope is None:
        tills = PosTill.objects.filter(integration=integration, is_active=True)
        scope = {
            "stores": dict(integration.stores.values_list("code", "pk")),
            "tills": set(tills.values_list("location_id", "code")),
        }
        local_cache.set(key, scope, _SCOPE_SECONDS)
    return scope


def integration_scope_changed(integration_id: int) -> None:
    local_cache.delete(f"pos:scope:{integration_id}")


def _check_references(
    integration: PosIntegration, event: dict, known_skus: set[str] | None = None
) -> Location:
    """The event's store, till and SKUs exist and belong to the integration. `known_skus`, when
    given, is the set of existing codes among the batch's (one query for a whole batch)."""
    scope = _integration_scope(integration)
    location_id = scope["stores"].get(event["store"])
    if location_id is None:
        location = Location.objects.filter(code=event["store"]).first()
        if location is None:
            raise UnknownStore(
                f"Unknown store {event['store']!r}.", details={"store": [event["store"]]}
            )
        raise StoreNotInIntegration(
            f"Integration {integration.slug} may not post events for {location.code}.",
            details={"store": [location.code]},
        )
    if (location_id, event["till"]) not in scope["tills"]:
        raise UnknownTill(
            f"Till {event['till']!r} is not registered at {event['store']}.",
            details={"till": [event["till"]]},
        )
    location = Location(pk=location_id, code=event["store"])
    codes = [line["sku"] for line in event["data"].get("lines", [])]
    if codes:
        known = (
            known_skus
            if known_skus is not None
            else set(Sku.objects.filter(code__in=codes).values_list("code", flat=True))
        )
        missing = sorted(set(codes) - known)
        if missing:
            raise UnknownSku(
                f"Unknown SKU code(s): {', '.join(missing[:20])}.", details={"sku": missing}
            )
    return location


# ---- processing --------------------------------------------------------------------------------


def pos_event_process(*, inbox_pk: int, only_received: bool = False) -> PosEvent:
    """Apply one received (or failed, for a replay) event. Safe to run twice: a processed event
    is left alone, and every effect is keyed by the POS event id."""
    statuses = (PosEventStatus.RECEIVED,) + (() if only_received else (PosEventStatus.FAILED,))
    with transaction.atomic():
        event = (
            PosEvent.objects.select_for_update(of=("self",))
            .select_related("integration", "location")
            .get(pk=inbox_pk)
        )
        if event.status in statuses:
            _process_locked(event)
    return event


def _process_locked(event: PosEvent, data: dict | None = None) -> None:
    """Apply one event whose inbox row the caller has locked, in a savepoint: a data problem
    marks it failed (staff fix it, then replay) without undoing the caller's other work."""
    event.attempts += 1
    try:
        with transaction.atomic():
            HANDLERS[event.event_type](event, data or _validated_data(event))
    except DomainError as error:
        event.status = PosEventStatus.FAILED
        event.error = f"{error.code}: {error.message}"[:500]
    except (OperationalError, InterfaceError):
        raise  # the database is unreachable: the task is retried with back-off
    except Exception as error:  # a bug or a value the database refuses: never block the queue
        logger.exception("POS event %s could not be applied", event.pk)
        event.status = PosEventStatus.FAILED
        event.error = f"internal_error: {type(error).__name__}: {error}"[:500]
    else:
        event.status = PosEventStatus.PROCESSED
        event.error = ""
        event.processed_at = timezone.now()
    event.save(update_fields=["status", "error", "attempts", "processed_at"])


def pos_events_process_batch(*, inbox_pks: Sequence[int], also_waiting: int = 0) -> int:
    """Apply many received events (what a batch POST or the sweeper hands over), in the POS's
    time order. Returns how many this call processed or marked failed.

    `also_waiting` takes up to that many other received events along (oldest till time first):
    the task of a single event then applies whatever else has arrived meanwhile, so a busy
    store's events sent one by one are applied in batches too, and later tasks find their
    event done.

    The events are cut, in till order, into runs: each run of consecutive sales — the bulk of a
    till's traffic — is applied in one transaction, one stock operation per sale (keyed as one
    at a time would be) but a few statements for all of them; each other event (return, count,
    hand-over) in a transaction of its own, in its place. So a return rung up before a sale is
    applied before it, and no transaction holds a run's position locks while taking others.
    If the bulk step fails (a data problem in one sale), that run is applied one sale at a time,
    each in its own savepoint, and only the bad one is marked failed. Events another worker
    holds are skipped, not waited for: that worker applies them.
    """
    pks = list(inbox_pks)
    if also_waiting:
        pks += (
            PosEvent.objects.filter(status=PosEventStatus.RECEIVED)
            .exclude(pk__in=pks)
            .order_by("occurred_at", "pk")
            .values_list("pk", flat=True)[:also_waiting]
        )
    waiting = (
        PosEvent.objects.filter(pk__in=pks, status=PosEventStatus.RECEIVED)
        .order_by("occurred_at", "pk")
        .values_list("pk", "event_type")
    )
    done = 0
    for is_sale, run in groupby(waiting, key=lambda row: row[1] == PosEventType.SALE):
        run_pks = [pk for pk, _ in run]
        if is_sale:
            done += _process_sales(run_pks)
            continue
        for pk in run_pks:
            event = pos_event_process(inbox_pk=pk, only_received=True)
            done += event.status != PosEventStatus.RECEIVED
    return done


def _process_sales(inbox_pks: list[int]) -> int:
    with transaction.atomic():
        events = list(
            PosEvent.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("integration", "location")
            .filter(pk__in=inbox_pks, status=PosEventStatus.RECEIVED)
            .order_by("occurred_at", "pk")
        )
        if not events:
            return 0
        validator = EnvelopeSerializer()
        data = {}
        for event in events:
            with suppress(DomainError):  # the one-by-one path below marks it failed, with why
                data[event.pk] = _validated_data(event, validator)
        try:
            if len(data) < len(events):
                raise InvalidInput("A stored sale no longer validates.")
            with transaction.atomic():
                _apply_sales_in_bulk(events, data)
        except (OperationalError, InterfaceError):
            raise
        except Exception as error:  # every sale is then applied alone, just below
            logger.info("POS sales run refused in bulk (%r): applying one by one", error)
            for event in events:
                _process_locked(event, data.get(event.pk))
    return len(events)


def _apply_sales_in_bulk(events: list[PosEvent], data: dict[int, dict]) -> None:
    sku_ids = dict(
        Sku.objects.filter(
            code__in={line["sku"] for d in data.values() for line in d["lines"]}
        ).values_list("code", "pk")
    )
    operations = stock.stock_sell_at_till_many(
        [
            stock.TillSale(
                location_id=event.location_id,
                lines=[
                    (sku_ids[line["sku"]], line["quantity"]) for line in data[event.pk]["lines"]
                ],
                idempotency_key=_key(event),
                occurred_at=event.occurred_at,
                reference=data[event.pk]["receipt"],
                actor=_actor(event),
            )
            for event in events
        ]
    )
    now = timezone.now()
    anonymous = []
    for event, operation in zip(events, operations, strict=True):
        flagged = _sale_flagged(operation)
        if data[event.pk].get("customer") or _pays_with_stored_value(data[event.pk]):
            _record_sale_receipt(event, data[event.pk], flagged)
        else:  # no customer to identify nor points to earn: one INSERT for all of them
            anonymous.append(_receipt_row(event, data[event.pk], kind="sale", flagged=flagged))
    StoreReceipt.objects.bulk_create(anonymous)
    PosEvent.objects.filter(pk__in=[event.pk for event in events]).update(
        status=PosEventStatus.PROCESSED, error="", processed_at=now, attempts=F("attempts") + 1
    )


def pos_events_process_pending(*, limit: int = 1000, batch_size: int = 200) -> int:
    """Apply waiting events, oldest till time first (the beat's safety net for lost tasks)."""
    pending = list(
        PosEvent.objects.filter(status=PosEventStatus.RECEIVED)
        .order_by("occurred_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    for start in range(0, len(pending), batch_size):
        pos_events_process_batch(inbox_pks=pending[start : start + batch_size])
    return len(pending)


def pos_event_replay(*, inbox_pk: int) -> PosEvent:
    """Staff action: apply a failed event again, after fixing what made it fail."""
    event = PosEvent.objects.get(pk=inbox_pk)
    if event.status != PosEventStatus.FAILED:
        raise EventNotReplayable(f"Event {event.event_id} is {event.status}.")
    return pos_event_process(inbox_pk=inbox_pk)


def _validated_data(event: PosEvent, validator: EnvelopeSerializer | None = None) -> dict:
    """The stored event's data as validation gives it (typed, trimmed). It passed at the door;
    a code change since could make it fail, which marks the event failed."""
    try:
        return _validate_event(event.payload, validator)["data"]
    except InvalidInput as error:
        raise InvalidInput("The stored event no longer validates.", details=error.details) from None


def _key(event: PosEvent, suffix: str = "") -> str:
    return f"pos:{event.integration_id}:{event.event_id}{suffix}"


def _actor(event: PosEvent) -> str:
    return f"pos:{event.integration.slug}/{event.till}"


def _sku_lines(data: dict) -> list[tuple[int, int]]:
    ids = dict(
        Sku.objects.filter(code__in=[line["sku"] for line in data["lines"]]).values_list(
            "code", "pk"
        )
    )
    return [(ids[line["sku"]], line["quantity"]) for line in data["lines"]]


def _customer_for(event: PosEvent, data: dict):
    """The RCU customer the till identified (identify-or-create), or None."""
    given = data.get("customer") or {}
    identifiers = [
        (kind, value, "") for kind, value in given.items() if kind != "consents" and value
    ]
    if not identifiers:
        return None

    try:
        return customer_identify_or_create(
            identifiers=identifiers,
            sales_channel="store",
            actor=_actor(event),
            preferred_store=None,
        ).customer
    except NoUsableIdentifier:
        return None  # placeholder values typed by default: an anonymous receipt
    except DomainError:
        logger.warning("POS event %s: customer identifiers refused", event.pk)
        return None


def _total(data: dict) -> Decimal:
    return sum((line["unit_price"] * line["quantity"] for line in data["lines"]), Decimal("0"))


def _receipt_row(
    event: PosEvent,
    data: dict,
    *,
    kind: str,
    flagged: bool = False,
    order_reference: str = "",
    customer=None,
) -> StoreReceipt:
    return StoreReceipt(
        event=event,
        kind=kind,
        number=data["receipt"],
        location_id=event.location_id,
        till=event.till,
        customer=customer,
        currency=data["currency"],
        total=_total(data),
        units=sum(line["quantity"] for line in data["lines"]),
        lines=[
            {
                "sku": line["sku"],
                "quantity": line["quantity"],
                "unit_price": str(line["unit_price"]),
                **({"unsellable": line["unsellable"]} if "unsellable" in line else {}),
            }
            for line in data["lines"]
        ],
        tenders=[
            {
                "kind": t["kind"],
                "amount": str(t["amount"]),
                "reference": t["reference"],
                **({"hold": str(t["hold"])} if "hold" in t else {}),
            }
            for t in data.get("tenders", [])
        ],
        order_reference=order_reference,
        occurred_at=event.occurred_at,
        stock_flagged=flagged,
    )


def _receipt(
    event: PosEvent, data: dict, *, kind: str, flagged: bool = False, order_reference: str = ""
) -> StoreReceipt:
    customer = _customer_for(event, data)
    receipt = _receipt_row(
        event,
        data,
        kind=kind,
        flagged=flagged,
        order_reference=order_reference,
        customer=customer,
    )
    receipt.save()
    if customer is not None:
        _consents_record(event, customer, data)
    return receipt


def _consents_record(event: PosEvent, customer, data: dict) -> None:
    """The consents the person gave at the counter join their consent log (sales channel
    `store`, the till as actor), in the event's transaction: applied once with it."""
    given = (data.get("customer") or {}).get("consents") or []
    if given:
        consent_record(
            customer=customer,
            changes=[
                ConsentChange(
                    purpose=c["purpose"],
                    channel=c["channel"],
                    granted=c["granted"],
                    wording_version=c["wording_version"],
                )
                for c in given
            ],
            sales_channel="store",
            actor=_actor(event),
        )


def _sale_flagged(operation) -> bool:
    """Did the till sell what the ledger thought was not there? (A replayed operation applied
    nothing this time: its flags are on its movements.)"""
    applied = getattr(operation, "applied", None)
    if applied is not None:
        return applied.till_discrepancies > 0
    return TillDiscrepancy.objects.filter(movement__operation=operation).exists()


def _apply_sale(event: PosEvent, data: dict) -> None:
    operation = stock.stock_sell_at_till(
        location_id=event.location_id,
        lines=_sku_lines(data),
        idempotency_key=_key(event),
        occurred_at=event.occurred_at,
        reference=data["receipt"],
        actor=_actor(event),
    )
    _record_sale_receipt(event, data, _sale_flagged(operation))


def _record_sale_receipt(event: PosEvent, data: dict, flagged: bool) -> None:
    """The receipt joins the customer's history (identify-or-create), spends its gift card and
    store credit holds, and earns points."""
    receipt = _receipt(event, data, kind="sale", flagged=flagged)
    _stored_value_capture(event, receipt, data)
    if receipt.customer_id:
        _earn_loyalty_points(event, receipt, data)


def _pays_with_stored_value(data: dict) -> bool:
    return any(t["kind"] in STORED_VALUE_TENDERS for t in data.get("tenders", []))


def _stored_value_capture(event: PosEvent, receipt: StoreReceipt, data: dict) -> None:
    """Gift card and store credit tenders spend the hold the till took for the ticket, once (a
    replayed sale finds it captured). A hold that cannot pay (expired, released, smaller,
    another ticket or currency) is not taken: the sale stands — the goods have left — and the
    receipt records the payment issue for staff (admin filter "payment issues")."""
    issues = []
    for tender in data.get("tenders", []):
        if tender["kind"] not in STORED_VALUE_TENDERS:
            continue
        try:
            with transaction.atomic():
                sv.hold_capture_for_ticket(
                    public_id=tender["hold"],
                    source=tender["kind"],
                    amount=tender["amount"],
                    currency=data["currency"],
                    ticket=data["receipt"],
                    actor=_actor(event),
                )
        except DomainError as exc:
            issues.append(
                {
                    "kind": tender["kind"],
                    "hold": str(tender["hold"]),
                    "amount": str(tender["amount"]),
                    "code": exc.code,
                    "message": exc.message,
                }
            )
    if issues:
        StoreReceipt.objects.filter(pk=receipt.pk).update(payment_issues=issues)
        logger.warning("POS event %s: %d tender(s) not applied", event.pk, len(issues))


def _earn_loyalty_points(event: PosEvent, receipt: StoreReceipt, data: dict) -> None:
    """A store receipt earns points once (keyed by the POS event); a refusal (e.g. a currency
    the programme does not earn on) never blocks the sale: it is logged on the event."""

    categories = dict(
        Sku.objects.filter(code__in=[line["sku"] for line in data["lines"]]).values_list(
            "code", "category"
        )
    )
    try:
        with transaction.atomic():
            points_earn_for_source(
                customer=receipt.customer,
                source_type="store_receipt",
                source_ref=f"pos:{event.integration_id}:{event.event_id}",
                lines=[
                    PurchaseLine(
                        line_ref=str(index),
                        sku=line["sku"],
                        quantity=line["quantity"],
                        amount=line["unit_price"] * line["quantity"],
                        category=categories.get(line["sku"], ""),
                    )
                    for index, line in enumerate(data["lines"], start=1)
                ],
                currency=data["currency"],
                channel="store",
                store=event.location,
                occurred_at=event.occurred_at,
                actor=_actor(event),
            )
    except DomainError as exc:
        logger.warning("POS event %s: no loyalty points (%s)", event.pk, exc.code)


def _apply_return(event: PosEvent, data: dict) -> None:
    if data["order_reference"]:
        _apply_order_return(event, data)
        _receipt(event, data, kind="return", order_reference=data["order_reference"])
        return
    ids = dict(
        Sku.objects.filter(code__in=[line["sku"] for line in data["lines"]]).values_list(
            "code", "pk"
        )
    )
    by_condition: dict[bool, list[tuple[int, int]]] = defaultdict(list)
    for line in data["lines"]:
        by_condition[line["unsellable"]].append((ids[line["sku"]], line["quantity"]))
    for unsellable, lines in sorted(by_condition.items()):
        stock.stock_return(
            location_id=event.location_id,
            lines=lines,
            unsellable=unsellable,
            reason=data["reason"][:20] if unsellable else "",
            idempotency_key=_key(event, ":unsellable" if unsellable else ""),
            occurred_at=event.occurred_at,
            reference=data["receipt"],
            actor=_actor(event),
        )
    _receipt(event, data, kind="return")
    if data["original_event_id"]:
        _reverse_loyalty_points(event, data)


def _reverse_loyalty_points(event: PosEvent, data: dict) -> None:
    """Points earned on the original receipt's returned lines go back, pro rata (once per
    return event); like earning, a refusal never blocks the return."""

    original = StoreReceipt.objects.filter(
        event__integration_id=event.integration_id,
        event__event_id=data["original_event_id"],
        kind="sale",
    ).first()
    if original is None:
        logger.warning(
            "POS event %s: original sale %s not found", event.pk, data["original_event_id"]
        )
        return
    # The sale earned per line, numbered from 1 in receipt order (`_earn_loyalty_points`).
    line_refs = {line["sku"]: str(index) for index, line in enumerate(original.lines, start=1)}
    returned = [
        ReturnedLine(line_ref=line_refs[line["sku"]], quantity=line["quantity"])
        for line in data["lines"]
        if line["sku"] in line_refs
    ]
    if not returned:
        return
    try:
        with transaction.atomic():
            points_reverse_for_return(
                source_type="store_receipt",
                source_ref=f"pos:{event.integration_id}:{data['original_event_id']}",
                return_ref=_key(event),
                lines=returned,
                channel="store",
                actor=_actor(event),
            )
    except DomainError as exc:
        logger.warning("POS event %s: points not taken back (%s)", event.pk, exc.code)


def _apply_order_return(event: PosEvent, data: dict) -> None:
    """An online order brought back to this store: the orders app moves the units into this
    store's stock and records the refund owed."""

    order = Order.objects.filter(reference=data["order_reference"]).first()
    if order is None:
        raise NotFound(
            f"No order {data['order_reference']!r}.",
            details={"order_reference": [data["order_reference"]]},
        )
    lines_by_sku = {line.sku.code: line for line in order.lines.select_related("sku")}
    requests = []
    for line in data["lines"]:
        order_line = lines_by_sku.get(line["sku"])
        if order_line is None:
            raise InvalidInput(
                f"{line['sku']} is not in order {order.reference}.",
                details={"lines": [line["sku"]]},
            )
        requests.append(
            ReturnLineRequest(
                line_no=order_line.line_no,
                quantity=line["quantity"],
                unsellable=line["unsellable"],
                reason=data["reason"],
            )
        )
    order_return(
        order_id=order.pk,
        location_id=event.location_id,
        lines=requests,
        actor=_actor(event),
        channel="store",
        idempotency_key=_key(event),
    )


def _apply_count(event: PosEvent, data: dict) -> None:
    ids = dict(
        Sku.objects.filter(code__in=[line["sku"] for line in data["lines"]]).values_list(
            "code", "pk"
        )
    )
    stock.stock_count_apply(
        location_id=event.location_id,
        counts=[(ids[line["sku"]], line["counted"]) for line in data["lines"]],
        counted_at=event.occurred_at,
        idempotency_key=_key(event),
        actor=_actor(event),
        channel="store",
    )


def _apply_handover(event: PosEvent, data: dict) -> None:

    order = Order.objects.filter(reference=data["order_reference"]).first()
    if order is None:
        raise NotFound(
            f"No order {data['order_reference']!r}.",
            details={"order_reference": [data["order_reference"]]},
        )
    paid = data.get("paid_at_till")
    taken = None
    if data.get("taken"):  # partial pickup, by SKU: to the order's line numbers
        line_of = dict(order.lines.values_list("sku__code", "line_no"))
        unknown = sorted({t["sku"] for t in data["taken"]} - set(line_of))
        if unknown:
            raise InvalidInput(
                f"Not in order {order.reference}: {', '.join(unknown)}.", details={"taken": unknown}
            )
        taken = {line_of[t["sku"]]: t["quantity"] for t in data["taken"]}
    order_handover(
        order_id=order.pk,
        code=data["pickup_code"],
        actor=_actor(event),
        channel="store",
        idempotency_key=_key(event),
        paid_at_till=Money(paid["amount"], paid["currency"]) if paid else None,
        till_reference=f"{event.till}:{event.event_id}",
        taken=taken,
    )


HANDLERS = {
    PosEventType.SALE: _apply_sale,
    PosEventType.RETURN: _apply_return,
    PosEventType.STOCK_COUNT: _apply_count,
    PosEventType.PICKUP_HANDOVER: _apply_handover,
}


# ---- customer lookup (synchronous) -------------------------------------------------------------


def pos_customer_lookup(
    *, integration: PosIntegration, raw_body: bytes, signature: str | None
) -> dict:
    """A till scanned a card (or typed a phone/email): who is it? Signed like events."""
    verify_request(integration=integration, raw_body=raw_body, signature=signature)
    try:
        payload = strict_json_loads(raw_body)
    except MalformedJson as exc:
        raise MalformedEvent(f"{MalformedEvent.default_message} ({exc})") from None
    query = CustomerLookupSerializer(data=payload if isinstance(payload, dict) else {})
    if not query.is_valid():
        raise drf_serializers.ValidationError(query.errors)

    resolution = customer_resolve(
        identifiers=[(kind, value, "") for kind, value in query.validated_data.items()]
    )
    customer = resolution.customer
    if customer is None:
        raise NotFound("No customer has this identifier.", details={"customer": ["unknown"]})
    return {
        "customer": {
            "reference": str(customer.reference),
            "number": customer.number,
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "language": customer.language,
        },
        **_loyalty_for_till(customer),
    }


def _loyalty_for_till(customer) -> dict:
    """What the till shows next to the name: points (spendable, pending), tier, and the personal
    offers usable in a store."""

    account = account_get(customer=customer)
    loyalty = None
    if account is not None:
        summary = points_summary(account=account)
        loyalty = {
            "card_number": account.card_number,
            "points_available": summary["available"],
            "points_pending": summary["pending"],
            "tier": account.tier.name if account.tier_id else None,
        }
    offers = [
        {
            "code": coupon.code,
            "campaign": coupon.campaign.name,
            "discount_type": coupon.campaign.discount_type,
            "discount_value": str(coupon.campaign.discount_value),
            "currency": coupon.campaign.currency,
            "min_basket": str(coupon.campaign.min_basket),
            "valid_until": coupon.campaign.ends_at.isoformat(),
        }
        for coupon in offers_for(customer=customer, channel="store")
    ]
    return {"loyalty": loyalty, "offers": offers}

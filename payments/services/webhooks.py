"""Provider webhooks in: verify, store under (provider, event id), answer, process in a task.

`provider_webhook_receive` is what the endpoint calls: the signature is verified first (a bad
one raises SignatureInvalid → 401, nothing stored), the event is inserted under its unique
(provider, event id) — a replay hits the constraint and is acknowledged as a duplicate with no
second effect — and processing is queued on commit. `provider_event_process` applies the outcome
to the tender, each transition a conditional UPDATE from the state it expects, so an outcome
applied twice (or out of order) changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from common.tasks import task_after_commit
from payments.models import ProviderEvent, Tender, TenderStatus
from payments.providers import base, get_provider
from payments.services import tenders as tender_services


def provider_webhook_receive(
    *, provider_name: str, headers: Mapping[str, str], body: bytes
) -> tuple[ProviderEvent, bool]:
    """Returns (event, duplicate)."""
    provider = get_provider(provider_name)
    provider.verify_webhook(headers=headers, body=body)
    parsed = provider.parse_webhook(body=body)
    try:
        with transaction.atomic():
            stored = ProviderEvent.objects.create(
                provider=provider.name,
                event_id=parsed.event_id,
                event_type=parsed.event_type,
                payload=parsed.raw,
            )
            task_after_commit("payments.tasks.provider_event_process_task", stored.pk)
    except IntegrityError:
        earlier = ProviderEvent.objects.filter(
            provider=provider.name, event_id=parsed.event_id
        ).first()
        if earlier is None:  # pragma: no cover
            raise
        return earlier, True
    return stored, False


def provider_event_process(*, event_id: int) -> str:
    """Apply one stored event to its tender, once. Returns what it did (stored on the event)."""
    with transaction.atomic():
        stored = ProviderEvent.objects.select_for_update().get(pk=event_id)
        if stored.processed_at is not None:
            return stored.outcome
        parsed = _reparse(get_provider(stored.provider), stored)
        outcome = _apply(parsed)
        stored.processed_at = timezone.now()
        stored.outcome = outcome[:255]
        stored.save(update_fields=["processed_at", "outcome"])
    return outcome


def _reparse(provider: base.PaymentProvider, stored: ProviderEvent) -> base.ProviderEventData:
    import json

    return provider.parse_webhook(body=json.dumps(stored.payload).encode())


def _apply(parsed: base.ProviderEventData) -> str:
    tender = tender_services.tender_for_merchant_reference(parsed.merchant_reference)
    if tender is None:
        return f"ignored: no tender {parsed.merchant_reference}"
    record = {"provider_event": parsed.event_id, "reference": parsed.provider_reference}
    kind = parsed.event_type
    amount = parsed.amount
    if amount is not None and parsed.currency and parsed.currency != tender.currency:
        tender_services.event(tender, "currency_mismatch", amount=amount, **record)
        return "ignored: currency mismatch"

    if kind == base.AUTHORISATION_SUCCEEDED and not (amount and amount > 0):
        done = tender_services.tender_fail(tender=tender, failure_code="authorised_nothing")
    elif kind == base.AUTHORISATION_SUCCEEDED:
        authorised = min(amount, tender.amount)
        done = Tender.objects.filter(pk=tender.pk, status=TenderStatus.PENDING).update(
            status=TenderStatus.AUTHORISED,
            amount_authorised=authorised,
            provider_reference=parsed.provider_reference,
            authorisation_expires_at=parsed.authorisation_expires_at,
        )
        if done:
            tender_services.event(tender, "authorised", amount=authorised, **record)
            if authorised < tender.amount:  # a partial authorisation covers only its amount
                tender_services.coverage_release(tender.order_reference, tender.amount - authorised)
                Tender.objects.filter(pk=tender.pk).update(amount=authorised)
            expires = parsed.authorisation_expires_at
            if tender.capture_on_authorise:
                # Pay now: capture once this outcome is committed, outside the transaction.
                task_after_commit("payments.tasks.tender_card_capture_task", tender.pk)
            elif tender.needed_until and expires and expires < tender.needed_until:
                tender_services.event(
                    tender, "authorisation_expires_before_pickup", expires_at=expires.isoformat()
                )
    elif kind == base.AUTHORISATION_EXTENDED:
        done = Tender.objects.filter(pk=tender.pk, status=TenderStatus.AUTHORISED).update(
            authorisation_expires_at=parsed.authorisation_expires_at
        )
        if done:
            tender_services.event(
                tender,
                "authorisation_extended",
                expires_at=parsed.authorisation_expires_at.isoformat()
                if parsed.authorisation_expires_at
                else None,
                **record,
            )
    elif kind == base.AUTHORISATION_FAILED:
        done = tender_services.tender_fail(tender=tender, failure_code=parsed.failure_code)
    elif kind == base.AUTHORISATION_EXPIRED:
        done = tender_services.tender_voided(tender, status=TenderStatus.EXPIRED, **record)
    elif kind == base.CAPTURE_SUCCEEDED:
        done = tender_services.tender_captured(
            tender, min(amount or Decimal(0), tender.amount), **record
        )
    elif kind == base.CAPTURE_FAILED:
        if parsed.failure_code == "authorisation_expired":
            done = tender_services.tender_voided(tender, status=TenderStatus.EXPIRED, **record)
        else:
            tender_services.event(
                tender, "capture_failed", amount=amount, failure_code=parsed.failure_code, **record
            )
            done = True
    elif kind == base.VOID_SUCCEEDED:
        done = tender_services.tender_voided(tender, **record)
    elif kind == base.REFUND_SUCCEEDED:
        # The refund was counted when it was requested; this confirms it.
        tender_services.event(tender, "refund_confirmed", amount=amount, **record)
        done = True
    elif kind == base.REFUND_FAILED:
        tender_services.refund_failed(
            tender=tender, amount=amount or Decimal(0), failure_code=parsed.failure_code
        )
        done = True
    else:  # pragma: no cover - parse_webhook only returns known types
        return f"ignored: {kind}"
    return f"{kind}: {'applied' if done else 'no change (already applied or not applicable)'}"

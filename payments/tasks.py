import logging

from celery import shared_task
from django.db import OperationalError

from payments import selectors
from payments.models import Tender, TenderStatus
from payments.providers.sandbox import SandboxProvider, deliver
from payments.services import stored_value
from payments.services.tenders import card_authorisations_renew, tender_card_capture
from payments.services.webhooks import provider_event_process

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, time_limit=300)
def holds_expire_task() -> int:
    return stored_value.holds_expire()


@shared_task(time_limit=1800)
def ledger_reconcile_task() -> int:
    mismatches = selectors.ledger_mismatches()
    if mismatches:
        logger.error("Stored value ledger mismatches: %s", mismatches[:50])
    return len(mismatches)


@shared_task(
    acks_late=True,
    time_limit=60,
    soft_time_limit=50,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=8,
)
def provider_event_process_task(event_id: int) -> str:
    return provider_event_process(event_id=event_id)


@shared_task(
    time_limit=30,
    soft_time_limit=25,
    autoretry_for=(OSError, RuntimeError),
    retry_backoff=True,
    max_retries=8,
)
def sandbox_webhook_deliver_task(payload: dict) -> None:
    """The sandbox processor's webhook sender (a real provider runs its own)."""
    deliver(payload)


@shared_task(time_limit=300)
def sandbox_authorisations_expire_task() -> int:
    return SandboxProvider().expire_overdue()


@shared_task(
    time_limit=60,
    soft_time_limit=50,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def tender_card_capture_task(tender_id: int) -> None:
    """Pay now: capture a card tender as soon as its authorisation is in."""

    tender = Tender.objects.filter(pk=tender_id, status=TenderStatus.AUTHORISED).first()
    if tender is not None and not tender.events.filter(kind="capture_requested").exists():
        tender_card_capture(tender=tender, actor="capture-on-authorise")


@shared_task(time_limit=600)
def card_authorisations_renew_task() -> dict:
    return card_authorisations_renew()

import logging

from celery import shared_task

from payments import selectors
from payments.services import stored_value

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

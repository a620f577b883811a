import logging

from celery import shared_task

from inventory import selectors, services

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, time_limit=300)
def reservations_release_expired_task() -> int:
    return services.reservations_release_expired()


@shared_task(time_limit=1800)
def ledger_reconcile_task() -> int:
    mismatches = selectors.ledger_mismatches()
    if mismatches:
        logger.error("Stock ledger mismatches: %s", mismatches[:50])
    return len(mismatches)

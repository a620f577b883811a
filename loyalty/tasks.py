"""Thin periodic tasks: each calls one service and is safe to run twice (see docs/loyalty.md for
the beat entries they need)."""

import logging

from celery import shared_task

from loyalty import coupons, selectors, services

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, time_limit=600)
def points_expire_task() -> int:
    return services.points_expire()


@shared_task(acks_late=True, time_limit=300)
def points_holds_expire_task() -> int:
    return services.points_holds_expire()


@shared_task(acks_late=True, time_limit=300)
def coupon_holds_expire_task() -> int:
    return coupons.coupon_holds_expire()


@shared_task(acks_late=True, time_limit=1800)
def tiers_review_task() -> int:
    return services.tiers_review()


@shared_task(time_limit=1800)
def ledger_reconcile_task() -> int:
    mismatches = selectors.ledger_mismatches()
    if mismatches:
        logger.error("Loyalty ledger mismatches: %s", mismatches[:50])
    return len(mismatches)

from celery import shared_task

from common.idempotency import idempotency_records_purge


@shared_task(time_limit=600)
def idempotency_records_purge_task() -> int:
    return idempotency_records_purge()

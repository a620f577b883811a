from celery import shared_task

from integrations import services


@shared_task(acks_late=True, time_limit=120)
def outbox_dispatch_task() -> int:
    return services.outbox_dispatch()


@shared_task(acks_late=True, time_limit=120)
def deliveries_retry_due_task() -> int:
    # The beat also drains the outbox, in case an after-commit dispatch was lost.
    services.outbox_dispatch()
    return services.deliveries_attempt_due()

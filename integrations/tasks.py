from celery import shared_task
from django.db import OperationalError

from integrations import webhooks
from integrations.pos import pos_events_process_batch, pos_events_process_pending

POS_DRAIN_SIZE = 199  # a single event's task applies up to this many waiting ones with it


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def webhooks_relay_task() -> int:
    """Fan out and send while work is due; carry on in a fresh task past the time budget, so a
    backlog is drained continuously by the workers, not by the beat's period."""
    sent, left = webhooks.webhooks_relay()
    if left:
        webhooks_relay_task.delay()
    return sent


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def outbox_dispatch_task() -> int:
    """The beat's run (and messages queued by earlier versions): the relay."""
    return webhooks_relay_task()


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def deliveries_retry_due_task() -> int:
    return webhooks_relay_task()


@shared_task(acks_late=True, time_limit=600)
def endpoint_replay_task(endpoint_id: int) -> int:
    return webhooks.endpoint_replay(endpoint_id=endpoint_id)


@shared_task(acks_late=True, time_limit=1800)
def webhook_events_purge_task() -> int:
    return webhooks.webhook_events_purge()


@shared_task(
    acks_late=True,
    time_limit=120,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=8,
)
def pos_event_process_task(inbox_pk: int) -> int:
    # One event was received; apply it with whatever else is waiting (see also_waiting).
    return pos_events_process_batch(inbox_pks=[inbox_pk], also_waiting=POS_DRAIN_SIZE)


@shared_task(
    acks_late=True,
    time_limit=300,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=8,
)
def pos_events_process_batch_task(inbox_pks: list[int]) -> int:
    return pos_events_process_batch(inbox_pks=inbox_pks)


@shared_task(acks_late=True, time_limit=600)
def pos_events_process_pending_task() -> int:
    return pos_events_process_pending()

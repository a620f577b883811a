"""Thin Celery tasks: each calls one service and is safe to run twice."""

from celery import shared_task

from orders import services
from orders.notifications import order_notification_send
from payments.services.tenders import order_payment_capture, order_payment_release


@shared_task(
    acks_late=True,
    time_limit=60,
    soft_time_limit=50,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=6,
)
def order_notify_task(order_id: int, kind: str, extra: dict | None = None) -> int:
    """One message, queued by versions before the outbox (PendingNotification): kept so that
    messages still in the broker when this version is deployed are sent. Nothing queues it now."""
    return order_notification_send(order_id=order_id, kind=kind, extra=extra or {})


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def order_notifications_send_task() -> int:
    """Send the order messages due (after commits that owe some, and from beat)."""
    sent, left = services.order_notifications_send()
    if left:  # more than one run's time budget: carry on in a fresh task
        order_notifications_send_task.delay()
    return sent


@shared_task(acks_late=True, time_limit=300, soft_time_limit=280)
def orders_expire_overdue_task() -> int:
    return services.orders_expire_overdue()


@shared_task(acks_late=True, time_limit=300, soft_time_limit=280)
def orders_remind_pickup_task() -> int:
    return services.orders_remind_pickup()


# ---- money follows the goods (the payments app, called after our commit) ----------------------


@shared_task(
    acks_late=True, time_limit=120, autoretry_for=(OSError,), retry_backoff=True, max_retries=6
)
def order_payment_capture_task(
    order_reference: str, actor: str, channel: str, amount: str | None = None
) -> int:
    """Collected or shipped: capture what the order's tenders authorised — or `amount`, the
    value of what a partial pickup took — (safe to run twice: captured tenders are no longer
    authorised; the rest is released)."""

    return len(
        order_payment_capture(
            order_reference=order_reference, actor=actor, channel=channel, amount=amount
        )
    )


@shared_task(
    acks_late=True, time_limit=120, autoretry_for=(OSError,), retry_backoff=True, max_retries=6
)
def order_payment_release_task(order_reference: str, actor: str) -> int:
    """Cancelled or not collected: the shopper pays nothing (safe to run twice)."""

    return len(order_payment_release(order_reference=order_reference, actor=actor))


@shared_task(
    acks_late=True, time_limit=120, autoretry_for=(OSError,), retry_backoff=True, max_retries=6
)
def order_refund_task(return_id: int, actor: str, channel: str) -> str:
    return services.order_return_refund(return_id=return_id, actor=actor, channel=channel)

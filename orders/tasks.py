"""Thin Celery tasks: each calls one service and is safe to run twice."""

from celery import shared_task

from orders import services


@shared_task(
    acks_late=True,
    time_limit=60,
    soft_time_limit=50,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=6,
)
def order_notify_task(order_id: int, kind: str, extra: dict | None = None) -> int:
    from notifications.services import order_notification_send

    return order_notification_send(order_id=order_id, kind=kind, extra=extra or {})


@shared_task(acks_late=True, time_limit=300, soft_time_limit=280)
def orders_expire_overdue_task() -> int:
    return services.orders_expire_overdue()


@shared_task(acks_late=True, time_limit=300, soft_time_limit=280)
def orders_remind_pickup_task() -> int:
    return services.orders_remind_pickup()

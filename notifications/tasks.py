from celery import shared_task

from notifications.alerts import alert_notification_send, alerts_check


@shared_task(
    acks_late=True,
    time_limit=60,
    soft_time_limit=50,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=6,
)
def stock_alert_notify_task(alert_id: int) -> int:
    return alert_notification_send(alert_id=alert_id)


@shared_task(acks_late=True, time_limit=300, soft_time_limit=280)
def alerts_check_task() -> int:
    return alerts_check()

import zoneinfo
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from analytics.services import stock_day_take


@shared_task
def stock_day_rollup_task() -> int:
    """Yesterday's stock rollup (report clock); run again, it rewrites the same day."""
    today = timezone.localdate(timezone=zoneinfo.ZoneInfo(settings.REPORTS_TIME_ZONE))
    return stock_day_take(day=today - timedelta(days=1))

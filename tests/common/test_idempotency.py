from datetime import timedelta

import pytest
from django.utils import timezone

from common.idempotency import idempotency_records_purge
from common.models import IdempotencyRecord

pytestmark = pytest.mark.django_db


def test_stored_responses_are_purged_after_the_retention_period(settings):
    settings.OMNISTOCK = {**settings.OMNISTOCK, "IDEMPOTENCY_RETENTION_DAYS": 7}
    old = IdempotencyRecord.objects.create(owner="key:1", key="a", endpoint="e", request_hash="h")
    IdempotencyRecord.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=8)
    )
    recent = IdempotencyRecord.objects.create(
        owner="key:1", key="b", endpoint="e", request_hash="h"
    )

    assert idempotency_records_purge() == 1

    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [recent.pk]

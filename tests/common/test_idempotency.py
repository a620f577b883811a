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


@pytest.mark.parametrize("returning", [True, False], ids=["insert-returning", "savepoint"])
def test_a_key_is_claimed_once_whether_or_not_the_database_returns_from_insert(
    monkeypatch, returning
):
    from common import idempotency
    from common.idempotency import _claim

    # SQLite before 3.35 (which Django 5.2 still supports) cannot RETURNING from an INSERT.
    monkeypatch.setattr(idempotency, "_insert_can_return", lambda: returning)
    first = _claim(owner="key:1", key="k", endpoint="e", fingerprint="h")
    second = _claim(owner="key:1", key="k", endpoint="e", fingerprint="h")
    other_owner = _claim(owner="key:2", key="k", endpoint="e", fingerprint="h")

    assert first is not None and second is None and other_owner not in (None, first)
    assert IdempotencyRecord.objects.count() == 2

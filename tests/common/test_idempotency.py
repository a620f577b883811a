from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from common.exceptions import IdempotencyKeyReused, InvalidInput
from common.idempotency import (
    MAX_KEY_LENGTH,
    idempotency_key_check,
    idempotency_records_purge,
    run_once,
)
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


def _keyed_write(key: str, endpoint: str = "e", fingerprint: str = "h"):
    """A write keyed like every ledger's: its record is inserted first, under the unique key."""
    return run_once(
        find=lambda: IdempotencyRecord.objects.filter(owner="key:1", key=key).first(),
        same_request=lambda r: (r.endpoint, r.request_hash) == (endpoint, fingerprint),
        perform=lambda: IdempotencyRecord.objects.create(
            owner="key:1", key=key, endpoint=endpoint, request_hash=fingerprint
        ),
    )


def test_a_key_runs_once_and_its_retry_gets_the_first_record():
    first, first_replayed = _keyed_write("k")
    again, again_replayed = _keyed_write("k")

    assert (first_replayed, again_replayed) == (False, True)
    assert again.pk == first.pk and IdempotencyRecord.objects.count() == 1


def test_the_same_key_with_another_request_is_refused_and_changes_nothing():
    _keyed_write("k")

    with pytest.raises(IdempotencyKeyReused):
        _keyed_write("k", fingerprint="other")

    assert IdempotencyRecord.objects.count() == 1


def test_a_duplicate_that_lost_the_race_on_the_unique_key_replays_the_winner():
    # given the winner committed between the loser's look-up and its insert
    winner = IdempotencyRecord.objects.create(
        owner="key:1", key="k", endpoint="e", request_hash="h"
    )
    looks = iter([None, winner])

    record, replayed = run_once(
        find=lambda: next(looks),
        same_request=lambda r: r.request_hash == "h",
        perform=lambda: IdempotencyRecord.objects.create(
            owner="key:1", key="k", endpoint="e", request_hash="h"
        ),
    )

    assert replayed and record.pk == winner.pk and IdempotencyRecord.objects.count() == 1


def test_a_constraint_broken_by_the_write_itself_is_not_hidden_as_a_replay():
    IdempotencyRecord.objects.create(owner="key:1", key="taken", endpoint="e", request_hash="h")

    with pytest.raises(IntegrityError):
        run_once(
            find=lambda: None,  # nothing under the asked key…
            same_request=lambda r: True,
            # … but the write breaks another unique key
            perform=lambda: IdempotencyRecord.objects.create(
                owner="key:1", key="taken", endpoint="e", request_hash="h"
            ),
        )


@pytest.mark.parametrize("key", ["", "   ", None, "x" * (MAX_KEY_LENGTH + 1)])
def test_a_blank_or_too_long_key_is_refused_by_every_ledger_alike(key):
    with pytest.raises(InvalidInput):
        idempotency_key_check(key)

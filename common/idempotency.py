"""Idempotency, once for the whole project: run a write once per key, replay the first result,
refuse the same key with another request.

Every ledger (stock, points, stored value, tenders), order placement and the HTTP layer use
`run_once`; each keeps its own record of what a key did (a StockOperation, a PointsOperation, an
Order, an IdempotencyRecord…) and hands `run_once` the three questions that differ: how to find
that record, whether it was the same request, and how to perform the write.

Concurrency: the write inserts its record under a unique key first. A concurrent duplicate
blocks on that key until the first commits, then fails with IntegrityError; `run_once` rolls
its attempt back (a savepoint when called inside a transaction) and replays the first result.
A write that fails with a domain error leaves nothing behind, so the client may correct the
cause and retry with the same key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from common.auth import caller_owner
from common.exceptions import (
    DomainError,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    InvalidInput,
    RequestInProgress,
)
from common.models import IdempotencyRecord

HEADER = "Idempotency-Key"

# The one limit on a key handed to a service. Keys are stored in 255-character columns: the
# rest is room for per-line suffixes ("<key>#12").
MAX_KEY_LENGTH = 240
# The HTTP header leaves room, within MAX_KEY_LENGTH, for the caller's namespace that the API
# puts in front of it ("api:key:<id>:<header>"), so that two callers' keys never meet.
NAMESPACE_ROOM = 40
HEADER_MAX_LENGTH = MAX_KEY_LENGTH - NAMESPACE_ROOM

Record = TypeVar("Record")


def idempotency_key_check(key, *, field: str = "idempotency_key") -> str:
    """A non-blank key of at most MAX_KEY_LENGTH characters, else InvalidInput."""
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput(
            "Every write that may be retried needs an idempotency key.",
            details={field: ["required"]},
        )
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            f"The idempotency key is longer than {MAX_KEY_LENGTH} characters.",
            details={field: ["too long"]},
        )
    return key


def request_fingerprint(kind: str, payload) -> str:
    """What a retry must repeat, hashed: the same kind of write with the same arguments."""
    canonical = json.dumps([kind, payload], sort_keys=True, cls=JSONEncoder, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_once(
    *,
    find: Callable[[], Record | None],
    same_request: Callable[[Record], bool],
    perform: Callable[[], Record],
    reused_message: str = IdempotencyKeyReused.default_message,
    key_first: bool = False,
) -> tuple[Record, bool]:
    """Perform a keyed write once. Returns (record, replayed).

    `find` returns what the key did already (or None); `same_request` tells whether that was
    the request asked now (IdempotencyKeyReused if not); `perform` writes, and runs in its own
    transaction (or savepoint).

    `key_first=True` says that `perform` inserts its keyed record before anything else (every
    ledger's operation row does): the look-up is then skipped, and a retry is answered once
    its INSERT fails on the unique key — one query fewer on the path every first call takes,
    and retries are rare. Without it (a write whose keyed row comes last, such as an order),
    the key is looked up first so that a retry does no work.
    """
    earlier = None if key_first else find()
    if earlier is None:
        try:
            with transaction.atomic():
                return perform(), False
        except IntegrityError:
            # A concurrent call with the same key committed first: this one waited on the
            # unique key and failed. Anything else that broke a constraint is not ours to hide.
            earlier = find()
            if earlier is None:
                raise
        except DomainError:
            # A write whose keyed row comes last may be refused because a concurrent call with
            # the same key took the stock or the money first: that call's result is the answer.
            earlier = None if key_first else find()
            if earlier is None:
                raise
    if not same_request(earlier):
        raise IdempotencyKeyReused(reused_message)
    return earlier, True


# ---- the HTTP layer --------------------------------------------------------------------------


def idempotency_key_from(request) -> str:
    key = (request.headers.get(HEADER) or "").strip()
    if not key:
        raise IdempotencyKeyMissing()
    if len(key) > HEADER_MAX_LENGTH:
        raise InvalidInput(
            f"{HEADER} is longer than {HEADER_MAX_LENGTH} characters.",
            details={HEADER: ["too long"]},
        )
    return key


def idempotent(request, *, endpoint: str, perform: Callable[[], Response]) -> Response:
    """Run `perform` at most once per (caller, Idempotency-Key); a retry gets the first response
    (marked `Idempotent-Replayed: true`). The record, the write and the stored response commit
    together, so a crash half-way leaves nothing and a retry simply runs again."""
    key = idempotency_key_from(request)
    owner = caller_owner(request)
    fingerprint = request_fingerprint(endpoint, request.data)

    def respond_and_record() -> tuple[IdempotencyRecord, Response]:
        record = IdempotencyRecord.objects.create(
            owner=owner, key=key, endpoint=endpoint, request_hash=fingerprint
        )
        response = perform()
        record.response_status = response.status_code
        # Stored as the JSON the client receives (Decimal and datetime encoded the API's way).
        record.response_body = json.loads(json.dumps(response.data, cls=JSONEncoder))
        record.completed_at = timezone.now()
        record.save(update_fields=["response_status", "response_body", "completed_at"])
        return record, response

    outcome, replayed = run_once(
        find=lambda: IdempotencyRecord.objects.filter(owner=owner, key=key).first(),
        same_request=lambda record: (
            record.endpoint == endpoint and record.request_hash == fingerprint
        ),
        perform=respond_and_record,
        key_first=True,
    )
    if not replayed:
        return outcome[1]
    if outcome.response_status is None:  # pragma: no cover - only reachable without a transaction
        raise RequestInProgress()
    return Response(
        outcome.response_body,
        status=outcome.response_status,
        headers={"Idempotent-Replayed": "true"},
    )


def idempotency_records_purge(*, older_than_days: int | None = None) -> int:
    """Delete stored responses past the retention period (they may quote personal data)."""
    days = (
        settings.OMNISTOCK["IDEMPOTENCY_RETENTION_DAYS"]
        if older_than_days is None
        else older_than_days
    )
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted

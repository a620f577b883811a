"""Idempotent API writes: the same Idempotency-Key replays the first response.

The record is claimed, the write performed and the response stored in ONE transaction, so a crash
half-way leaves nothing behind and a retry simply runs again. A concurrent duplicate blocks on the
unique key until the first commits, then receives the stored response. A write that fails with a
domain error stores nothing (it had no effect), so the client may correct the cause and retry.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from common.auth import caller_owner
from common.exceptions import (
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    InvalidInput,
    RequestInProgress,
)
from common.models import IdempotencyRecord

HEADER = "Idempotency-Key"
# The stock ledger namespaces it ("api:key:<id>:<key>") within its own 240 characters.
MAX_KEY_LENGTH = 200


def request_fingerprint(endpoint: str, payload) -> str:
    canonical = json.dumps(
        [endpoint, payload], sort_keys=True, cls=JSONEncoder, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key_from(request) -> str:
    key = (request.headers.get(HEADER) or "").strip()
    if not key:
        raise IdempotencyKeyMissing()
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            f"{HEADER} is longer than {MAX_KEY_LENGTH} characters.", details={HEADER: ["too long"]}
        )
    return key


def idempotent(request, *, endpoint: str, perform: Callable[[], Response]) -> Response:
    """Run `perform` at most once per (caller, Idempotency-Key)."""
    key = idempotency_key_from(request)
    owner = caller_owner(request)
    fingerprint = request_fingerprint(endpoint, request.data)
    with transaction.atomic():
        record_id = _claim(owner=owner, key=key, endpoint=endpoint, fingerprint=fingerprint)
        if record_id is None:
            return _replay(owner=owner, key=key, endpoint=endpoint, fingerprint=fingerprint)
        response = perform()
        _store(record_id, response)
    return response


_STORE_SQL = (
    f"UPDATE {IdempotencyRecord._meta.db_table} "  # noqa: S608 - table name, not input
    "SET response_status = %s, response_body = %s, completed_at = %s WHERE id = %s"
)


def _store(record_id: int, response: Response) -> None:
    """The response, kept for a retry: encoded once, as the JSON the client receives (the ORM
    would decode and encode it again, and compile its UPDATE every time)."""
    body = json.dumps(response.data, cls=JSONEncoder)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_STORE_SQL, [response.status_code, body, now, record_id])


_CLAIM_SQL = (
    f"INSERT INTO {IdempotencyRecord._meta.db_table} "  # noqa: S608 - table name, not input
    "(owner, key, endpoint, request_hash, created_at) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (owner, key) DO NOTHING RETURNING id"
)


def _insert_can_return() -> bool:
    return connection.features.can_return_columns_from_insert  # False on SQLite before 3.35


def _claim(*, owner: str, key: str, endpoint: str, fingerprint: str) -> int | None:
    """Insert the record; None when the key exists. `ON CONFLICT DO NOTHING` needs no savepoint
    (a failed INSERT would abort the transaction), and a concurrent first request with the same
    key makes this one wait for its commit, then find the key taken."""
    if not _insert_can_return():
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    owner=owner, key=key, endpoint=endpoint, request_hash=fingerprint
                ).pk
        except IntegrityError:
            return None
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [owner, key, endpoint, fingerprint, now])
        row = cursor.fetchone()
    return row[0] if row else None


def _replay(*, owner: str, key: str, endpoint: str, fingerprint: str) -> Response:
    record = IdempotencyRecord.objects.get(owner=owner, key=key)
    if record.endpoint != endpoint or record.request_hash != fingerprint:
        raise IdempotencyKeyReused()
    if record.response_status is None:  # pragma: no cover - only reachable without a transaction
        raise RequestInProgress()
    return Response(
        record.response_body, status=record.response_status, headers={"Idempotent-Replayed": "true"}
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

"""The outbox: events recorded in the transaction that makes the change.

Writers (the stock ledger, orders, payments…) call `events_record` inside their transaction, so
an event exists if and only if its change committed. After the commit, `events_committed` is
sent; relays above this layer subscribe to it (the webhook dispatcher in `integrations`), and
their own beat task drains whatever a lost signal left behind. A relay that fails (a broker that
is down) is logged and never turns the committed write into an error.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from common.models import OutboxEvent

# Sent once the transaction that recorded events committed (no arguments but `sender`).
events_committed = Signal()


def events_record(events: list[tuple[str, dict]], *, occurred_at: datetime | None = None) -> None:
    """Append (topic, payload) events to the outbox, in the caller's transaction."""
    if not events:
        return
    occurred_at = occurred_at or timezone.now()
    OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(topic=topic, payload=payload, occurred_at=occurred_at)
            for topic, payload in events
        ]
    )
    transaction.on_commit(_announce, robust=True)


def _announce() -> None:
    events_committed.send_robust(sender=OutboxEvent)

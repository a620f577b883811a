"""Customer notifications: email through Django's email backends, SMS through the swappable
backend of `notifications.sms`, in the customer's language (fr or en).

Called from Celery tasks after commit, never inside a locked transaction. Each message is claimed
by a unique `dedupe_key` before it goes out, so a task that runs twice sends once; a failed send
(any exception) removes the claim and lets the task retry.

Order messages (confirmed, ready, reminder, cancelled…) are transactional: they go to the
contact the order was placed with, consent or not. Marketing-like messages (back in stock) are
sent only when `customers.selectors.customer_has_consent` says so for that channel.
"""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from notifications.models import Notification, NotificationChannel, NotificationStatus
from notifications.sms import send_sms

LANGUAGES = ("fr", "en")
ORDER_KINDS = (
    "order_confirmed",
    "order_ready",
    "pickup_reminder",
    "order_cancelled",
    "order_expired",
    "line_unavailable",
    "ready_by_changed",
)


def language_for(value: str | None) -> str:
    return value if value in LANGUAGES else "en"


def message_time_zone(name: str | None) -> zoneinfo.ZoneInfo:
    """Where the message's times are read: the store's zone, else NOTIFICATIONS_TIME_ZONE."""
    return zoneinfo.ZoneInfo(name or settings.NOTIFICATIONS_TIME_ZONE)


def render(kind: str, language: str, context: dict, time_zone: str = "") -> tuple[str, str, str]:
    """(email subject, email body, SMS text) from templates/notifications/<kind>.<lang>.txt.

    Times are written in `time_zone` (the store's: "ready at 12:00" in Paris is 12:00 on the
    shop's clock, winter or summer), dates and day names in the language's own words: the
    templates' `date` filter reads the active time zone and language, so both are set here."""
    language = language_for(language)
    template = f"notifications/{kind}.{language}.txt"
    with translation.override(language), timezone.override(message_time_zone(time_zone)):
        parts = [
            render_to_string(template, {**context, "part": part}).strip()
            for part in ("subject", "body", "sms")
        ]
    return parts[0], parts[1], parts[2]


def _claim(*, dedupe_key: str, **fields) -> Notification | None:
    try:
        with transaction.atomic():
            return Notification.objects.create(dedupe_key=dedupe_key[:200], **fields)
    except IntegrityError:
        return None  # already sent (the task ran twice)


def notification_deliver(
    *,
    dedupe_key: str,
    kind: str,
    language: str,
    context: dict,
    email: str = "",
    phone: str = "",
    customer_id: int | None = None,
    subject_reference: str = "",
    allowed_channels: frozenset[str] = frozenset({"email", "sms"}),
    time_zone: str = "",
    attachments: tuple[tuple[str, bytes, str], ...] = (),
) -> int:
    """Send by email and/or SMS; returns the number of messages sent now. Times are written in
    `time_zone` (the store's), see `render`. `attachments` (name, content, MIME type) go with
    the email (a pickup QR code)."""
    subject, body, sms_text = render(kind, language, context, time_zone)
    sent = 0
    for channel, address in ((NotificationChannel.EMAIL, email), (NotificationChannel.SMS, phone)):
        if not address:
            continue
        allowed = channel in allowed_channels
        claim = _claim(
            dedupe_key=f"{dedupe_key}:{channel}",
            kind=kind,
            channel=channel,
            language=language_for(language),
            customer_id=customer_id,
            subject_reference=subject_reference[:60],
            status=NotificationStatus.SENT if allowed else NotificationStatus.SKIPPED,
            note="" if allowed else "no consent for this channel",
        )
        if claim is None or not allowed:
            continue
        try:
            if channel == NotificationChannel.EMAIL:
                message = EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [address])
                for name, content, mimetype in attachments:
                    message.attach(name, content, mimetype)
                message.send()
            else:
                send_sms(address, sms_text)
        except BaseException:
            # Whatever stopped the send (a transport error, a gateway's own exception, the task's
            # time limit), the message may not have left: drop the claim so that a retry sends
            # it. A backend that fails after sending makes that a duplicate, not a loss.
            claim.delete()
            raise
        sent += 1
    return sent

"""Back in stock near me: alerts created by shoppers, checked by a periodic task.

`alerts_check` reads every open alert's SKUs in one query over the positions (what online
channels may sell, at active click & collect stores), matches each alert to its store or to the
nearest store within its radius, closes the alert (a conditional UPDATE: at most once, even with
two workers) and sends one message after commit, only if the customer consents to marketing on
that channel (`customers.selectors.customer_has_consent`); without consent the alert closes
silently.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from common.exceptions import InvalidInput
from common.tasks import task_after_commit
from customers.selectors import customer_has_consent
from inventory.models import StockPosition
from notifications.models import AlertStatus, BackInStockAlert, NotificationChannel
from notifications.services import notification_deliver
from stores.models import Location
from stores.selectors import distance_km

MAX_RADIUS_KM = 100


def alert_create(
    *,
    customer,
    sku_id: int,
    channel: str,
    contact: str,
    sales_channel: str,
    idempotency_key: str,
    location: Location | None = None,
    latitude: Decimal | None = None,
    longitude: Decimal | None = None,
    radius_km: Decimal | None = None,
    quantity: int = 1,
    language: str | None = None,
) -> BackInStockAlert:
    existing = BackInStockAlert.objects.filter(created_by_key=idempotency_key).first()
    if existing:
        existing.replayed = True
        return existing
    if channel not in NotificationChannel.values:
        raise InvalidInput("channel is email or sms.", details={"channel": [str(channel)]})
    if not contact:
        raise InvalidInput("Where should we tell you?", details={"contact": ["required"]})
    if location is not None:
        if not location.is_active or not location.allows_pickup:
            raise InvalidInput(
                f"{location.code} does not offer click & collect.",
                details={"store": [location.code]},
            )
    elif latitude is None or longitude is None or radius_km is None:
        raise InvalidInput(
            "Give a store, or a place (latitude, longitude) and a radius.",
            details={"store": ["required"]},
        )
    elif not 0 < radius_km <= MAX_RADIUS_KM:
        raise InvalidInput(
            f"radius_km is between 0 and {MAX_RADIUS_KM}.", details={"radius_km": ["range"]}
        )
    alert = BackInStockAlert.objects.create(
        customer=customer,
        sku_id=sku_id,
        location=location,
        latitude=None if location else latitude,
        longitude=None if location else longitude,
        radius_km=None if location else radius_km,
        quantity=quantity,
        channel=channel,
        contact=contact,
        language=language or customer.language,
        sales_channel=sales_channel,
        created_by_key=idempotency_key,
    )
    alert.replayed = False
    return alert


def alerts_check(*, limit: int = 5000) -> int:
    """Close the open alerts whose SKU is now available where asked; returns how many."""
    alerts = list(BackInStockAlert.objects.filter(status=AlertStatus.OPEN).order_by("pk")[:limit])
    if not alerts:
        return 0
    rows = StockPosition.objects.filter(
        sku_id__in={a.sku_id for a in alerts},
        available__gt=0,
        location__is_active=True,
        location__allows_pickup=True,
    ).values_list("sku_id", "location_id", "available", "location__latitude", "location__longitude")
    stocked: dict[int, list[tuple]] = {}
    for sku_id, location_id, available, lat, lon in rows:
        stocked.setdefault(sku_id, []).append((location_id, available, float(lat), float(lon)))
    fired = 0
    for alert in alerts:
        where = _match(alert, stocked.get(alert.sku_id, []))
        if where is not None and _close(alert, where):
            fired += 1
    return fired


def _match(alert: BackInStockAlert, offers: list[tuple]) -> int | None:
    if alert.location_id is not None:
        return next(
            (
                loc
                for loc, units, _, _ in offers
                if loc == alert.location_id and units >= alert.quantity
            ),
            None,
        )
    origin = (float(alert.latitude), float(alert.longitude))
    near = [
        (distance_km(*origin, lat, lon), loc)
        for loc, units, lat, lon in offers
        if units >= alert.quantity
    ]
    near = [(km, loc) for km, loc in near if km <= float(alert.radius_km)]
    return min(near)[1] if near else None


def _close(alert: BackInStockAlert, location_id: int) -> bool:

    consent = customer_has_consent(alert.customer_id, "marketing", alert.channel)
    status = AlertStatus.NOTIFIED if consent else AlertStatus.CLOSED_NO_CONSENT
    with transaction.atomic():
        closed = BackInStockAlert.objects.filter(pk=alert.pk, status=AlertStatus.OPEN).update(
            status=status, notified_location_id=location_id, closed_at=timezone.now()
        )
        if closed and consent:
            task_after_commit("notifications.tasks.stock_alert_notify_task", alert.pk)
    return bool(closed)


def alert_notification_send(*, alert_id: int) -> int:

    alert = BackInStockAlert.objects.select_related("sku", "notified_location", "customer").get(
        pk=alert_id
    )
    store = alert.notified_location
    return notification_deliver(
        dedupe_key=f"alert:{alert.pk}",
        kind="back_in_stock",
        language=alert.language,
        context={"first_name": alert.customer.first_name, "sku": alert.sku, "store": store},
        email=alert.contact if alert.channel == NotificationChannel.EMAIL else "",
        phone=alert.contact if alert.channel == NotificationChannel.SMS else "",
        customer_id=alert.customer_id,
        subject_reference=f"alert:{alert.pk}",
        time_zone=store.timezone if store else "",
    )

"""Reads of the outbound webhooks, for the API and the admin."""

from django.db.models import Count, Q, QuerySet
from django.utils.translation import gettext_lazy

from common.exceptions import NotFound
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint


class EndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"
    default_message = gettext_lazy("No webhook endpoint has this id.")


class DeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"
    default_message = gettext_lazy("This endpoint has no delivery with this id.")


def endpoints_with_backlog() -> QuerySet[WebhookEndpoint]:
    """Endpoints with how many deliveries wait (pending or failed, to be retried) and gave up."""
    return WebhookEndpoint.objects.annotate(
        waiting=Count(
            "deliveries",
            filter=Q(deliveries__status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED]),
        ),
        dead=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.DEAD)),
    ).order_by("name")


def endpoint_get(*, endpoint_id: int) -> WebhookEndpoint:
    endpoint = endpoints_with_backlog().filter(pk=endpoint_id).first()
    if endpoint is None:
        raise EndpointNotFound()
    return endpoint


def endpoint_deliveries(*, endpoint_id: int, status: str | None = None) -> QuerySet:
    """An endpoint's deliveries, newest event first; `status` filters (failed, dead…)."""
    deliveries = (
        WebhookDelivery.objects.filter(endpoint_id=endpoint_id)
        .select_related("event")
        .order_by("-event_id")
    )
    return deliveries.filter(status=status) if status else deliveries


def delivery_get(*, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    delivery = endpoint_deliveries(endpoint_id=endpoint_id).filter(pk=delivery_id).first()
    if delivery is None:
        raise DeliveryNotFound()
    return delivery

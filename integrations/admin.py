from django.contrib import admin
from django.utils.translation import gettext_lazy

from common.admin_utils import ReadOnlyAdminMixin, run_admin_service
from common.models import OutboxEvent
from integrations import pos, webhooks
from integrations.models import (
    DeliveryAttempt,
    PosEvent,
    PosEventStatus,
    PosIntegration,
    PosTill,
    StoreReceipt,
    WebhookDelivery,
    WebhookEndpoint,
    generate_webhook_secret,
)
from stores.access import StaffLocationScopedAdmin


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "url", "topics", "is_active", "deliver_from", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "url"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        webhooks.endpoints_changed()


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "topic", "occurred_at", "dispatched_at"]
    list_filter = ["topic"]
    date_hierarchy = "occurred_at"


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    readonly_fields = ["attempted_at", "response_status", "error", "duration_ms"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.action(description=gettext_lazy("Retry now"), permissions=["retry"])
def retry_deliveries(modeladmin, request, queryset):
    for delivery_id in queryset.values_list("pk", flat=True):
        webhooks.delivery_retry_now(delivery_id=delivery_id)
    modeladmin.message_user(request, "Retried.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Deliveries are never edited; sending one again needs the change permission all the same.
    def has_retry_permission(self, request):
        return request.user.has_perm("integrations.change_webhookdelivery")

    list_display = [
        "id",
        "endpoint",
        "event",
        "status",
        "attempts",
        "last_response_status",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "endpoint"]
    list_select_related = ["endpoint", "event"]
    inlines = [AttemptInline]
    actions = [retry_deliveries]

    def has_change_permission(self, request, obj=None):
        return obj is None


# --- POS ------------------------------------------------------------------------------------------


class PosTillInline(admin.TabularInline):
    model = PosTill
    extra = 0


@admin.action(
    description=gettext_lazy("Rotate the secret (the old one stays valid until cleared)"),
    permissions=["change"],
)
def rotate_secret(modeladmin, request, queryset):
    for integration in queryset:
        integration.previous_secret = integration.secret
        integration.secret = generate_webhook_secret()
        integration.save(update_fields=["secret", "previous_secret"])
        modeladmin.message_user(
            request,
            f"{integration.name}: new secret {integration.secret} — give it to the "
            "tills, then clear the previous secret.",
            level="warning",
        )


@admin.action(
    description=gettext_lazy("Clear the previous secret (end of rotation)"), permissions=["change"]
)
def clear_previous_secret(modeladmin, request, queryset):
    queryset.update(previous_secret="")


@admin.register(PosIntegration)
class PosIntegrationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "vendor", "is_active", "created_at"]
    filter_horizontal = ["stores"]
    inlines = [PosTillInline]
    actions = [rotate_secret, clear_previous_secret]
    readonly_fields = ["created_at"]


@admin.action(description=gettext_lazy("Replay the selected failed events"), permissions=["replay"])
def replay_events(modeladmin, request, queryset):

    for event in queryset.filter(status=PosEventStatus.FAILED):
        run_admin_service(
            request,
            lambda e=event: pos.pos_event_replay(inbox_pk=e.pk),
            f"Event {event.event_id} replayed.",
        )


@admin.register(PosEvent)
class PosEventAdmin(StaffLocationScopedAdmin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Events are never edited; applying a failed one again needs the change permission.
    def has_replay_permission(self, request):
        return request.user.has_perm("integrations.change_posevent")

    list_display = [
        "id",
        "integration",
        "event_id",
        "event_type",
        "location",
        "till",
        "occurred_at",
        "status",
        "attempts",
        "error",
        "received_at",
    ]
    list_filter = ["status", "event_type", "integration", "location"]
    search_fields = ["event_id", "error"]
    date_hierarchy = "received_at"
    actions = [replay_events]

    def has_change_permission(self, request, obj=None):
        return obj is None  # the changelist and its replay action


class PaymentIssuesFilter(admin.SimpleListFilter):
    """Receipts whose gift card or store credit tender could not be taken (docs/pos.md)."""

    title = "payment issues"
    parameter_name = "payment_issues"

    def lookups(self, request, model_admin):
        return [("yes", "With payment issues")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(payment_issues=[])
        return queryset


@admin.register(StoreReceipt)
class StoreReceiptAdmin(StaffLocationScopedAdmin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "number",
        "kind",
        "location",
        "till",
        "customer",
        "total",
        "currency",
        "occurred_at",
        "stock_flagged",
        "has_payment_issues",
    ]
    list_filter = ["kind", "location", "stock_flagged", PaymentIssuesFilter]
    search_fields = ["number", "order_reference", "customer__number"]
    list_select_related = ["location", "customer"]

    @admin.display(boolean=True, description=gettext_lazy("payment issues"))
    def has_payment_issues(self, obj):
        return bool(obj.payment_issues)

from django.contrib import admin

from common.admin_utils import ReadOnlyAdminMixin
from integrations import services
from integrations.models import DeliveryAttempt, OutboxEvent, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "url", "topics", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "url"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.endpoints_changed()


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


@admin.action(description="Retry now")
def retry_deliveries(modeladmin, request, queryset):
    for delivery_id in queryset.values_list("pk", flat=True):
        services.delivery_retry_now(delivery_id=delivery_id)
    modeladmin.message_user(request, "Retried.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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

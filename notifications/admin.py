from django.contrib import admin

from common.admin_utils import ReadOnlyAdminMixin
from notifications.models import BackInStockAlert, Notification


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "kind", "channel", "language", "subject_reference", "status"]
    list_filter = ["kind", "channel", "status", "language"]
    search_fields = ["subject_reference", "dedupe_key"]


@admin.register(BackInStockAlert)
class BackInStockAlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "sku", "location", "radius_km", "channel", "status", "created_at"]
    list_filter = ["status", "channel"]
    search_fields = ["sku__code", "customer__number"]
    list_select_related = ["sku", "location"]
    exclude = ["contact", "created_by_key"]

from django.contrib import admin

from common.admin_utils import run_admin_service
from stores.models import Closure, Location, OpeningHours


class OpeningHoursInline(admin.TabularInline):
    model = OpeningHours
    extra = 0


class ClosureInline(admin.TabularInline):
    model = Closure
    extra = 0


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "kind",
        "city",
        "is_active",
        "allows_pickup",
        "ships_from_location",
        "preparation_minutes",
        "routing_priority",
        "safety_stock",
    ]
    list_filter = ["kind", "is_active", "allows_pickup", "ships_from_location", "city"]
    search_fields = ["code", "name", "city", "postcode"]
    inlines = [OpeningHoursInline, ClosureInline]
    fieldsets = [
        (None, {"fields": ["code", "name", "kind", "is_active"]}),
        (
            "Address",
            {
                "fields": [
                    "address_line",
                    "postcode",
                    "city",
                    "country",
                    "phone",
                    "latitude",
                    "longitude",
                    "timezone",
                ]
            },
        ),
        (
            "Capabilities",
            {"fields": ["allows_pickup", "ships_from_location", "receives_transfers"]},
        ),
        (
            "Fulfilment",
            {
                "fields": [
                    "preparation_minutes",
                    "pickup_hold_days",
                    "routing_priority",
                    "daily_order_capacity",
                    "transfer_days_to_stores",
                ]
            },
        ),
        (
            "Stock",
            {
                "fields": ["safety_stock", "low_stock_threshold"],
                "description": "Changing the safety stock updates what online channels see at "
                "once, for every SKU without its own override.",
            },
        ),
    ]

    def save_model(self, request, obj, form, change):
        new_safety_stock = obj.safety_stock
        if change and "safety_stock" in form.changed_data:
            obj.safety_stock = form.initial[
                "safety_stock"
            ]  # the service sets it with the positions
        super().save_model(request, obj, form, change)
        if not change or "safety_stock" in form.changed_data:
            from inventory.services import safety_stock_set

            run_admin_service(
                request,
                lambda: safety_stock_set(location_id=obj.pk, quantity=new_safety_stock),
                f"Safety stock of {obj.code} set to {new_safety_stock}.",
            )


# Appended by the orders app: which staff work where (the admin scopes orders to it).
from stores.models import StaffAssignment  # noqa: E402


@admin.register(StaffAssignment)
class StaffAssignmentAdmin(admin.ModelAdmin):
    list_display = ["user", "location", "created_at"]
    list_filter = ["location"]
    search_fields = ["user__username", "location__code"]
    autocomplete_fields = ["location"]

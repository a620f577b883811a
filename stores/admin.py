from django.contrib import admin

from stores.models import Closure, Location, OpeningHours, StaffAssignment


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
                # The inventory app's admin saves it through the ledger's safety stock service.
                "description": "Changing the safety stock updates what online channels see at "
                "once, for every SKU without its own override.",
            },
        ),
    ]


# Which staff work where (the admin scopes orders, stock and transfers to it).
@admin.register(StaffAssignment)
class StaffAssignmentAdmin(admin.ModelAdmin):
    list_display = ["user", "location", "created_at"]
    list_filter = ["location"]
    search_fields = ["user__username", "location__code"]
    autocomplete_fields = ["location"]

from django.contrib import admin, messages

from common.models import ApiKey, IdempotencyRecord


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "prefix",
        "channel",
        "scopes",
        "is_active",
        "last_used_at",
        "created_at",
    ]
    list_filter = ["channel", "is_active"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "last_used_at", "created_at", "created_by"]
    fields = [
        "name",
        "channel",
        "scopes",
        "is_active",
        "prefix",
        "last_used_at",
        "created_at",
        "created_by",
    ]

    def save_model(self, request, obj, form, change):
        if not change:
            raw_key = ApiKey.generate_raw_key()
            obj.set_key(raw_key)
            obj.created_by = request.user
            # Shown once: only the hash is stored.
            messages.warning(
                request,
                f"New API key for {obj.name}: {raw_key} — copy it now, it will not be shown again.",
            )
        super().save_model(request, obj, form, change)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ["owner", "key", "endpoint", "response_status", "created_at"]
    search_fields = ["key", "owner"]
    list_filter = ["endpoint"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

"""Small helpers shared by admin modules."""

import uuid

from django.contrib import admin, messages

from common.exceptions import DomainError


class ReadOnlyAdminMixin:
    """Ledger rows are never edited or deleted, not even by a superuser."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    classes = ["omnistock-readonly"]  # static/omnistock/admin.css: no repeated row heading


def admin_actor(request) -> str:
    return f"staff:{request.user.get_username()}"


def admin_key(prefix: str) -> str:
    """An idempotency key for an admin form submission (embedded in the form, so a double
    submit of the same form applies once)."""
    return f"admin:{prefix}:{uuid.uuid4()}"


def run_admin_service(request, call, success_message: str) -> bool:
    """Call a service; turn a DomainError into an admin error message instead of a 500."""
    try:
        call()
    except DomainError as exc:  # plain words for staff; the code is for machines (the API)
        messages.error(request, exc.message)
        return False
    messages.success(request, success_message)
    return True

"""Who sees what in the back office: staff are attached to their locations (StaffAssignment)."""

from __future__ import annotations

from stores.models import StaffAssignment

ALL_LOCATIONS_PERMISSION = "orders.view_all_locations"


def staff_location_ids(user) -> list[int] | None:
    """The locations a staff user works at; None means every location (superusers and users
    with `orders.view_all_locations`, e.g. customer service)."""
    if user.is_superuser or user.has_perm(ALL_LOCATIONS_PERMISSION):
        return None

    return list(StaffAssignment.objects.filter(user=user).values_list("location_id", flat=True))


def may_act_at(user, location_id: int | None) -> bool:
    allowed = staff_location_ids(user)
    return allowed is None or location_id in allowed


class StaffLocationScopedAdmin:
    """Admin mixin: staff attached to locations see only the rows of those locations.

    `staff_location_field` names the lookup to the location (e.g. "location" for stock positions
    and movements, "source" for transfers). For the stock admin (owned by inventory), add e.g.
    `class StockPositionAdmin(StaffLocationScopedAdmin, ...)`.
    """

    staff_location_field = "location"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        allowed = staff_location_ids(request.user)
        if allowed is None:
            return queryset
        return queryset.filter(**{f"{self.staff_location_field}__in": allowed})

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from common.filters import StrictFilterSet
from common.models import Scope
from stores.models import Closure, Location, OpeningHours
from stores.selectors import location_get, location_ready_by, locations_with_calendar


@extend_schema_field({"type": "string", "pattern": r"^\d{2}:\d{2}:\d{2}$", "example": "10:00:00"})
class LocalTimeField(serializers.TimeField):
    """A time of day on the store's own clock (Location.timezone), with no offset: OpenAPI's
    `time` format (RFC 3339) requires one, so it is declared as a pattern."""


class OpeningHoursSerializer(serializers.ModelSerializer):
    opens_at = LocalTimeField()
    closes_at = LocalTimeField()

    class Meta:
        model = OpeningHours
        fields = ["weekday", "opens_at", "closes_at"]


class ClosureSerializer(serializers.ModelSerializer):
    class Meta:
        model = Closure
        fields = ["date", "reason"]


class LocationSerializer(serializers.ModelSerializer):
    opening_hours = OpeningHoursSerializer(many=True, read_only=True)
    closures = ClosureSerializer(many=True, read_only=True)
    ready_by_if_ordered_now = serializers.SerializerMethodField()

    class Meta:
        model = Location
        fields = [
            "code",
            "name",
            "kind",
            "address_line",
            "postcode",
            "city",
            "country",
            "latitude",
            "longitude",
            "timezone",
            "is_active",
            "allows_pickup",
            "ships_from_location",
            "receives_transfers",
            "preparation_minutes",
            "pickup_hold_days",
            "opening_hours",
            "closures",
            "ready_by_if_ordered_now",
        ]

    def get_ready_by_if_ordered_now(self, location) -> str | None:
        ready_by = location_ready_by(location)
        return ready_by.isoformat() if ready_by else None


class LocationFilter(StrictFilterSet):
    city = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Location
        fields = ["kind", "allows_pickup", "ships_from_location", "is_active", "city"]


class LocationListApi(generics.ListAPIView):
    """Warehouses and stores, with opening hours and the pickup promise of an order placed now."""

    required_scopes = [Scope.STOCK_READ]
    serializer_class = LocationSerializer
    filterset_class = LocationFilter

    def get_queryset(self):
        return locations_with_calendar().order_by("code")


class LocationDetailApi(APIView):
    required_scopes = [Scope.STOCK_READ]

    @extend_schema(responses=LocationSerializer)
    def get(self, request, code: str):
        location = location_get(code=code)
        location = locations_with_calendar().get(pk=location.pk)
        return Response(LocationSerializer(location).data)

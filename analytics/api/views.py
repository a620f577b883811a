"""Reports API: one KPI table per call, for a period, as JSON or CSV. API keys with
`reports:read` see every location; a staff session needs the KPI permission and sees its own
locations only (the same rule as the admin dashboard)."""

from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.access import report_location_ids
from analytics.api.renderers import KpiCsvRenderer
from analytics.kpis import TABLES
from analytics.periods import GRANULARITIES, period_parse
from common.channels import SalesChannel
from common.exceptions import NotFound
from common.models import Scope
from common.serializers import ErrorSerializer
from stores.models import Location


class KpiQuery(serializers.Serializer):
    # `from` is a Python keyword: the parameter names are mapped in `validate`.
    first_day = serializers.DateField(required=False)
    last_day = serializers.DateField(required=False)
    granularity = serializers.ChoiceField(choices=list(GRANULARITIES), required=False)
    channel = serializers.ChoiceField(choices=SalesChannel.values, required=False)
    location = serializers.CharField(required=False, max_length=2000)

    PARAMETERS = {"from", "to", "granularity", "channel", "location", "format"}

    def to_internal_value(self, data):
        unknown = sorted(set(data) - self.PARAMETERS)
        if unknown:
            raise serializers.ValidationError({name: ["unknown parameter"] for name in unknown})
        data = {
            "first_day": data.get("from"),
            "last_day": data.get("to"),
            **{key: data.get(key) for key in ("granularity", "channel", "location")},
        }
        return super().to_internal_value({k: v for k, v in data.items() if v not in (None, "")})


KpiTableOutput = inline_serializer(
    "KpiTable",
    {
        "name": serializers.CharField(),
        "title": serializers.CharField(),
        "columns": serializers.ListField(
            child=inline_serializer(
                "KpiColumn", {"key": serializers.CharField(), "label": serializers.CharField()}
            )
        ),
        "rows": serializers.ListField(child=serializers.DictField()),
        "notes": serializers.CharField(),
    },
)


class KpiTableApi(APIView):
    """A KPI table (sales, click & collect, stores, stock, customers, loyalty, payments) for a
    date range on the report's clock (Europe/Paris by default): `from` and `to` inclusive
    (the last 28 days by default, at most 400 days), `granularity` day / week / month, one
    `channel`, and `location` codes (comma separated). Add `?format=csv` for a CSV file."""

    required_scopes = [Scope.REPORTS_READ]
    renderer_classes = [JSONRenderer, KpiCsvRenderer]

    @extend_schema(
        operation_id="kpi_table",
        parameters=[
            OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(TABLES)),
            OpenApiParameter("from", OpenApiTypes.DATE, description="First day (inclusive)."),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Last day (inclusive)."),
            OpenApiParameter("granularity", OpenApiTypes.STR, enum=list(GRANULARITIES)),
            OpenApiParameter("channel", OpenApiTypes.STR, enum=SalesChannel.values),
            OpenApiParameter("location", OpenApiTypes.STR, description="Location codes, a,b,c"),
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"]),
        ],
        responses={200: KpiTableOutput, **dict.fromkeys((400, 401, 403, 404), ErrorSerializer)},
    )
    def get(self, request, name: str):
        kpi = TABLES.get(name)
        if kpi is None:
            raise NotFound(f"No KPI table {name[:40]!r}.", details={"name": list(TABLES)})
        asked = KpiQuery(data=request.query_params)
        asked.is_valid(raise_exception=True)
        query = asked.validated_data
        allowed = report_location_ids(request.user)
        if allowed is False:
            raise exceptions.PermissionDenied("Your account may not see the KPIs.")
        location_ids = _location_ids(query.get("location"), allowed)
        table = kpi(
            period_parse(
                first_day=query.get("first_day"),
                last_day=query.get("last_day"),
                granularity=query.get("granularity"),
                channel=query.get("channel"),
                location_ids=location_ids,
            )
        )
        response = Response(table.as_dict())
        if getattr(request.accepted_renderer, "format", "") == "csv":
            response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response


def _location_ids(codes: str | None, allowed: list[int] | None) -> list[int] | None:
    """The locations asked for (codes), within those the caller may see; None = every one."""
    if not codes:
        return allowed
    wanted = [code.strip() for code in codes.split(",") if code.strip()]
    found = dict(Location.objects.filter(Q(code__in=wanted)).values_list("code", "pk"))
    unknown = sorted(set(wanted) - set(found))
    if unknown:
        raise NotFound(f"Unknown location(s): {', '.join(unknown)[:200]}.",
                       details={"location": unknown[:20]})  # fmt: skip
    ids = sorted(found.values())
    return ids if allowed is None else [pk for pk in ids if pk in allowed]

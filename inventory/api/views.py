"""Stock API: thin views that validate input, call one service or selector, and serialise."""

import json

import django_filters
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import validated_input
from common.auth import caller_channel, caller_is_staff_session, caller_label, caller_owner
from common.exceptions import InvalidInput
from common.filters import BoundedIsoDateTimeFilter, StrictFilterSet
from common.idempotency import idempotency_key_from, idempotent
from common.models import Scope
from common.pagination import DefaultPagination, paginated
from common.schema import IDEMPOTENCY_HEADER
from common.serializers import ErrorSerializer
from inventory import access, selectors, services
from inventory.api import serializers as io
from inventory.models import (
    MovementKind,
    Reservation,
    Sku,
    StockCount,
    StockMovement,
    StockPosition,
    Transfer,
)
from stores.selectors import location_get

ERRORS = {
    400: ErrorSerializer,
    401: ErrorSerializer,
    403: ErrorSerializer,
    404: ErrorSerializer,
    409: ErrorSerializer,
    422: ErrorSerializer,
}


def _service_key(request) -> str:
    """The ledger-level idempotency key: the client's key, namespaced by who sent it."""
    return f"api:{caller_owner(request)}:{idempotency_key_from(request)}"


def _sku_lines(lines, quantity_field="quantity") -> list[tuple[int, int]]:
    ids = selectors.sku_ids_by_code([line["sku"] for line in lines])
    return [(ids[line["sku"]], line[quantity_field]) for line in lines]


def _flag_param(request, name: str) -> bool:
    """A true/false query parameter: absent is false; a value other than true/false/1/0 is a
    400 (an unreadable flag must not silently mean false)."""
    value = request.query_params.get(name)
    if value in (None, ""):
        return False
    if value.lower() in {"true", "1"}:
        return True
    if value.lower() in {"false", "0"}:
        return False
    raise InvalidInput(f"`{name}` is true or false.", details={name: ["not a boolean"]})


def _csv_param(request, name: str, *, limit: int) -> list[str]:
    raw = request.query_params.getlist(name)
    codes = [code.strip() for value in raw for code in value.split(",") if code.strip()]
    codes = list(dict.fromkeys(codes))
    if len(codes) > limit:
        raise InvalidInput(f"At most {limit} values for {name!r}.", details={name: ["too many"]})
    if any(len(code) > 64 for code in codes):
        raise InvalidInput(f"A {name!r} value is too long.", details={name: ["too long"]})
    return codes


# ---- catalogue -------------------------------------------------------------------------------


class SkuListApi(generics.ListAPIView):
    required_scopes = [Scope.STOCK_READ]
    serializer_class = io.SkuSerializer
    queryset = Sku.objects.order_by("code")
    filterset_fields = ["category", "is_active", "barcode"]


class SkuDetailApi(APIView):
    required_scopes = [Scope.STOCK_READ]

    @extend_schema(responses={200: io.SkuSerializer, **ERRORS})
    def get(self, request, code: str):
        return Response(io.SkuSerializer(selectors.sku_get(code=code)).data)


# ---- availability ----------------------------------------------------------------------------


class AvailabilityApi(APIView):
    """Where can I get these SKUs? Available units per location and across the network."""

    required_scopes = [Scope.STOCK_READ]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "skus", str, required=True, description="Comma-separated SKU codes (up to 500)."
            ),
            OpenApiParameter("locations", str, description="Comma-separated location codes."),
            OpenApiParameter("include_empty", bool, description="List locations with 0 too."),
        ],
        responses={
            200: inline_serializer(
                name="AvailabilityAnswer",
                fields={
                    "channel": serializers.CharField(),
                    "results": io.SkuAvailabilitySerializer(many=True),
                },
            ),
            **ERRORS,
        },
    )
    def get(self, request):
        skus = _csv_param(request, "skus", limit=selectors.MAX_SKUS_PER_AVAILABILITY_CALL)
        if not skus:
            raise InvalidInput(
                "Give at least one SKU code in `skus`.", details={"skus": ["required"]}
            )
        locations = _csv_param(request, "locations", limit=1000)
        include_empty = _flag_param(request, "include_empty")
        channel = caller_channel(request)
        availability = selectors.availability_for_skus(
            sku_codes=skus,
            channel=channel,
            location_codes=locations or None,
            include_empty=include_empty,
        )
        # The database already serialised each SKU's locations: splice, don't re-encode.
        results = ",".join(
            f'{{"sku":{json.dumps(item.sku)},"available":{item.available},'
            f'"locations":{item.locations_json}}}'
            for item in availability
        )
        return HttpResponse(
            f'{{"channel":{json.dumps(channel)},"results":[{results}]}}',
            content_type="application/json",
        )


class NearQuerySerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    lat = serializers.FloatField(min_value=-90, max_value=90, required=False)
    lon = serializers.FloatField(min_value=-180, max_value=180, required=False)
    store = serializers.CharField(
        max_length=20, required=False, help_text="Use this store's position instead of lat/lon."
    )
    quantity = serializers.IntegerField(min_value=1, max_value=10_000, default=1)
    radius_km = serializers.FloatField(min_value=0.1, max_value=20_000, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=50, default=5)
    pickup_only = serializers.BooleanField(default=True)

    def validate(self, attrs):
        if attrs.get("store") is None and (attrs.get("lat") is None or attrs.get("lon") is None):
            raise serializers.ValidationError("Give lat and lon, or a store code.")
        return attrs


class AvailabilityNearApi(APIView):
    """Nearest locations with the SKU available, each with its distance and pickup promise."""

    required_scopes = [Scope.STOCK_READ]

    @extend_schema(
        parameters=[NearQuerySerializer],
        responses={200: io.NearbyOfferSerializer(many=True), **ERRORS},
    )
    def get(self, request):
        query = NearQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        if params.get("store"):
            origin = location_get(code=params["store"])
            latitude, longitude = float(origin.latitude), float(origin.longitude)
        else:
            latitude, longitude = params["lat"], params["lon"]
        offers = selectors.availability_near(
            sku_code=params["sku"],
            latitude=latitude,
            longitude=longitude,
            channel=caller_channel(request),
            quantity=params["quantity"],
            radius_km=params.get("radius_km"),
            limit=params["limit"],
            pickup_only=params["pickup_only"],
        )
        return Response(
            {
                "sku": params["sku"],
                "origin": {"lat": latitude, "lon": longitude},
                "results": io.NearbyOfferSerializer(offers, many=True).data,
            }
        )


# ---- ledger reads ----------------------------------------------------------------------------


class PositionFilter(StrictFilterSet):
    sku = django_filters.CharFilter(field_name="sku__code")
    location = django_filters.CharFilter(field_name="location__code")
    available_gt = django_filters.NumberFilter(field_name="available", lookup_expr="gt")

    class Meta:
        model = StockPosition
        fields = ["sku", "location"]


class PositionListApi(generics.ListAPIView):
    required_scopes = [Scope.STOCK_READ]
    serializer_class = io.PositionSerializer
    filterset_class = PositionFilter

    def get_queryset(self):
        return StockPosition.objects.select_related("sku", "location").order_by(
            "sku__code", "location__code"
        )


class MovementFilter(StrictFilterSet):
    sku = django_filters.CharFilter(field_name="sku__code")
    location = django_filters.CharFilter(field_name="location__code")
    kind = django_filters.ChoiceFilter(choices=MovementKind.choices)
    occurred_after = BoundedIsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = BoundedIsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    reference = django_filters.CharFilter(field_name="operation__reference")

    class Meta:
        model = StockMovement
        fields = ["sku", "location", "kind"]


class MovementListApi(generics.ListAPIView):
    """The append-only ledger, newest first."""

    required_scopes = [Scope.STOCK_READ]
    serializer_class = io.MovementSerializer
    filterset_class = MovementFilter

    def get_queryset(self):
        return selectors.movements_list().order_by("-id")


# ---- stock writes ----------------------------------------------------------------------------


def _staff_check(request, action: str, location_ids) -> None:
    """A staff session writes stock as in the admin (inventory.access): with the write's
    permission, at its own locations only. API keys are not staff: their scopes decide."""
    if caller_is_staff_session(request) and not access.staff_may_at(
        request.user, action, location_ids
    ):
        raise exceptions.PermissionDenied(
            f"Your account may not {action.replace('_', ' ')} stock there "
            f"({access.STOCK_ACTION_PERMISSIONS[action]}, at your own locations)."
        )


def _operation_response(operation, status_code=status.HTTP_201_CREATED) -> Response:
    return Response(io.OperationSerializer(operation).data, status=status_code)


class ReceiptCreateApi(APIView):
    required_scopes = [Scope.STOCK_WRITE]

    @extend_schema(
        request=io.ReceiptInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: io.OperationSerializer, **ERRORS},
    )
    def post(self, request):
        def perform():
            data = validated_input(io.ReceiptInput, request)
            location = selectors.location_for_stock(code=data["location"])
            _staff_check(request, "receive", [location.pk])
            operation = services.stock_receive(
                location_id=location.pk,
                lines=_sku_lines(data["lines"]),
                idempotency_key=_service_key(request),
                reference=data["reference"],
                actor=caller_label(request),
                channel=caller_channel(request),
            )
            return _operation_response(operation)

        return idempotent(request, endpoint="stock.receipt", perform=perform)


class AdjustmentCreateApi(APIView):
    required_scopes = [Scope.STOCK_WRITE]

    @extend_schema(
        request=io.AdjustmentInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: io.OperationSerializer, **ERRORS},
    )
    def post(self, request):
        def perform():
            data = validated_input(io.AdjustmentInput, request)
            location = selectors.location_for_stock(code=data["location"])
            _staff_check(request, "adjust", [location.pk])
            operation = services.stock_adjust(
                location_id=location.pk,
                sku_id=selectors.sku_get(code=data["sku"]).pk,
                delta=data["delta"],
                reason=data["reason"],
                note=data["note"],
                idempotency_key=_service_key(request),
                actor=caller_label(request),
                channel=caller_channel(request),
            )
            return _operation_response(operation)

        return idempotent(request, endpoint="stock.adjustment", perform=perform)


class SetAsideCreateApi(APIView):
    """Move units to or from unsellable (damage, quality control), or write unsellable units off."""

    required_scopes = [Scope.STOCK_WRITE]

    @extend_schema(
        request=io.SetAsideInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: io.OperationSerializer, **ERRORS},
    )
    def post(self, request):
        def perform():
            data = validated_input(io.SetAsideInput, request)
            location = selectors.location_for_stock(code=data["location"])
            _staff_check(request, "set_aside", [location.pk])
            operation = services.stock_set_aside(
                location_id=location.pk,
                sku_id=selectors.sku_get(code=data["sku"]).pk,
                quantity=data["quantity"],
                reason=data["reason"],
                note=data["note"],
                restore=data["action"] == "restore",
                write_off=data["action"] == "write_off",
                idempotency_key=_service_key(request),
                actor=caller_label(request),
            )
            return _operation_response(operation)

        return idempotent(request, endpoint="stock.set_aside", perform=perform)


class CountCreateApi(APIView):
    """A shelf count: each difference with the ledger (at the count's time) becomes an
    adjustment."""

    required_scopes = [Scope.STOCK_WRITE]

    @extend_schema(
        request=io.CountInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: io.StockCountSerializer, **ERRORS},
    )
    def post(self, request):
        def perform():
            data = validated_input(io.CountInput, request)
            location = selectors.location_for_stock(code=data["location"])
            _staff_check(request, "count", [location.pk])
            count = services.stock_count_apply(
                location_id=location.pk,
                counts=_sku_lines(data["lines"], "counted"),
                counted_at=data.get("counted_at"),
                idempotency_key=_service_key(request),
                actor=caller_label(request),
                channel=caller_channel(request),
            )
            return Response(io.StockCountSerializer(count).data, status=status.HTTP_201_CREATED)

        return idempotent(request, endpoint="stock.count", perform=perform)


class CountDetailApi(APIView):
    required_scopes = [Scope.STOCK_READ]

    @extend_schema(responses={200: io.StockCountSerializer, **ERRORS})
    def get(self, request, pk: int):
        return Response(io.StockCountSerializer(get_object_or_404(StockCount, pk=pk)).data)


# ---- reservations ----------------------------------------------------------------------------


class ReservationListCreateApi(APIView):
    required_scopes = {"GET": [Scope.STOCK_READ], "POST": [Scope.STOCK_WRITE]}

    @extend_schema(
        parameters=[OpenApiParameter("reference", str)],
        operation_id="v1_reservations_list",
        responses={200: paginated(io.ReservationSerializer), **ERRORS},
    )
    def get(self, request):
        reference = request.query_params.get("reference", "")[:120]
        reservations = Reservation.objects.select_related("sku", "location").order_by("-pk")
        if reference:
            reservations = reservations.filter(reference=reference)
        page = self.paginator.paginate_queryset(reservations, request, view=self)
        return self.paginator.get_paginated_response(io.ReservationSerializer(page, many=True).data)

    @property
    def paginator(self):
        if not hasattr(self, "_paginator"):
            self._paginator = DefaultPagination()
        return self._paginator

    @extend_schema(
        request=io.ReservationInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: io.ReservationSerializer(many=True), **ERRORS},
    )
    def post(self, request):
        """Hold units for an order or a cart: every line or none."""

        def perform():
            data = validated_input(io.ReservationInput, request)
            sku_ids = selectors.sku_ids_by_code([line["sku"] for line in data["lines"]])
            location_ids = selectors.location_ids_by_code(
                [line["location"] for line in data["lines"]]
            )
            _staff_check(request, "reserve", location_ids.values())
            reservations = services.reservations_create(
                requests=[
                    services.ReservationRequest(
                        sku_id=sku_ids[line["sku"]],
                        location_id=location_ids[line["location"]],
                        quantity=line["quantity"],
                    )
                    for line in data["lines"]
                ],
                idempotency_key=_service_key(request),
                channel=caller_channel(request),
                reference=data["reference"],
                expires_at=data.get("expires_at"),
                ttl_seconds=data.get("ttl_seconds"),
                actor=caller_label(request),
            )
            return Response(
                {"reservations": io.ReservationSerializer(reservations, many=True).data},
                status=status.HTTP_201_CREATED,
            )

        return idempotent(request, endpoint="stock.reserve", perform=perform)


class ReservationDetailApi(APIView):
    required_scopes = [Scope.STOCK_READ]

    @extend_schema(responses={200: io.ReservationSerializer, **ERRORS})
    def get(self, request, pk: int):
        reservation = get_object_or_404(
            Reservation.objects.select_related("sku", "location"), pk=pk
        )
        return Response(io.ReservationSerializer(reservation).data)


class ReservationSettleApi(APIView):
    required_scopes = [Scope.STOCK_WRITE]
    commit = False

    @extend_schema(
        request=io.SettleInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: io.ReservationSerializer, **ERRORS},
    )
    def post(self, request, pk: int):
        def perform():
            data = validated_input(io.SettleInput, request)
            reservation = get_object_or_404(Reservation, pk=pk)
            _staff_check(request, "settle_reservation", [reservation.location_id])
            if self.commit:
                reservation = services.reservation_commit(
                    reservation_id=pk,
                    quantity=data.get("quantity"),
                    release_rest=data["release_rest"],
                    idempotency_key=_service_key(request),
                    actor=caller_label(request),
                )
            else:
                reservation = services.reservation_release(
                    reservation_id=pk,
                    quantity=data.get("quantity"),
                    idempotency_key=_service_key(request),
                    actor=caller_label(request),
                )
            return Response(io.ReservationSerializer(reservation).data)

        return idempotent(
            request,
            endpoint=f"stock.reservation.{'commit' if self.commit else 'release'}",
            perform=perform,
        )


# ---- transfers -------------------------------------------------------------------------------


class TransferFilter(StrictFilterSet):
    source = django_filters.CharFilter(field_name="source__code")
    destination = django_filters.CharFilter(field_name="destination__code")

    class Meta:
        model = Transfer
        fields = ["status", "source", "destination"]


class TransferListCreateApi(generics.ListAPIView):
    required_scopes = {"GET": [Scope.STOCK_READ], "POST": [Scope.STOCK_WRITE]}
    serializer_class = io.TransferSerializer
    filterset_class = TransferFilter

    def get_queryset(self):
        return (
            Transfer.objects.select_related("source", "destination")
            .prefetch_related("lines__sku")
            .order_by("-pk")
        )

    @extend_schema(
        request=io.TransferInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: io.TransferSerializer, **ERRORS},
    )
    def post(self, request):
        def perform():
            data = validated_input(io.TransferInput, request)
            ids = selectors.location_ids_by_code([data["source"], data["destination"]])
            _staff_check(request, "transfer", [ids[data["source"]]])
            transfer = services.transfer_request(
                source_id=ids[data["source"]],
                destination_id=ids[data["destination"]],
                lines=_sku_lines(data["lines"]),
                reference=data["reference"],
                idempotency_key=_service_key(request),
                actor=caller_label(request),
            )
            return Response(io.TransferSerializer(transfer).data, status=status.HTTP_201_CREATED)

        return idempotent(request, endpoint="stock.transfer", perform=perform)


class TransferDetailApi(APIView):
    required_scopes = [Scope.STOCK_READ]

    @extend_schema(responses={200: io.TransferSerializer, **ERRORS})
    def get(self, request, pk: int):
        return Response(io.TransferSerializer(get_object_or_404(Transfer, pk=pk)).data)


class TransferActionApi(APIView):
    required_scopes = [Scope.STOCK_WRITE]
    action = "ship"

    @extend_schema(
        request=io.TransferReceiptInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: io.TransferSerializer, **ERRORS},
    )
    def post(self, request, pk: int):
        def perform():
            transfer = get_object_or_404(Transfer, pk=pk)
            # ship and cancel at the source, receive at the destination
            at = transfer.destination_id if self.action == "receive" else transfer.source_id
            _staff_check(request, "transfer", [at])
            key, actor = _service_key(request), caller_label(request)
            if self.action == "cancel":
                transfer = services.transfer_cancel_with_owner(transfer_id=pk, actor=actor)
            elif self.action == "ship":
                data = validated_input(io.TransferShipInput, request)
                shipped = dict(_sku_lines(data["lines"])) if data.get("lines") else None
                transfer = services.transfer_ship_with_owner(
                    transfer_id=pk, shipped=shipped, idempotency_key=key, actor=actor
                )
            else:
                data = validated_input(io.TransferReceiptInput, request)
                transfer = services.transfer_receive_with_owner(
                    transfer_id=pk,
                    received=dict(_sku_lines(data["lines"])),
                    close=data["close"],
                    idempotency_key=key,
                    actor=actor,
                )
            return Response(io.TransferSerializer(transfer).data)

        return idempotent(request, endpoint=f"stock.transfer.{self.action}", perform=perform)

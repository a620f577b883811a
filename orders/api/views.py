"""Orders API: thin views that validate input, call one service or selector, and serialise.

Customer-facing channels (web, app, marketplace, call centre) place, read and cancel their own
channel's orders; store staff (a `store` API key, or a staff session) see every order and drive
the fulfilment transitions. Every POST that changes something takes an Idempotency-Key.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import validated_input
from common.auth import (
    caller_channel,
    caller_is_customer_facing,
    caller_is_staff_session,
    caller_label,
    caller_owner,
    caller_sees_orders_of,
)
from common.channels import SalesChannel
from common.exceptions import InvalidInput
from common.idempotency import idempotency_key_from, idempotent
from common.models import Scope
from common.money import Money
from common.pagination import DefaultPagination, paginated
from common.schema import IDEMPOTENCY_HEADER
from common.serializers import ErrorSerializer
from customers.identifiers import parse_identifier
from customers.selectors import contact_on_file, customer_get
from customers.services import customer_identify_or_create
from inventory.selectors import location_ids_by_code, sku_ids_by_code
from notifications.alerts import alert_create
from orders import access, selectors, services
from orders.api import serializers as io
from orders.exceptions import OrderNotFound
from orders.models import Order
from stores.access import staff_location_ids
from stores.models import Location

ERRORS = dict.fromkeys((400, 401, 403, 404, 409, 410, 422), ErrorSerializer)


def _service_key(request, endpoint: str) -> str:
    return f"api:{caller_owner(request)}:{endpoint}:{idempotency_key_from(request)}"


def _paginated(request, view, orders) -> Response:
    paginator = DefaultPagination()
    page = paginator.paginate_queryset(orders, request, view=view)
    return paginator.get_paginated_response(io.OrderSummaryOutput(page, many=True).data)


def _is_staff_caller(request) -> bool:
    return not caller_is_customer_facing(request)


def _order_for(request, reference: str, *, action: str = "view", staff_action: bool = False):
    """The order, if this caller may see it and do `action`: a customer-facing channel sees only
    its own channel's orders; a staff session, as in the admin (`orders.access`), only its
    stores' orders (a return excepted: taken anywhere) and only with the action's permission."""
    if staff_action and not _is_staff_caller(request):
        raise exceptions.PermissionDenied(
            "Fulfilment steps are for store staff (a store API key or a staff session)."
        )
    order = selectors.order_get(reference=reference)
    hidden = not caller_sees_orders_of(request, order.channel)
    if caller_is_staff_session(request):
        if action != "return" and not access.staff_sees_order(request.user, order):
            hidden = True
        elif not hidden and not access.staff_may(request.user, action):
            raise exceptions.PermissionDenied(
                f"Your account may not {action.replace('-', ' ')} orders "
                f"({access.ACTION_PERMISSIONS.get(action, 'no such action')})."
            )
    if hidden:
        raise OrderNotFound.of_reference(reference)
    return order


def _staff_location_check(request, location_id: int) -> None:
    """A staff session acts only at its own stores (a return taken, a line rejected there)."""
    if caller_is_staff_session(request) and not access.staff_may_act_at(request.user, location_id):
        raise exceptions.PermissionDenied("This location is not one of yours.")


def _detail(reference: str, *, status_code=status.HTTP_200_OK) -> Response:
    return Response(
        io.order_representation(selectors.order_get(reference=reference)), status=status_code
    )


def _customer(request, data: dict):

    if data.get("reference"):
        return customer_get(reference=data["reference"], with_store=False)
    identifiers = [
        (kind, data[kind], "") for kind in ("loyalty_card", "email", "phone") if data.get(kind)
    ]
    return customer_identify_or_create(
        identifiers=identifiers,
        first_name=data.get("first_name", ""),
        last_name=data.get("last_name", ""),
        language=data.get("language"),
        sales_channel=caller_channel(request),
        actor=caller_label(request),
    ).customer


def _contacts(customer, data: dict) -> dict[str, str]:
    """The contact sent with the order; without one, messages go to the customer's primary
    email and phone in the customer reference, looked up when they are sent."""
    return {
        "contact_email": (data.get("email") or "").strip(),
        "contact_phone": _contact_phone(data.get("phone")),
    }


def _contact_phone(raw: str | None) -> str:

    return parse_identifier("phone", raw).value if raw else ""


class CartCheckApi(APIView):
    """Can this cart be collected at this store, and when? Alternatives when it cannot at once."""

    required_scopes = [Scope.ORDERS_READ]

    @extend_schema(request=io.CartCheckInput, responses={200: io.CartCheckOutput, **ERRORS})
    def post(self, request):
        data = validated_input(io.CartCheckInput, request)
        ids = sku_ids_by_code([line["sku"] for line in data["lines"]])
        check = selectors.cart_check(
            store_code=data["store"],
            lines=[(ids[line["sku"]], line["sku"], line["quantity"]) for line in data["lines"]],
            channel=caller_channel(request),
        )
        return Response(io.CartCheckOutput(check).data)


class OrderPlaceApi(APIView):
    required_scopes = {"GET": [Scope.ORDERS_READ], "POST": [Scope.ORDERS_WRITE]}

    @extend_schema(
        parameters=[io.OrderListQuery],
        operation_id="v1_orders_list",
        responses={200: paginated(io.OrderSummaryOutput), **ERRORS},
        description="Orders, newest first, paginated (`page`, `page_size` ≤ 500), filtered by "
        "customer, channel, status, store (pickup store or a location serving the order) and "
        "placing time. A customer-facing key (web, app, marketplace, call centre) sees only "
        "its own channel's orders, as for an order's detail. An invalid filter is a 400.",
    )
    def get(self, request):
        query = io.OrderListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        channel = params.get("channel")
        if caller_is_customer_facing(request):  # the order detail's rule, for the whole list
            if channel not in (None, caller_channel(request)):
                return _paginated(request, self, Order.objects.none())
            channel = caller_channel(request)
        staff_locations = None
        if caller_is_staff_session(request):  # as in the admin: their stores' orders
            if not access.staff_may(request.user, "view"):
                raise exceptions.PermissionDenied("Your account may not view orders.")
            staff_locations = staff_location_ids(request.user)
        orders = selectors.orders_list(
            staff_locations=staff_locations,
            channel=channel,
            status=params.get("status"),
            customer_id=(
                customer_get(reference=params["customer"], allow_erased=True).pk
                if params.get("customer")
                else None
            ),
            location_id=(
                location_ids_by_code([params["store"]])[params["store"]]
                if params.get("store")
                else None
            ),
            placed_from=params.get("placed_from"),
            placed_to=params.get("placed_to"),
        )
        return _paginated(request, self, orders)

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.OrderPlaceInput,
        responses={201: io.OrderOutput, **ERRORS},
        description="Place an order: every line is reserved (routed to the best locations) or "
        "none is (409 out_of_stock names the short lines). A retry with the same "
        "Idempotency-Key and body returns the same order; another body gets 422.",
    )
    def post(self, request):
        def perform():
            data = validated_input(io.OrderPlaceInput, request)
            sku_ids = sku_ids_by_code([line["sku"] for line in data["lines"]])
            fulfilment = data["fulfilment"]
            pickup_id = address = None
            if fulfilment["type"] == "pickup":
                pickup_id = location_ids_by_code([fulfilment["store"]])[fulfilment["store"]]
            else:
                given = fulfilment["address"]
                address = services.DeliveryAddress(
                    name=given["name"],
                    address=given["line1"],
                    postcode=given["postcode"],
                    city=given["city"],
                    country=given["country"].upper(),
                    latitude=given["latitude"],
                    longitude=given["longitude"],
                )
            customer_data = data["customer"]
            customer = _customer(request, customer_data)
            order = services.order_place(
                channel=caller_channel(request),
                customer=customer,
                lines=[
                    services.OrderLineRequest(
                        sku_id=sku_ids[line["sku"]],
                        quantity=line["quantity"],
                        unit_price=line["unit_price"],
                        currency=line["currency"].upper(),
                        sku_code=line["sku"],
                    )
                    for line in data["lines"]
                ],
                fulfilment=fulfilment["type"],
                pickup_location_id=pickup_id,
                address=address,
                **_contacts(customer, customer_data),
                language=customer_data.get("language") or customer.language,
                idempotency_key=_service_key(request, "orders.place"),
                actor=caller_label(request),
            )
            if order.replayed:  # the service saw this key before: read the order back
                return _detail(order.reference, status_code=status.HTTP_201_CREATED)
            # A new order comes back with its lines, allocations, decision and journal in memory.
            return Response(io.order_representation(order), status=status.HTTP_201_CREATED)

        return idempotent(request, endpoint="orders.place", perform=perform)


class OrderDetailApi(APIView):
    required_scopes = [Scope.ORDERS_READ]

    @extend_schema(responses={200: io.OrderOutput, **ERRORS})
    def get(self, request, reference: str):
        return Response(io.order_representation(_order_for(request, reference)))


class OrderActionApi(APIView):
    """One fulfilment step on an order (cancel for every channel; the rest for store staff)."""

    required_scopes = [Scope.ORDERS_WRITE]
    action: str = ""
    input_serializer = None
    staff_only = True

    def post(self, request, reference: str, **kwargs):
        endpoint = f"orders.{self.action}:{reference}:{kwargs}"

        def perform():
            order = _order_for(request, reference, action=self.action, staff_action=self.staff_only)
            data = validated_input(self.input_serializer, request) if self.input_serializer else {}
            common = {
                "order_id": order.pk,
                "actor": caller_label(request),
                "channel": caller_channel(request),
                "idempotency_key": _service_key(request, endpoint),
            }
            result = self.run(order, data, common, **kwargs)
            if result is not None:
                return result
            return _detail(reference)

        return idempotent(request, endpoint=endpoint, perform=perform)

    def run(self, order, data, common, **kwargs):  # pragma: no cover - overridden
        raise NotImplementedError


def _action_schema(input_serializer=None, description=""):
    return extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=input_serializer,
        responses={200: io.OrderOutput, **ERRORS},
        description=description,
    )


class OrderCancelApi(OrderActionApi):
    action = "cancel"
    input_serializer = io.ReasonInput
    staff_only = False

    @_action_schema(io.ReasonInput, "Cancel an open order; its reservations are released.")
    def post(self, request, reference: str):
        return super().post(request, reference)

    def run(self, order, data, common):
        services.order_cancel(reason=data["reason"], **common)


class OrderPickingApi(OrderActionApi):
    action = "picking"

    @_action_schema(None, "Staff start preparing the order (allocated → picking).")
    def post(self, request, reference: str):
        return super().post(request, reference)

    def run(self, order, data, common):
        services.order_picking_start(**common)


class OrderReadyApi(OrderActionApi):
    action = "ready"

    @_action_schema(None, "Click & collect: ready at the counter; the customer gets the code.")
    def post(self, request, reference: str):
        return super().post(request, reference)

    def run(self, order, data, common):
        services.order_mark_ready(**common)


class OrderCollectApi(OrderActionApi):
    action = "collect"
    input_serializer = io.CollectInput

    @_action_schema(
        io.CollectInput,
        "Hand over against the pickup code (or QR payload), with what the till took for it "
        "(`paid_at_till`). Refused with 409 payment_due (nothing handed over, no payment "
        "recorded) while money is still due, except for orders paid elsewhere (marketplace).",
    )
    def post(self, request, reference: str):
        return super().post(request, reference)

    def run(self, order, data, common):
        taken = (
            {line["line"]: line["quantity"] for line in data["lines"]}
            if data.get("lines")
            else None
        )
        paid = data.get("paid_at_till")
        services.order_handover(
            code=data["code"],
            taken=taken,
            paid_at_till=Money(paid["amount"], paid["currency"]) if paid else None,
            till_reference=paid["till_reference"] if paid else "",
            **common,
        )


class OrderShipApi(OrderActionApi):
    action = "ship"
    input_serializer = io.ShipInput

    @_action_schema(io.ShipInput, "Home delivery: the parcel(s) leave; reservations commit.")
    def post(self, request, reference: str):
        return super().post(request, reference)

    def run(self, order, data, common):
        location_id = None
        if data.get("location"):
            location_id = location_ids_by_code([data["location"]])[data["location"]]
        services.order_ship(location_id=location_id, tracking=data["tracking"], **common)


class OrderDeliverApi(OrderActionApi):
    action = "deliver"

    @_action_schema(None, "The carrier delivered the order (shipped → delivered).")
    def post(self, request, reference: str):
        return super().post(request, reference)

    def run(self, order, data, common):
        services.order_deliver(**common)


class OrderLineRejectApi(OrderActionApi):
    action = "reject"
    input_serializer = io.RejectInput

    @_action_schema(
        io.RejectInput,
        "Staff cannot prepare a line: not_on_shelf (on hand drops to found_quantity) or damaged "
        "(units become unsellable). The line is routed again automatically.",
    )
    def post(self, request, reference: str, line: int):
        return super().post(request, reference, line=line)

    def run(self, order, data, common, line):
        location_id = location_ids_by_code([data["location"]])[data["location"]]
        _staff_location_check(request=self.request, location_id=location_id)
        services.order_line_reject(
            line_no=line,
            location_id=location_id,
            reason=data["reason"],
            found_quantity=data["found_quantity"],
            **common,
        )


class OrderTransferShipApi(OrderActionApi):
    action = "transfer-ship"

    @_action_schema(None, "The source ships the order's transfer to the pickup store.")
    def post(self, request, reference: str, allocation: int):
        return super().post(request, reference, allocation=allocation)

    def run(self, order, data, common, allocation):
        source = order.allocations.filter(pk=allocation).values_list("location_id", flat=True)
        _staff_location_check(request=self.request, location_id=source.first())
        services.order_transfer_ship(allocation_id=allocation, **common)


class OrderTransferReceiveApi(OrderActionApi):
    action = "transfer-receive"
    input_serializer = io.TransferReceiveInput

    @_action_schema(
        io.TransferReceiveInput,
        "The pickup store receives the order's transfer; units are held for the order at once; "
        "missing units are routed again.",
    )
    def post(self, request, reference: str, allocation: int):
        return super().post(request, reference, allocation=allocation)

    def run(self, order, data, common, allocation):
        _staff_location_check(request=self.request, location_id=order.pickup_location_id)
        received = None
        if data.get("received"):
            ids = sku_ids_by_code(list(data["received"]))
            received = {ids[code]: units for code, units in data["received"].items()}
        services.order_transfer_receive(allocation_id=allocation, received=received, **common)


class OrderReturnApi(OrderActionApi):
    action = "return"
    input_serializer = io.ReturnInput

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.ReturnInput,
        responses={201: io.ReturnOutput, **ERRORS},
        description="Units brought back at any store: into its stock (or unsellable with a "
        "reason); the refund owed is recorded.",
    )
    def post(self, request, reference: str):
        return super().post(request, reference)

    def run(self, order, data, common):
        location_id = location_ids_by_code([data["location"]])[data["location"]]
        _staff_location_check(request=self.request, location_id=location_id)
        record = services.order_return(
            order_id=common["order_id"],
            location_id=location_id,
            lines=[
                services.ReturnLineRequest(
                    line_no=line["line"],
                    quantity=line["quantity"],
                    unsellable=line["unsellable"],
                    reason=line["reason"],
                )
                for line in data["lines"]
            ],
            actor=common["actor"],
            channel=common["channel"] if common["channel"] != SalesChannel.BACKOFFICE else "store",
            idempotency_key=common["idempotency_key"],
        )
        return Response(io.ReturnOutput(record).data, status=status.HTTP_201_CREATED)


class StockAlertCreateApi(APIView):
    """Back in stock near me: be told once when a SKU is available at a store (or within a
    radius of a place). Sent only with the customer's marketing consent for that channel."""

    required_scopes = [Scope.ORDERS_WRITE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.StockAlertInput,
        responses={201: io.StockAlertOutput, **ERRORS},
    )
    def post(self, request):
        def perform():

            data = validated_input(io.StockAlertInput, request)
            sku_id = sku_ids_by_code([data["sku"]])[data["sku"]]
            location = None
            if data.get("store"):
                location_ids_by_code([data["store"]])
                location = Location.objects.get(code=data["store"])
            customer = _customer(request, data["customer"])
            given = data["customer"].get(data["channel"] if data["channel"] == "email" else "phone")
            if given:
                contact = given.strip() if data["channel"] == "email" else _contact_phone(given)
            else:  # a customer reference: their email or phone on file
                kind = "email" if data["channel"] == "email" else "phone"
                contact = contact_on_file(customer=customer, kind=kind)
                if not contact:
                    raise InvalidInput(
                        f"No {kind} on file for this customer: give one to send the alert to.",
                        details={"customer": [f"{kind} required"]},
                    )
            alert = alert_create(
                customer=customer,
                sku_id=sku_id,
                location=location,
                latitude=data.get("latitude"),
                longitude=data.get("longitude"),
                radius_km=data.get("radius_km"),
                quantity=data["quantity"],
                channel=data["channel"],
                contact=contact,
                language=data["customer"].get("language"),
                sales_channel=caller_channel(request),
                idempotency_key=_service_key(request, "stock-alerts"),
            )
            return Response(io.StockAlertOutput(alert).data, status=status.HTTP_201_CREATED)

        return idempotent(request, endpoint="stock-alerts", perform=perform)

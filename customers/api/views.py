"""Customer API: thin views that validate shape, call one service or selector, and serialise.

Scopes: customers:resolve (resolve, identify-or-create: what a till holds), customers:read
(profile, consents, history), customers:write (profile, identifiers, consents), customers:privacy
(GDPR export and erasure), customers:merge (merge duplicates, undo a merge: a CRM or customer
service). Every POST takes an Idempotency-Key.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import validated_input
from common.auth import caller_channel, caller_label
from common.exceptions import InvalidInput
from common.idempotency import idempotent
from common.models import Scope
from common.schema import IDEMPOTENCY_HEADER
from common.serializers import ErrorSerializer
from customers import selectors, services
from customers.api import serializers as io
from customers.exceptions import CustomerNotFound
from customers.models import Customer
from stores.selectors import location_get

ERRORS = {
    400: ErrorSerializer,
    401: ErrorSerializer,
    403: ErrorSerializer,
    404: ErrorSerializer,
    409: ErrorSerializer,
    410: ErrorSerializer,
    422: ErrorSerializer,
}
REFERENCE = OpenApiParameter(
    "reference",
    str,
    OpenApiParameter.PATH,
    description="Customer reference (UUID) or customer number. A merged "
    "record's reference answers with its survivor.",
)


def _ident(identifier) -> dict | None:
    return identifier.as_dict() if identifier is not None else None


def _customer(reference: str) -> Customer:
    return selectors.customer_get(reference=reference)


class CustomerResolveApi(APIView):
    """Who is this? One identifier (or several) → the customer, in one call."""

    required_scopes = [Scope.CUSTOMERS_RESOLVE]

    @extend_schema(
        parameters=[
            OpenApiParameter("email", str),
            OpenApiParameter("phone", str),
            OpenApiParameter("loyalty_card", str),
            OpenApiParameter("external_source", str, description="With external_id."),
            OpenApiParameter("external_id", str),
            OpenApiParameter("reference", str, description="Reference (UUID) or customer number."),
        ],
        responses={200: io.ResolveResponseSerializer, **ERRORS},
    )
    def get(self, request):
        params = request.query_params
        if params.get("reference"):
            customer = selectors.customer_get(reference=params["reference"])
            return Response(
                {
                    "customer": io.CustomerSummarySerializer(customer).data,
                    "matched_by": {
                        "kind": "reference",
                        "source": "",
                        "value": str(customer.reference),
                    },
                    "other_customers": [],
                }
            )
        identifiers = [
            (kind, params[kind], "")
            for kind in ("loyalty_card", "email", "phone")
            if params.get(kind)
        ]
        if params.get("external_id"):
            identifiers.append(
                ("external", params["external_id"], params.get("external_source", ""))
            )
        if not identifiers:
            raise InvalidInput(
                "Give an identifier: email, phone, loyalty_card, "
                "external_source + external_id, or reference.",
                details={"identifier": ["required"]},
            )
        resolution = selectors.customer_resolve(identifiers=identifiers)
        if resolution.customer is None:
            raise CustomerNotFound(
                "No customer has these identifiers.",
                details={"ignored": [i.raw for i in resolution.ignored]},
            )
        return Response(
            {
                "customer": io.CustomerSummarySerializer(resolution.customer).data,
                "matched_by": _ident(resolution.matched_by),
                "other_customers": [str(c.reference) for c in resolution.other_customers],
            }
        )


class CustomerIdentifyApi(APIView):
    """Identify-or-create: send what the channel knows; get the one customer it belongs to."""

    required_scopes = [Scope.CUSTOMERS_RESOLVE]

    @extend_schema(
        request=io.IdentifyInputSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            200: io.IdentifyResponseSerializer,
            201: io.IdentifyResponseSerializer,
            **ERRORS,
        },
    )
    def post(self, request):
        serializer = io.IdentifyInputSerializer(data=request.data)  # its identifiers() is needed
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data

        def perform():
            store = data.get("preferred_store")
            result = services.customer_identify_or_create(
                identifiers=serializer.identifiers(),
                first_name=data.get("first_name", ""),
                last_name=data.get("last_name", ""),
                language=data.get("language"),
                preferred_store=location_get(code=store) if store else None,
                sales_channel=caller_channel(request),
                actor=caller_label(request),
            )
            body = {
                "customer": io.CustomerSummarySerializer(result.customer).data,
                "created": result.created,
                "matched_by": _ident(result.matched_by),
                "attached": [i.as_dict() for i in result.attached],
                "ignored": [i.raw for i in result.ignored],
                "conflicts": [i.as_dict() for i in result.conflicts],
            }
            return Response(body, status=status.HTTP_201_CREATED if result.created else 200)

        return idempotent(request, endpoint="customers.identify", perform=perform)


class CustomerDetailApi(APIView):
    required_scopes = {"GET": [Scope.CUSTOMERS_READ], "PATCH": [Scope.CUSTOMERS_WRITE]}

    @extend_schema(parameters=[REFERENCE], responses={200: io.CustomerDetailSerializer, **ERRORS})
    def get(self, request, reference: str):
        return Response(io.CustomerDetailSerializer(_customer(reference)).data)

    @extend_schema(
        parameters=[REFERENCE],
        request=io.ProfileUpdateSerializer,
        responses={200: io.CustomerDetailSerializer, **ERRORS},
    )
    def patch(self, request, reference: str):
        data = validated_input(io.ProfileUpdateSerializer, request)
        if "preferred_store" in data:
            code = data["preferred_store"]
            data["preferred_store"] = location_get(code=code) if code else None
        customer = services.customer_update(
            customer=_customer(reference),
            sales_channel=caller_channel(request),
            actor=caller_label(request),
            **data,
        )
        customer = Customer.objects.select_related("preferred_store").get(pk=customer.pk)
        return Response(io.CustomerDetailSerializer(customer).data)


class CustomerIdentifierCreateApi(APIView):
    required_scopes = [Scope.CUSTOMERS_WRITE]

    @extend_schema(
        parameters=[REFERENCE, IDEMPOTENCY_HEADER],
        request=io.IdentifierInputSerializer,
        responses={201: io.IdentifierSerializer, **ERRORS},
    )
    def post(self, request, reference: str):
        data = validated_input(io.IdentifierInputSerializer, request)
        customer = _customer(reference)

        def perform():
            row = services.identifier_add(
                customer=customer,
                sales_channel=caller_channel(request),
                actor=caller_label(request),
                **data,
            )
            return Response(io.IdentifierSerializer(row).data, status=status.HTTP_201_CREATED)

        return idempotent(request, endpoint=f"customers.identifiers:{reference}", perform=perform)


class CustomerIdentifierDeleteApi(APIView):
    required_scopes = [Scope.CUSTOMERS_WRITE]

    @extend_schema(parameters=[REFERENCE], responses={204: None, **ERRORS})
    def delete(self, request, reference: str, identifier_id: int):
        services.identifier_remove(
            customer=_customer(reference),
            identifier_id=identifier_id,
            sales_channel=caller_channel(request),
            actor=caller_label(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class CustomerConsentsApi(APIView):
    # A till records the consent given at the counter with `customers:consent`, without the
    # right to change the profile that `customers:write` gives.
    required_scopes = {
        "GET": [Scope.CUSTOMERS_READ],
        "POST": [(Scope.CUSTOMERS_WRITE, Scope.CUSTOMERS_CONSENT)],
    }

    @extend_schema(
        parameters=[REFERENCE], responses={200: io.ConsentStateSerializer(many=True), **ERRORS}
    )
    def get(self, request, reference: str):
        return Response(selectors.consent_state(customer=_customer(reference)))

    @extend_schema(
        parameters=[REFERENCE, IDEMPOTENCY_HEADER],
        request=io.ConsentInputSerializer,
        responses={201: io.ConsentStateSerializer(many=True), **ERRORS},
    )
    def post(self, request, reference: str):
        data = validated_input(io.ConsentInputSerializer, request)
        customer = _customer(reference)

        def perform():
            services.consent_record(
                customer=customer,
                sales_channel=caller_channel(request),
                actor=caller_label(request),
                changes=[services.ConsentChange(**change) for change in data["changes"]],
            )
            state = io.ConsentStateSerializer(selectors.consent_state(customer=customer), many=True)
            return Response(state.data, status=status.HTTP_201_CREATED)

        return idempotent(request, endpoint=f"customers.consents:{reference}", perform=perform)


class CustomerHistoryApi(APIView):
    required_scopes = [Scope.CUSTOMERS_READ]

    @extend_schema(
        parameters=[
            REFERENCE,
            OpenApiParameter("cursor", str, description="`next_cursor` of the previous page."),
            OpenApiParameter("limit", int, description="1–200, default 50."),
        ],
        responses={200: io.HistoryPageSerializer, **ERRORS},
    )
    def get(self, request, reference: str):
        try:
            limit = int(request.query_params.get("limit", 50))
        except ValueError:
            raise InvalidInput("`limit` is a number.", details={"limit": ["invalid"]}) from None
        page = selectors.customer_history(
            customer=_customer(reference), cursor=request.query_params.get("cursor"), limit=limit
        )
        return Response(
            {
                "results": io.HistoryEntrySerializer(page.entries, many=True).data,
                "next_cursor": page.next_cursor,
            }
        )


class CustomerExportApi(APIView):
    """GDPR right of access: everything held about the person, from every app."""

    required_scopes = [Scope.CUSTOMERS_PRIVACY]

    @extend_schema(parameters=[REFERENCE], responses={200: dict, **ERRORS})
    def get(self, request, reference: str):
        return Response(selectors.customer_export(customer=_customer(reference)))


class CustomerEraseApi(APIView):
    """GDPR right to erasure. Refused (409 erasure_blocked, with reasons) while e.g. an order is
    open."""

    required_scopes = [Scope.CUSTOMERS_PRIVACY]

    @extend_schema(
        parameters=[REFERENCE, IDEMPOTENCY_HEADER],
        request=io.ErasureInputSerializer,
        responses={200: io.ErasureResponseSerializer, **ERRORS},
    )
    def post(self, request, reference: str):
        data = validated_input(io.ErasureInputSerializer, request)
        # an erased customer is found here so that a retry of the same erasure replays its answer
        customer = selectors.customer_get(reference=reference, allow_erased=True)

        def perform():
            record = services.customer_erase(
                customer=customer,
                reason=data["reason"],
                actor=caller_label(request),
                sales_channel=caller_channel(request),
            )
            return Response(
                {
                    "reference": str(customer.reference),
                    "status": "erased",
                    "erased_at": record.erased_at,
                    "warnings": record.summary.get("warnings", []),
                    "summary": record.summary,
                }
            )

        return idempotent(request, endpoint=f"customers.erase:{reference}", perform=perform)


# ---- merges (a CRM or customer service drives them) -------------------------------------------


def _merge_data(merge_id: int) -> dict:
    merge = selectors.merge_get(merge_id=merge_id)
    return io.MergeOutputSerializer(merge).data


class CustomerMergeApi(APIView):
    required_scopes = [Scope.CUSTOMERS_MERGE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.MergeInputSerializer,
        responses={201: io.MergeOutputSerializer, **ERRORS},
        description="Merge a duplicate (`absorbed`) into `survivor`: every app moves its rows "
        "(orders, receipts, points, store credit…), the absorbed reference keeps resolving to "
        "the survivor. 409 merge_refused (same person, erased, already merged), 409 "
        "merge_blocked with `details.blockers` (two loyalty cards, a payment in progress…) "
        "unless `force` with a reason.",
    )
    def post(self, request):
        data = validated_input(io.MergeInputSerializer, request)

        def perform():
            merge = services.customer_merge(
                survivor=_customer(data["survivor"]),
                absorbed=_customer(data["absorbed"]),
                actor=caller_label(request),
                reason=data["reason"],
                force=data["force"],
            )
            return Response(_merge_data(merge.pk), status=status.HTTP_201_CREATED)

        return idempotent(request, endpoint="customers.merge", perform=perform)


class CustomerMergeDetailApi(APIView):
    required_scopes = [Scope.CUSTOMERS_MERGE]

    @extend_schema(responses={200: io.MergeOutputSerializer, **ERRORS})
    def get(self, request, merge_id: int):
        return Response(_merge_data(merge_id))


class CustomerUnmergeApi(APIView):
    required_scopes = [Scope.CUSTOMERS_MERGE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.UnmergeInputSerializer,
        responses={200: io.MergeOutputSerializer, **ERRORS},
        description="Undo a mistaken merge: the moved rows go back, the absorbed record is "
        "active again. 409 unmerge_refused when already undone or the survivor was merged or "
        "erased since.",
    )
    def post(self, request, merge_id: int):
        data = validated_input(io.UnmergeInputSerializer, request)

        def perform():
            merge = services.customer_unmerge(
                merge=selectors.merge_get(merge_id=merge_id),
                actor=caller_label(request),
                reason=data["reason"],
            )
            return Response(_merge_data(merge.pk))

        return idempotent(request, endpoint=f"customers.unmerge.{merge_id}", perform=perform)

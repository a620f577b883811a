"""Webhook endpoints API (scope `webhooks:manage`): what an integrator does in the admin —
subscribe, pause, resume, rotate the secret, see what failed and send it again. Every POST takes
an Idempotency-Key; a retry returns the first answer (the creation's secret included)."""

from datetime import timedelta

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import validated_input
from common.idempotency import idempotent
from common.models import Scope
from common.pagination import DefaultPagination, paginated
from common.schema import IDEMPOTENCY_HEADER
from common.serializers import ErrorSerializer
from integrations import selectors, webhooks
from integrations import webhook_serializers as io

ERRORS = dict.fromkeys((400, 401, 403, 404), ErrorSerializer)


def _endpoint_data(endpoint_id: int, output=io.EndpointOutput) -> dict:
    return output(selectors.endpoint_get(endpoint_id=endpoint_id)).data


class EndpointListCreateApi(APIView):
    required_scopes = [Scope.WEBHOOKS_MANAGE]

    @extend_schema(
        operation_id="v1_webhooks_endpoints_list",
        responses={200: paginated(io.EndpointOutput), **ERRORS},
    )
    def get(self, request):
        """Every endpoint, with its deliveries waiting and given up on (paginated)."""
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(selectors.endpoints_with_backlog(), request, self)
        return paginator.get_paginated_response(io.EndpointOutput(page, many=True).data)

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.EndpointCreateInput,
        responses={201: io.EndpointWithSecretOutput, **ERRORS},
        description="Subscribe. The endpoint receives the events that occur from now on; "
        "`replay_from` also queues the events since then (400 replay_too_old beyond "
        "WEBHOOK_RETENTION_DAYS). The signing secret is in this answer only.",
    )
    def post(self, request):
        def perform():
            data = validated_input(io.EndpointCreateInput, request)
            endpoint = webhooks.endpoint_create(**data)
            return Response(
                _endpoint_data(endpoint.pk, io.EndpointWithSecretOutput),
                status=status.HTTP_201_CREATED,
            )

        return idempotent(request, endpoint="webhooks.endpoint_create", perform=perform)


class EndpointDetailApi(APIView):
    required_scopes = [Scope.WEBHOOKS_MANAGE]

    @extend_schema(responses={200: io.EndpointOutput, **ERRORS})
    def get(self, request, endpoint_id: int):
        return Response(_endpoint_data(endpoint_id))


class _EndpointActionApi(APIView):
    """A POST on one endpoint that answers the endpoint."""

    required_scopes = [Scope.WEBHOOKS_MANAGE]
    action_name = ""
    output = io.EndpointOutput

    def act(self, request, endpoint_id: int) -> None:
        raise NotImplementedError

    def post(self, request, endpoint_id: int):
        selectors.endpoint_get(endpoint_id=endpoint_id)  # 404 before any key is spent

        def perform():
            self.act(request, endpoint_id)
            return Response(_endpoint_data(endpoint_id, self.output))

        return idempotent(request, endpoint=f"webhooks.{self.action_name}", perform=perform)


class EndpointPauseApi(_EndpointActionApi):
    action_name = "endpoint_pause"

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=None,
        responses={200: io.EndpointOutput, **ERRORS},
        description="Stop sending. Events keep being queued for it, up to the retention.",
    )
    def post(self, request, endpoint_id: int):
        return super().post(request, endpoint_id)

    def act(self, request, endpoint_id):
        webhooks.endpoint_pause(endpoint_id=endpoint_id)


class EndpointResumeApi(_EndpointActionApi):
    action_name = "endpoint_resume"

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=None,
        responses={200: io.EndpointOutput, **ERRORS},
        description="Send again: what was queued meanwhile goes first, oldest first.",
    )
    def post(self, request, endpoint_id: int):
        return super().post(request, endpoint_id)

    def act(self, request, endpoint_id):
        webhooks.endpoint_resume(endpoint_id=endpoint_id)


class EndpointRotateSecretApi(_EndpointActionApi):
    action_name = "endpoint_secret_rotate"
    output = io.EndpointWithSecretOutput

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.RotateInput,
        responses={200: io.EndpointWithSecretOutput, **ERRORS},
        description="A new secret signs from now on; the previous one signs too (a second v1 "
        "value in X-Omnistock-Signature) for `grace_seconds` (default 24 h).",
    )
    def post(self, request, endpoint_id: int):
        return super().post(request, endpoint_id)

    def act(self, request, endpoint_id):
        grace = validated_input(io.RotateInput, request)["grace_seconds"]
        webhooks.endpoint_secret_rotate(endpoint_id=endpoint_id, grace=timedelta(seconds=grace))


class DeliveryListApi(APIView):
    required_scopes = [Scope.WEBHOOKS_MANAGE]

    @extend_schema(
        parameters=[io.DeliveryListQuery],
        operation_id="v1_webhooks_endpoints_deliveries_list",
        responses={200: paginated(io.DeliveryOutput), **ERRORS},
    )
    def get(self, request, endpoint_id: int):
        """An endpoint's deliveries, newest event first; `status=failed` (will retry) or
        `status=dead` (given up) for what did not arrive."""
        selectors.endpoint_get(endpoint_id=endpoint_id)
        query = io.DeliveryListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        deliveries = selectors.endpoint_deliveries(
            endpoint_id=endpoint_id, status=query.validated_data.get("status")
        )
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(deliveries, request, self)
        return paginator.get_paginated_response(io.DeliveryOutput(page, many=True).data)


class DeliveryRedeliverApi(APIView):
    required_scopes = [Scope.WEBHOOKS_MANAGE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=None,
        responses={202: io.DeliveryOutput, **ERRORS},
        description="Send this delivery again (a dead or a delivered one too; the receiver "
        "dedupes on X-Omnistock-Event-Id): due now, sent by the next worker run (on a paused "
        "endpoint, once resumed). Follow it in the deliveries list.",
    )
    def post(self, request, endpoint_id: int, delivery_id: int):
        selectors.delivery_get(endpoint_id=endpoint_id, delivery_id=delivery_id)

        def perform():
            delivery = webhooks.delivery_requeue(delivery_id=delivery_id)
            return Response(io.DeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)

        return idempotent(request, endpoint="webhooks.delivery_redeliver", perform=perform)

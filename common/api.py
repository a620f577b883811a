"""The one place where errors become HTTP responses.

Every API error has the same JSON shape: {"code", "message", "details"}. Views never build error
JSON by hand; they raise a DomainError (or let DRF raise its own exceptions), and this maps it.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.http import Http404, JsonResponse
from kombu.exceptions import OperationalError as BrokerOperationalError
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from common.cache import REDIS_DOWN
from common.exceptions import DomainError

logger = logging.getLogger(__name__)

# DRF exception class -> stable code (the DRF default codes are not all stable or explicit).
_DRF_CODES: dict[type, str] = {
    drf_exceptions.ParseError: "malformed_request",
    drf_exceptions.AuthenticationFailed: "not_authenticated",
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "throttled",
    drf_exceptions.ValidationError: "invalid",
}


def validation_details(detail) -> dict:
    if isinstance(detail, dict):
        return {
            field: (
                validation_details(value)
                if isinstance(value, dict)
                else [str(item) for item in value]
                if isinstance(value, list)
                else [str(value)]
            )
            for field, value in detail.items()
        }
    if isinstance(detail, list):
        return {"non_field_errors": [str(item) for item in detail]}
    return {"non_field_errors": [str(detail)]}


def validated_input(serializer_class, request, **kwargs) -> dict:
    """The request body validated by `serializer_class` (a 400 with per-field details if not)."""
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def error_payload(code: str, message: str, details: dict | None = None) -> dict:
    return {"code": code, "message": message, "details": details or {}}


def outage_answer(exc) -> tuple[dict, int] | None:
    """(error payload, Retry-After seconds) when `exc` says a part is down, not that the
    request is wrong: the database (a dropped connection, a restart, a lock wait that timed
    out), the broker or the strict shared cache. The client retries, with the same
    Idempotency-Key for a write: nothing of a refused request was committed."""
    if isinstance(exc, DatabaseOperationalError | DatabaseInterfaceError):
        message = "The database is not answering: retry in a few seconds (same Idempotency-Key)."
        return error_payload("database_unavailable", message), 5
    if isinstance(exc, (BrokerOperationalError, *REDIS_DOWN)):
        message = "A shared service is not answering: retry in a few seconds."
        return error_payload("service_unavailable", message), 10
    return None


def outage_response(exc) -> JsonResponse | None:
    """The same answer outside DRF views (common.middleware.OutageMiddleware)."""
    answer = outage_answer(exc)
    if answer is None:
        return None
    logger.warning("Answered 503: %s: %s", type(exc).__name__, exc)
    payload, retry_after = answer
    return JsonResponse(payload, status=503, headers={"Retry-After": str(retry_after)})


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        set_rollback()
        return Response(exc.as_dict(), status=exc.http_status)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        set_rollback()
        return Response(
            error_payload("request_too_large", "The request body is larger than this API accepts."),
            status=413,
        )
    if not isinstance(exc, drf_exceptions.APIException):
        outage = outage_answer(exc)
        if outage is not None:
            set_rollback()
            logger.warning("Answered 503: %s: %s", type(exc).__name__, exc)
            payload, retry_after = outage
            return Response(payload, status=503, headers={"Retry-After": str(retry_after)})
        return None  # a real bug: let Django log it and answer 500 (JSON via handler500)

    set_rollback()
    code = _DRF_CODES.get(type(exc), getattr(exc, "default_code", "error"))
    if isinstance(exc, drf_exceptions.ValidationError):
        payload = error_payload(code, "Some fields are invalid.", validation_details(exc.detail))
    elif isinstance(exc, drf_exceptions.ParseError):
        payload = error_payload(code, f"The request body could not be parsed: {exc.detail}")
    else:
        payload = error_payload(code, str(exc.detail))
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    response = Response(payload, status=exc.status_code, headers=headers)
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        response.status_code = 401
    return response


def json_404(request, exception=None):
    return JsonResponse(error_payload("not_found", "No such URL."), status=404)


def json_500(request):
    return JsonResponse(
        error_payload("server_error", "Unexpected server error; it has been logged."), status=500
    )


def json_400(request, exception=None):
    return JsonResponse(error_payload("bad_request", "Bad request."), status=400)

"""drf-spectacular extensions: document the API-key scheme."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "common.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>` — one key per integration, bound to a sales "
            "channel and to scopes.",
        }


# The header every retryable write takes (common.idempotency.idempotent).
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="Any unique string; a retry with the same key and body returns the first result "
    "(a different body with the same key: 422 idempotency_key_reused).",
)


# Every operation may answer these (the strict parser, authentication, scopes, unknown objects,
# an outage); writes also these (conflicts, body size, a reused Idempotency-Key).
ERRORS_OF_EVERY_OPERATION = {
    "400": "Bad request: malformed JSON, invalid fields or query parameters.",
    "401": "No valid API key (or signature, for signed webhooks).",
    "403": "The key lacks the scope, or the caller may not act here.",
    "404": "Unknown object or page.",
    "503": "A part is down (database, broker, Redis): retry after Retry-After seconds.",
}
ERRORS_OF_WRITES = {
    "409": "Conflicts with the current state (stock, status).",
    "413": "The body is larger than accepted.",
    "422": "The Idempotency-Key was used with another body, or the request cannot be applied.",
}


def declare_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: declare the error answers every operation can give
    (with the one error shape), where a view did not declare them itself."""
    error = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            declared = dict(ERRORS_OF_EVERY_OPERATION)
            if method != "get":
                declared.update(ERRORS_OF_WRITES)
            for status_code, description in declared.items():
                responses.setdefault(
                    status_code,
                    {
                        "content": {"application/json": {"schema": error}},
                        "description": description,
                    },
                )
    return result

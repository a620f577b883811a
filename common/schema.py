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

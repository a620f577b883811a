"""Domain errors. Services raise them; `common.api.exception_handler` turns them into JSON.

Each error has a stable machine-readable `code` (clients switch on it, never on the message),
an HTTP status, a human message and optional per-field `details`.
"""

from typing import Any

from django.utils.translation import gettext_lazy


class DomainError(Exception):
    code = "domain_error"
    http_status = 400
    default_message = gettext_lazy("The request could not be applied.")

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        # A plain str in the language active where it is raised (the default messages are lazy
        # translations): it goes into JSON bodies, journals and stored idempotent answers.
        self.message = str(message or self.default_message)
        self.details = details or {}
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(DomainError):
    code = "invalid"
    http_status = 400
    default_message = gettext_lazy("The request is invalid.")


class NotFound(DomainError):
    code = "not_found"
    http_status = 404
    default_message = gettext_lazy("Not found.")


class Conflict(DomainError):
    code = "conflict"
    http_status = 409
    default_message = gettext_lazy("The request conflicts with the current state.")


class IllegalTransition(Conflict):
    code = "illegal_transition"
    default_message = gettext_lazy("This transition is not allowed from the current state.")


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    http_status = 422
    default_message = gettext_lazy(
        "This Idempotency-Key was already used with a different request."
    )


class IdempotencyKeyMissing(DomainError):
    code = "idempotency_key_required"
    http_status = 400
    default_message = gettext_lazy(
        "This write needs an Idempotency-Key header so that a retry is safe."
    )


class RequestInProgress(DomainError):
    code = "request_in_progress"
    http_status = 409
    default_message = gettext_lazy(
        "A request with this Idempotency-Key is still being processed; retry later."
    )

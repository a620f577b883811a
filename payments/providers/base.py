"""The one interface every card processor backend implements.

The model is the one Stripe, Adyen and most processors share: every call is *accepted* (or
refused outright, e.g. an unknown payment) synchronously, and its *outcome* — authorised,
declined, captured, refunded, expired — arrives later as a signed webhook. Our code therefore
never trusts a synchronous answer to move money: it records the intent (a TenderEvent), commits,
calls the provider outside any lock, and applies the outcome when the webhook comes in
(`payments.services.webhooks`).

Every call carries our `merchant_reference` (the tender's, `tender-<pk>`) and an idempotency key;
a provider must send the merchant reference back in its webhooks so an outcome can be matched
even when it arrives before the synchronous answer was recorded.

Card data never reaches this backend: the storefront or the payment terminal tokenises the card
with the processor's own SDK and sends us a token (`tok_…` in the sandbox, a Stripe
PaymentMethod id, an Adyen encrypted card blob).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.utils.translation import gettext_lazy

from common.exceptions import DomainError


class ProviderError(DomainError):
    """The provider refused the request synchronously (an unknown card token, an unknown
    payment, a malformed request): the request's fault, not the provider's — 422, nothing was
    charged. A provider that cannot be reached is ProviderUnavailable (502)."""

    code = "payment_refused_by_provider"
    http_status = 422
    default_message = gettext_lazy("The payment provider refused the request; nothing was charged.")


# Normalised event types every provider's webhooks are parsed into.
AUTHORISATION_SUCCEEDED = "authorisation.succeeded"
AUTHORISATION_FAILED = "authorisation.failed"
AUTHORISATION_EXPIRED = "authorisation.expired"
AUTHORISATION_EXTENDED = "authorisation.extended"
CAPTURE_SUCCEEDED = "capture.succeeded"
CAPTURE_FAILED = "capture.failed"
VOID_SUCCEEDED = "void.succeeded"
REFUND_SUCCEEDED = "refund.succeeded"
REFUND_FAILED = "refund.failed"
EVENT_TYPES = frozenset(
    {
        AUTHORISATION_SUCCEEDED,
        AUTHORISATION_FAILED,
        AUTHORISATION_EXPIRED,
        AUTHORISATION_EXTENDED,
        CAPTURE_SUCCEEDED,
        CAPTURE_FAILED,
        VOID_SUCCEEDED,
        REFUND_SUCCEEDED,
        REFUND_FAILED,
    }
)


@dataclass(frozen=True)
class ProviderAnswer:
    """The synchronous answer: the request was accepted; the outcome follows by webhook."""

    provider_reference: str
    status: str = "pending"


@dataclass(frozen=True)
class ProviderEventData:
    """A webhook, verified and parsed into our vocabulary."""

    event_id: str
    event_type: str
    merchant_reference: str
    provider_reference: str
    amount: Decimal | None
    currency: str
    failure_code: str = ""
    authorisation_expires_at: datetime | None = None
    raw: dict = field(default_factory=dict)


class PaymentProvider(ABC):
    name: str

    # ---- calls (made outside any transaction or lock) ----
    @abstractmethod
    def authorise(
        self,
        *,
        amount: Decimal,
        currency: str,
        token: str,
        merchant_reference: str,
        idempotency_key: str,
    ) -> ProviderAnswer:
        """Ask for an authorisation of `amount` on the tokenised card."""

    @abstractmethod
    def capture(
        self, *, provider_reference: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> ProviderAnswer:
        """Capture `amount` (≤ authorised: a partial capture releases the rest)."""

    @abstractmethod
    def void(self, *, provider_reference: str, idempotency_key: str) -> ProviderAnswer:
        """Release an authorisation that will not be captured."""

    @abstractmethod
    def refund(
        self, *, provider_reference: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> ProviderAnswer:
        """Refund `amount` of what was captured."""

    def reauthorise(self, *, provider_reference: str, idempotency_key: str) -> ProviderAnswer:
        """Extend an authorisation before it lapses (Adyen: authorisation adjustment; Stripe:
        extended authorisation or a new off-session PaymentIntent). The outcome arrives as
        `authorisation.extended` (new expiry) or the request is refused with ProviderError.
        Providers that cannot extend keep this default: the caller falls back to the till."""
        raise ProviderError(
            "This provider cannot extend an authorisation.",
            details={"provider": [self.name]},
        )

    # ---- webhooks in ----
    @abstractmethod
    def verify_webhook(self, *, headers: Mapping[str, str], body: bytes) -> None:
        """Raise common.signing.SignatureInvalid unless the raw body is signed by the provider
        within the tolerance window."""

    @abstractmethod
    def parse_webhook(self, *, body: bytes) -> ProviderEventData:
        """Parse a verified body; raise common.exceptions.InvalidInput if it makes no sense."""

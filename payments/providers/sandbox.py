"""The sandbox card processor: behaves like a real one, without leaving the host.

- Calls are accepted synchronously (a `sbx_pi_…` reference) and their outcomes are delivered
  later as webhooks signed like Stripe's (`Sandbox-Signature: t=<unix>,v1=<HMAC-SHA256 of
  "<t>.<raw body>">` with `PAYMENT_SANDBOX_WEBHOOK_SECRET`), posted by a Celery task to
  `PAYMENT_SANDBOX_WEBHOOK_URL` — or, when that setting is empty (tests, development), handed
  in-process to the same receiving service our webhook endpoint uses (signature checked too).
- Its own state (what a processor keeps on its side) is the SandboxIntent table.

Test card tokens (what a storefront's card form would return):

| token                    | outcome                                                              |
|--------------------------|----------------------------------------------------------------------|
| `tok_visa`, `tok_mastercard` | authorised; the authorisation stays valid 7 days                 |
| `tok_expire_fast`        | authorised, valid `PAYMENT_SANDBOX_FAST_EXPIRY_SECONDS` (120) only;  |
|                          | a re-authorisation extends it by 7 days                              |
| `tok_expire_fast_no_reauth` | as `tok_expire_fast`, but a re-authorisation is refused           |
| `tok_decline`            | declined, `card_declined`                                            |
| `tok_insufficient_funds` | declined, `insufficient_funds`                                       |
| `tok_capture_fail`       | authorised; every capture fails with `processing_error`              |
| anything else            | refused synchronously: `ProviderError` (`invalid_token`)             |

A capture after the authorisation expired fails with `authorisation_expired`; a capture above
the authorised amount, a refund above what was captured, or a call on an unknown reference is
refused synchronously. Only one capture per authorisation (a partial capture releases the rest),
as with Stripe's default.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from common.exceptions import InvalidInput
from common.parsing import strict_json_loads
from common.signing import signature_header, verify_signature
from common.tasks import task_after_commit
from payments.models import SandboxIntent, SandboxIntentStatus
from payments.providers import base
from payments.services.webhooks import provider_webhook_receive

SIGNATURE_HEADER = "Sandbox-Signature"
AUTH_VALIDITY = timedelta(days=7)

# token -> (authorised?, decline code)
TEST_TOKENS = {
    "tok_visa": (True, ""),
    "tok_mastercard": (True, ""),
    "tok_expire_fast": (True, ""),
    "tok_expire_fast_no_reauth": (True, ""),
    "tok_capture_fail": (True, ""),
    "tok_decline": (False, "card_declined"),
    "tok_insufficient_funds": (False, "insufficient_funds"),
}

# sandbox's own webhook vocabulary -> ours (a real provider's mapping lives in its backend too)
_EVENT_TYPES = {
    "payment.authorised": base.AUTHORISATION_SUCCEEDED,
    "payment.declined": base.AUTHORISATION_FAILED,
    "payment.expired": base.AUTHORISATION_EXPIRED,
    "payment.extended": base.AUTHORISATION_EXTENDED,
    "payment.captured": base.CAPTURE_SUCCEEDED,
    "payment.capture_failed": base.CAPTURE_FAILED,
    "payment.voided": base.VOID_SUCCEEDED,
    "payment.refunded": base.REFUND_SUCCEEDED,
    "payment.refund_failed": base.REFUND_FAILED,
}


def webhook_secret() -> str:
    return getattr(settings, "PAYMENT_SANDBOX_WEBHOOK_SECRET", "")


def tolerance_seconds() -> int:
    return getattr(settings, "PAYMENT_WEBHOOK_TOLERANCE_SECONDS", 300)


class SandboxProvider(base.PaymentProvider):
    name = "sandbox"

    # ---- calls ------------------------------------------------------------------------------

    def authorise(self, *, amount, currency, token, merchant_reference, idempotency_key):
        if token not in TEST_TOKENS:
            raise base.ProviderError(
                "The sandbox does not know this card token.", details={"token": ["invalid_token"]}
            )
        authorised, decline_code = TEST_TOKENS[token]
        now = timezone.now()
        validity = (
            timedelta(seconds=getattr(settings, "PAYMENT_SANDBOX_FAST_EXPIRY_SECONDS", 120))
            if token.startswith("tok_expire_fast")
            else AUTH_VALIDITY
        )
        try:
            with transaction.atomic():
                intent = SandboxIntent.objects.create(
                    reference=f"sbx_pi_{secrets.token_hex(12)}",
                    request_key=idempotency_key,
                    merchant_reference=merchant_reference,
                    currency=currency,
                    amount=amount,
                    status=(
                        SandboxIntentStatus.AUTHORISED
                        if authorised
                        else SandboxIntentStatus.DECLINED
                    ),
                    token=token,
                    decline_code=decline_code,
                    expires_at=now + validity,
                )
                _emit(
                    intent,
                    "payment.authorised" if authorised else "payment.declined",
                    merchant_reference=merchant_reference,
                    amount=amount,
                    failure_code=decline_code,
                )
        except IntegrityError:  # the same request again: same answer, no second webhook
            intent = SandboxIntent.objects.get(request_key=idempotency_key)
        return base.ProviderAnswer(provider_reference=intent.reference)

    def capture(self, *, provider_reference, amount, currency, idempotency_key):
        intent = self._intent(provider_reference)
        merchant_reference = intent.merchant_reference
        with transaction.atomic():
            if intent.status == SandboxIntentStatus.CAPTURED:
                return base.ProviderAnswer(provider_reference=intent.reference)  # a retry
            if intent.status != SandboxIntentStatus.AUTHORISED:
                raise base.ProviderError(
                    f"The payment is {intent.status}; it cannot be captured.",
                    details={"status": [intent.status]},
                )
            if amount > intent.amount or currency != intent.currency:
                raise base.ProviderError(
                    "The capture exceeds the authorisation.", details={"amount": ["too large"]}
                )
            if intent.expires_at <= timezone.now():
                SandboxIntent.objects.filter(pk=intent.pk).update(status=SandboxIntentStatus.VOIDED)
                _emit(
                    intent,
                    "payment.capture_failed",
                    merchant_reference=merchant_reference,
                    amount=amount,
                    failure_code="authorisation_expired",
                )
            elif intent.token == "tok_capture_fail":  # noqa: S105
                _emit(
                    intent,
                    "payment.capture_failed",
                    merchant_reference=merchant_reference,
                    amount=amount,
                    failure_code="processing_error",
                )
            else:
                updated = SandboxIntent.objects.filter(
                    pk=intent.pk, status=SandboxIntentStatus.AUTHORISED
                ).update(status=SandboxIntentStatus.CAPTURED, amount_captured=amount)
                if updated:
                    _emit(
                        intent,
                        "payment.captured",
                        merchant_reference=merchant_reference,
                        amount=amount,
                    )
        return base.ProviderAnswer(provider_reference=intent.reference)

    def void(self, *, provider_reference, idempotency_key):
        intent = self._intent(provider_reference)
        with transaction.atomic():
            updated = SandboxIntent.objects.filter(
                pk=intent.pk, status=SandboxIntentStatus.AUTHORISED
            ).update(status=SandboxIntentStatus.VOIDED)
            if updated:
                _emit(
                    intent,
                    "payment.voided",
                    merchant_reference=intent.merchant_reference,
                    amount=intent.amount,
                )
            elif intent.status != SandboxIntentStatus.VOIDED:
                raise base.ProviderError(
                    f"The payment is {intent.status}; it cannot be voided.",
                    details={"status": [intent.status]},
                )
        return base.ProviderAnswer(provider_reference=intent.reference)

    def refund(self, *, provider_reference, amount, currency, idempotency_key):
        intent = self._intent(provider_reference)
        with transaction.atomic():
            updated = SandboxIntent.objects.filter(
                pk=intent.pk,
                status=SandboxIntentStatus.CAPTURED,
                amount_captured__gte=F("amount_refunded") + amount,
                currency=currency,
            ).update(amount_refunded=F("amount_refunded") + amount)
            if not updated:
                raise base.ProviderError(
                    "The refund exceeds what was captured.", details={"amount": ["too large"]}
                )
            _emit(
                intent,
                "payment.refunded",
                merchant_reference=intent.merchant_reference,
                amount=amount,
                refund_key=idempotency_key,
            )
        return base.ProviderAnswer(provider_reference=intent.reference)

    def reauthorise(self, *, provider_reference, idempotency_key):
        intent = self._intent(provider_reference)
        if intent.token == "tok_expire_fast_no_reauth":  # noqa: S105 - a documented test token
            raise base.ProviderError(
                "The issuer refused to extend the authorisation.",
                details={"reason": ["reauthorisation_declined"]},
            )
        with transaction.atomic():
            expires_at = timezone.now() + AUTH_VALIDITY
            if not SandboxIntent.objects.filter(
                pk=intent.pk, status=SandboxIntentStatus.AUTHORISED, expires_at__gt=timezone.now()
            ).update(expires_at=expires_at):
                raise base.ProviderError(
                    "Only a live authorisation can be extended.",
                    details={"status": [intent.status]},
                )
            intent.expires_at = expires_at
            _emit(
                intent,
                "payment.extended",
                merchant_reference=intent.merchant_reference,
                amount=intent.amount,
            )
        return base.ProviderAnswer(provider_reference=intent.reference)

    def expire_overdue(self) -> int:
        """What the processor does on its own: authorisations not captured in time lapse."""
        expired = 0
        for intent in SandboxIntent.objects.filter(
            status=SandboxIntentStatus.AUTHORISED, expires_at__lte=timezone.now()
        ):
            with transaction.atomic():
                if SandboxIntent.objects.filter(
                    pk=intent.pk, status=SandboxIntentStatus.AUTHORISED
                ).update(status=SandboxIntentStatus.VOIDED):
                    _emit(
                        intent,
                        "payment.expired",
                        merchant_reference=intent.merchant_reference,
                        amount=intent.amount,
                    )
                    expired += 1
        return expired

    @staticmethod
    def _intent(reference: str) -> SandboxIntent:
        intent = SandboxIntent.objects.filter(reference=reference).first()
        if intent is None:
            raise base.ProviderError("No such sandbox payment.", details={"reference": [reference]})
        return intent

    # ---- webhooks ---------------------------------------------------------------------------

    def verify_webhook(self, *, headers: Mapping[str, str], body: bytes) -> None:
        verify_signature(
            header=headers.get(SIGNATURE_HEADER),
            body=body,
            secrets=[webhook_secret()],
            tolerance_seconds=tolerance_seconds(),
        )

    def parse_webhook(self, *, body: bytes) -> base.ProviderEventData:
        try:
            payload = strict_json_loads(body)
            data = payload["data"]
            event_type = _EVENT_TYPES[payload["type"]]
            amount = data.get("amount")
            expires = data.get("expires_at")
            return base.ProviderEventData(
                event_id=str(payload["id"])[:100],
                event_type=event_type,
                merchant_reference=str(data["merchant_reference"]),
                provider_reference=str(data["payment"]),
                amount=None if amount is None else Decimal(str(amount)),
                currency=str(data.get("currency", "")),
                failure_code=str(data.get("failure_code", "")),
                authorisation_expires_at=parse_datetime(expires) if expires else None,
                raw=payload,
            )
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            raise InvalidInput(f"The webhook body is not a sandbox event ({exc}).") from None


def _emit(
    intent: SandboxIntent,
    event_type: str,
    *,
    merchant_reference: str,
    amount=None,
    failure_code: str = "",
    refund_key: str = "",
) -> None:
    payload = {
        "id": f"evt_{secrets.token_hex(12)}",
        "type": event_type,
        "created": int(timezone.now().timestamp()),
        "data": {
            "payment": intent.reference,
            "merchant_reference": merchant_reference,
            "amount": None if amount is None else str(amount),
            "currency": intent.currency,
            "failure_code": failure_code,
            "expires_at": intent.expires_at.isoformat(),
            "refund": refund_key,
        },
    }
    # Like a real processor: the webhook leaves once its own state is committed.
    task_after_commit("payments.tasks.sandbox_webhook_deliver_task", payload)


def deliver(payload: dict) -> None:
    """Sign and deliver one webhook (called by the delivery task)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    header = signature_header(webhook_secret(), body)
    url = getattr(settings, "PAYMENT_SANDBOX_WEBHOOK_URL", "")
    if url:
        request = urllib.request.Request(  # noqa: S310 - a configured https URL
            url,
            data=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: header},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            if response.status >= 300:
                raise RuntimeError(f"webhook answered {response.status}")
        return

    provider_webhook_receive(provider_name="sandbox", headers={SIGNATURE_HEADER: header}, body=body)

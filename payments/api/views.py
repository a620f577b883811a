"""Payments API: thin views that validate shape, call one service or selector, and serialise.

Scope `payments:write` for the endpoints that take money (a till or a storefront that takes
payments holds it), `payments:read` to read, `payments:refund` to give money back. An order's
payments follow the orders API's visibility rule (`common.auth.caller_sees_orders_of`).
Writes take an `Idempotency-Key`. Gift card balance checks and stored-value tenders run through
`common.idempotency.idempotent`; card tenders and refunds may call the payment provider, which
must never happen inside a transaction, so their key is passed to the service instead (tenders
and refund events are unique per key: a retry returns the first result).
"""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import validated_input
from common.auth import caller_channel, caller_label, caller_owner, caller_sees_orders_of
from common.idempotency import idempotency_key_from, idempotent
from common.models import Scope
from common.money import CurrencyMismatch
from common.schema import IDEMPOTENCY_HEADER
from common.serializers import ErrorSerializer
from common.throttling import PerCallerRateThrottle
from customers.models import Customer
from customers.selectors import customer_get
from payments import codes, selectors
from payments.api import serializers as io
from payments.exceptions import OrderNotPayable
from payments.models import EntryKind, GiftCardHold, TenderKind
from payments.orders_port import order_lines_refund, payable_order
from payments.services import stored_value as sv
from payments.services import tenders
from payments.services.webhooks import provider_webhook_receive

ERRORS = dict.fromkeys((400, 401, 403, 404, 409, 422), ErrorSerializer)


def _summary(order_reference: str) -> dict:
    return io.PaymentSummaryOutput(
        selectors.order_payment_summary(order_reference=order_reference)
    ).data


class GiftCardBalanceApi(APIView):
    """The balance of a gift card. POST so that the code stays out of URLs and access logs.
    Rate limited per API key (GIFT_CARD_BALANCE_RATE, 60/min): 429 beyond."""

    required_scopes = [Scope.PAYMENTS_READ]
    throttle_classes = [PerCallerRateThrottle]
    throttle_scope = "gift_card_balance"

    @extend_schema(
        request=io.GiftCardBalanceInput,
        responses={200: io.GiftCardBalanceOutput, **ERRORS},
        description="400 gift_card_code_invalid when the check character does not match (a "
        "typo), 404 gift_card_not_found when no card has the code. Changes nothing.",
    )
    def post(self, request):
        data = validated_input(io.GiftCardBalanceInput, request)
        card = selectors.gift_card_by_code(code=data["code"])
        card.state = selectors.gift_card_state(card)
        return Response(io.GiftCardBalanceOutput(card).data)


class GiftCardSellApi(APIView):
    """A gift card sold by a channel (the web shop, a till): issued with its balance. The code is
    in this answer only (only its hash is stored); a retry with the same Idempotency-Key gets the
    same answer for IDEMPOTENCY_RETENTION_DAYS, so a lost response does not lose the card."""

    required_scopes = [Scope.GIFT_CARDS_ISSUE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.GiftCardSellInput,
        responses={201: io.GiftCardSoldOutput, **ERRORS},
    )
    def post(self, request):
        def perform():
            data = validated_input(io.GiftCardSellInput, request)
            issued = sv.gift_card_issue(
                amount=data["amount"],
                currency=data["currency"],
                source="sold",
                channel=caller_channel(request),
                actor=caller_label(request),
                idempotency_key=f"{caller_owner(request)}:{idempotency_key_from(request)}",
                expires_at=data.get("expires_at"),
                reference=data["reference"],
            )
            return Response(
                {
                    "code": codes.display(issued.code),
                    "last4": issued.card.code_last4,
                    "balance": str(issued.card.balance),
                    "currency": issued.card.currency,
                    "expires_at": issued.card.expires_at,
                },
                status=status.HTTP_201_CREATED,
            )

        return idempotent(request, endpoint="payments.gift_card.sell", perform=perform)


class StoreCreditApi(APIView):
    required_scopes = {"GET": [Scope.PAYMENTS_READ], "POST": [Scope.STORE_CREDIT_ISSUE]}

    @extend_schema(
        responses={200: io.StoreCreditOutput, **ERRORS},
        description="A customer's store credit wallets (one per currency), spendable in every "
        "channel. A merged record answers with its survivor's wallets.",
    )
    def get(self, request, reference: str):
        customer = customer_get(reference=reference)
        wallets = selectors.wallets_for_customer(customer=customer)
        return Response(
            io.StoreCreditOutput({"customer": str(customer.reference), "wallets": wallets}).data
        )

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.GoodwillCreditInput,
        responses={201: io.GoodwillCreditOutput, **ERRORS},
        description="Goodwill: credit the customer's store credit (a late parcel, a damaged "
        "item kept), with the reason in the wallet's ledger. Scope `store_credit:issue` (a CRM "
        "or call-centre tool; not given to storefront keys). A merged record credits its "
        "survivor.",
    )
    def post(self, request, reference: str):
        data = validated_input(io.GoodwillCreditInput, request)
        customer = customer_get(reference=reference)

        def perform():
            entry = sv.wallet_credit(
                customer=customer,
                amount=data["amount"],
                currency=data["currency"],
                kind=EntryKind.GOODWILL,
                reason=data["reason"],
                idempotency_key=f"{caller_owner(request)}:{idempotency_key_from(request)}",
                channel=caller_channel(request),
                actor=caller_label(request),
            )
            wallets = selectors.wallets_for_customer(customer=customer)
            return Response(
                io.GoodwillCreditOutput(
                    {
                        "customer": str(customer.reference),
                        "credited": str(entry.amount),
                        "currency": data["currency"],
                        "balance_after": str(entry.balance_after),
                        "wallets": wallets,
                    }
                ).data,
                status=status.HTTP_201_CREATED,
            )

        return idempotent(request, endpoint="payments.store_credit.goodwill", perform=perform)


def _payable_for(request, reference: str):
    """The order, if this caller may see it (the orders API's rule: a customer-facing key sees
    only its own channel's orders); else the same 404 as an unknown order."""
    order = payable_order(reference=reference)
    if not caller_sees_orders_of(request, order.channel):
        raise OrderNotPayable("No order has this reference.", details={"order": [reference[:40]]})
    return order


class OrderPaymentApi(APIView):
    required_scopes = [Scope.PAYMENTS_READ]

    @extend_schema(
        responses={200: io.PaymentSummaryOutput, **ERRORS},
        description="What is paid, held, refunded and due on an order, with its tenders.",
    )
    def get(self, request, reference: str):
        order = _payable_for(request, reference)
        return Response(_summary(order.reference))


class TenderAddApi(APIView):
    required_scopes = [Scope.PAYMENTS_WRITE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.TenderAddInput,
        responses={201: io.TenderAddOutput, **ERRORS},
        description=(
            "Add a tender to an order: `gift_card` (code; held until capture), `store_credit` "
            "(the order's customer's wallet; held), `loyalty_points` (the customer's points "
            "worth `amount`, whole points at PAYMENTS_LOYALTY_POINT_VALUE; held), `card` "
            "(provider token; the authorisation outcome arrives by webhook: the tender is "
            "`pending` until then; `capture_now` for pay now), `till` (money the store till "
            "took; captured). Refused with no money moved: amounts <= 0 or with too many "
            "decimals (400), another currency than the order's (400 currency_mismatch), more "
            "than is due (409 tender_exceeds_due), a blocked/expired/unknown gift card "
            "(409/409/404), not enough balance (409 insufficient_balance)."
        ),
    )
    def post(self, request, reference: str):
        data = validated_input(io.TenderAddInput, request)
        order = _payable_for(request, reference)
        common = {
            "order": order,
            "amount": data["amount"],
            "currency": data["currency"],
            "channel": caller_channel(request),
            "actor": caller_label(request),
        }
        kind = data["kind"]
        if kind == TenderKind.CARD:
            key = f"{caller_owner(request)}:{idempotency_key_from(request)}"
            tender = tenders.tender_add_card(
                token=data["token"], idempotency_key=key, capture_now=data["capture_now"], **common
            )
            return self._created(tender, order.reference)

        def perform():
            key = f"{caller_owner(request)}:{idempotency_key_from(request)}"
            if kind == TenderKind.GIFT_CARD:
                tender = tenders.tender_add_gift_card(
                    code=data["code"], idempotency_key=key, **common
                )
            elif kind == TenderKind.STORE_CREDIT:
                tender = tenders.tender_add_store_credit(idempotency_key=key, **common)
            elif kind == TenderKind.LOYALTY_POINTS:
                tender = tenders.tender_add_loyalty_points(idempotency_key=key, **common)
            else:
                tender = tenders.tender_add_till(
                    till_reference=data["till_reference"], idempotency_key=key, **common
                )
            return self._created(tender, order.reference)

        return idempotent(request, endpoint=f"payments.tender_add:{reference}", perform=perform)

    @staticmethod
    def _created(tender, order_reference: str) -> Response:
        tender.refresh_from_db()
        return Response(
            {"tender": io.TenderOutput(tender).data, "payment": _summary(order_reference)},
            status=status.HTTP_201_CREATED,
        )


class RefundApi(APIView):
    # Its own scope: giving money back is not granted with the right to take it.
    required_scopes = [Scope.PAYMENTS_REFUND]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.RefundInput,
        responses={201: io.RefundOutput, **ERRORS},
        description="Refund an amount of an order — or order lines (`lines`: the units' price) — "
        "split across its tenders by the configured "
        "rule (default: card, till, gift card, store credit last), each capped at what it "
        "captured; or entirely as store credit of the order's customer (`to_store_credit`). "
        "409 refund_exceeds_captured (nothing moved) when more is asked than can be refunded; "
        "409 refund_exceeds_line when a line has fewer units left to refund (earlier refunds "
        "and returns counted).",
    )
    def post(self, request, reference: str):
        data = validated_input(io.RefundInput, request)
        order = _payable_for(request, reference)
        if data["currency"] != order.currency:
            raise CurrencyMismatch(details={"currency": [f"must be {order.currency}"]})
        key = f"{caller_owner(request)}:{idempotency_key_from(request)}"
        refund = {
            "idempotency_key": key,
            "channel": caller_channel(request),
            "actor": caller_label(request),
            "to_store_credit": data["to_store_credit"],
            "reason": data["reason"],
        }
        if "lines" in data:  # per line: the order caps each line's units (refunds and returns)
            lines = order_lines_refund(
                reference=order.reference,
                lines=[(line["line"], line["quantity"]) for line in data["lines"]],
                **refund,
            )
        else:
            customer = None
            if data["to_store_credit"]:
                customer = Customer.objects.get(pk=order.customer_id)
            lines = tenders.order_payment_refund(
                order_reference=order.reference,
                amount=data["amount"],
                currency=order.currency,
                customer=customer,
                **refund,
            )
        return Response(
            {"lines": io.RefundLineOutput(lines, many=True).data, "payment": _summary(reference)},
            status=status.HTTP_201_CREATED,
        )


def _hold_data(hold) -> dict:

    account = hold.account
    hold.source = "gift_card" if isinstance(hold, GiftCardHold) else "store_credit"
    hold.currency = account.currency
    return io.HoldOutput(hold).data


class HoldCreateApi(APIView):
    """Apply a balance to a till ticket or a cart: it is held (nobody else can spend it) until
    captured, released, or it expires."""

    required_scopes = [Scope.PAYMENTS_WRITE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.HoldCreateInput,
        responses={201: io.HoldOutput, **ERRORS},
        description="Hold part of a gift card (`code`) or of a customer's store credit "
        "(`customer`). 409 insufficient_balance / gift_card_blocked / gift_card_expired, 400 "
        "currency_mismatch or a bad amount: nothing is held.",
    )
    def post(self, request):
        data = validated_input(io.HoldCreateInput, request)

        def perform():
            if data["source"] == "gift_card":
                account = selectors.gift_card_by_code(code=data["code"])
            else:
                customer = customer_get(reference=data["customer"])
                account = sv.wallet_for(customer=customer, currency=data["currency"])
            if account.currency != data["currency"]:
                raise CurrencyMismatch(
                    f"This balance is in {account.currency}.",
                    details={"currency": [f"must be {account.currency}"]},
                )
            seconds = data.get("expires_in_seconds")
            hold = sv.balance_hold(
                account=account,
                amount=data["amount"],
                idempotency_key=f"{caller_owner(request)}:{idempotency_key_from(request)}",
                channel=caller_channel(request),
                actor=caller_label(request),
                reference=data["reference"],
                expires_at=timezone.now() + timedelta(seconds=seconds) if seconds else None,
            )
            return Response(_hold_data(hold), status=status.HTTP_201_CREATED)

        return idempotent(request, endpoint="payments.hold_create", perform=perform)


class HoldCaptureApi(APIView):
    required_scopes = [Scope.PAYMENTS_WRITE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.HoldCaptureInput,
        responses={200: io.HoldOutput, **ERRORS},
        description="Spend all or part of a hold (the rest goes back). 409 hold_not_open if it "
        "was released or expired; 409 capture_exceeds_authorised above the hold.",
    )
    def post(self, request, hold_id: str):
        data = validated_input(io.HoldCaptureInput, request)

        def perform():
            hold = selectors.hold_by_public_id(public_id=hold_id)
            hold = sv.hold_capture(
                hold=hold, amount=data.get("amount"), actor=caller_label(request)
            )
            return Response(_hold_data(hold))

        return idempotent(request, endpoint=f"payments.hold_capture:{hold_id}", perform=perform)


class HoldReleaseApi(APIView):
    required_scopes = [Scope.PAYMENTS_WRITE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=None,
        responses={200: io.HoldOutput, **ERRORS},
        description="Give a hold back (the ticket was cancelled). 409 hold_not_open if captured.",
    )
    def post(self, request, hold_id: str):
        def perform():
            hold = selectors.hold_by_public_id(public_id=hold_id)
            return Response(_hold_data(sv.hold_release(hold=hold, actor=caller_label(request))))

        return idempotent(request, endpoint=f"payments.hold_release:{hold_id}", perform=perform)


class ProviderWebhookApi(APIView):
    """Where payment providers post their events. Authenticated by the provider's signature
    over the raw body, not by an API key."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=inline_serializer("ProviderEvent", {"id": serializers.CharField()}),
        responses={200: io.WebhookAck, 401: ErrorSerializer, 400: ErrorSerializer},
        description="Verified (HMAC-SHA256 over `<timestamp>.<raw body>`, tolerance window), "
        "stored under its event id (a replay answers `duplicate: true` and does nothing), "
        "processed in a task. 401 signature_invalid: nothing stored.",
    )
    def post(self, request, provider: str):
        event, duplicate = provider_webhook_receive(
            provider_name=provider, headers=request.headers, body=request.body
        )
        return Response({"received": True, "duplicate": duplicate})

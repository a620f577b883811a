"""Loyalty API: thin views that validate shape, call one service or selector, and serialise.

Scopes: `customers:read` for a customer's balance, lots, history and offers, and for campaigns,
their reports and recipients; `loyalty:write` for the shopper's writes (enrol, points
hold/capture/release, coupon validate/hold/release/redeem); `campaigns:write` to create a
campaign and issue its codes (a CRM). Every POST
that writes takes an Idempotency-Key (`common.idempotency.idempotent`); the service gets the key
namespaced by the calling API key, so a retry of the same call applies once.
"""

from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import validated_input
from common.auth import caller_channel, caller_label, caller_owner
from common.exceptions import InvalidInput
from common.idempotency import idempotency_key_from, idempotent
from common.models import Scope
from common.pagination import DefaultPagination, paginated
from common.schema import IDEMPOTENCY_HEADER
from common.serializers import ErrorSerializer
from customers.selectors import customer_get
from loyalty import coupons, selectors, services
from loyalty.api import serializers as io
from loyalty.exceptions import NoLoyaltyAccount
from loyalty.models import Campaign
from stores.selectors import location_get

ERRORS = dict.fromkeys((400, 401, 403, 404, 409, 410, 422), ErrorSerializer)
REFERENCE = OpenApiParameter(
    "reference", str, OpenApiParameter.PATH, description="Customer reference (UUID) or number."
)


def _service_key(request) -> str:
    return f"api:{caller_owner(request)}:{idempotency_key_from(request)}"


def _store(code: str | None):
    return location_get(code=code) if code else None


def _basket(data: dict) -> list[coupons.BasketLine]:
    return [
        coupons.BasketLine(
            sku=line["sku"],
            quantity=line["quantity"],
            amount=line["amount"],
            category=line.get("category", ""),
        )
        for line in data["lines"]
    ]


def _account_body(customer) -> dict:
    account = selectors.account_get(customer=customer)
    if account is None:
        raise NoLoyaltyAccount()
    now = timezone.now()
    lots = selectors.lots_open(account=account, at=now)
    for lot in lots:
        lot.pending = lot.available_at > now
    summary = selectors.points_summary(account=account, at=now)
    return io.AccountOutput(
        {
            "customer": str(customer.reference),
            "card_number": account.card_number,
            "tier": account.tier,
            "tier_review_at": account.tier_review_at,
            **summary,
            "lots": lots,
        }
    ).data


class LoyaltyAccountApi(APIView):
    """A customer's points: spendable, pending (return window), held, and every open lot with
    its expiry. POST enrols the customer (the card number becomes a loyalty_card identifier)."""

    required_scopes = {"GET": [Scope.CUSTOMERS_READ], "POST": [Scope.LOYALTY_WRITE]}

    @extend_schema(parameters=[REFERENCE], responses={200: io.AccountOutput, **ERRORS})
    def get(self, request, reference: str):
        return Response(_account_body(customer_get(reference=reference)))

    @extend_schema(
        parameters=[REFERENCE, IDEMPOTENCY_HEADER],
        request=io.EnrolInput,
        responses={201: io.AccountOutput, **ERRORS},
    )
    def post(self, request, reference: str):
        data = validated_input(io.EnrolInput, request)
        customer = customer_get(reference=reference)

        def perform():
            services.account_open(
                customer=customer,
                card_number=data.get("card_number"),
                channel=caller_channel(request),
                actor=caller_label(request),
            )
            return Response(_account_body(customer), status=status.HTTP_201_CREATED)

        return idempotent(request, endpoint=f"loyalty.enrol:{reference}", perform=perform)


class LoyaltyHistoryApi(APIView):
    """Every movement of the customer's points, newest first (keyset pagination on `before`)."""

    required_scopes = [Scope.CUSTOMERS_READ]

    @extend_schema(
        parameters=[
            REFERENCE,
            OpenApiParameter("before", int, description="`next_before` of the previous page."),
            OpenApiParameter("limit", int, description="1–200, default 50."),
        ],
        responses={200: io.HistoryOutput, **ERRORS},
    )
    def get(self, request, reference: str):
        account = selectors.account_get(customer=customer_get(reference=reference))
        if account is None:
            raise NoLoyaltyAccount()
        try:
            before = (
                int(request.query_params["before"]) if "before" in request.query_params else None
            )
            limit = int(request.query_params.get("limit", 50))
        except ValueError:
            raise InvalidInput("before and limit are integers.") from None
        if not 1 <= limit <= 200:
            raise InvalidInput("limit is between 1 and 200.", details={"limit": [str(limit)]})
        movements = selectors.movements_list(account=account, before_id=before, limit=limit)
        next_before = movements[-1].pk if len(movements) == limit else None
        return Response(io.HistoryOutput({"results": movements, "next_before": next_before}).data)


class LoyaltyOffersApi(APIView):
    """The personal offers a customer can use now (on the caller's channel, or `channel`)."""

    required_scopes = [Scope.CUSTOMERS_READ]

    @extend_schema(
        parameters=[REFERENCE, OpenApiParameter("channel", str)],
        responses={200: io.OfferOutput(many=True), **ERRORS},
    )
    def get(self, request, reference: str):
        customer = customer_get(reference=reference)
        channel = request.query_params.get("channel") or caller_channel(request)
        offers = coupons.offers_for(customer=customer, channel=channel)
        return Response(io.OfferOutput(offers, many=True).data)


class PointsHoldApi(APIView):
    """Hold points as a tender (an order or a till ticket): soonest-expiring lots first; pending
    points are not spendable. Capture or release the hold later (payments does)."""

    required_scopes = [Scope.LOYALTY_WRITE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.PointsHoldInput,
        responses={201: io.SpendOutput, **ERRORS},
        description="409 insufficient_points (details: available, pending, requested), "
        "404 no_loyalty_account, 400 on a negative, zero or fractional number of points.",
    )
    def post(self, request):
        data = validated_input(io.PointsHoldInput, request)
        customer = customer_get(reference=data["customer"])
        store = _store(data.get("store"))

        def perform():
            spend = services.points_hold(
                customer=customer,
                points=data["points"],
                reference=data["reference"],
                purpose=data["purpose"],
                channel=caller_channel(request),
                store=store,
                idempotency_key=_service_key(request),
                actor=caller_label(request),
            )
            return Response(io.SpendOutput(spend).data, status=status.HTTP_201_CREATED)

        return idempotent(request, endpoint="loyalty.points_hold", perform=perform)


class PointsCaptureApi(APIView):
    required_scopes = [Scope.LOYALTY_WRITE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.PointsCaptureInput,
        responses={200: io.SpendOutput, **ERRORS},
        description="Spend all the hold, or `points` of it (the rest goes back). "
        "409 points_hold_not_open when already captured, released or expired.",
    )
    def post(self, request, hold_id: int):
        data = validated_input(io.PointsCaptureInput, request)

        def perform():
            spend = services.points_capture(
                spend_id=hold_id,
                points=data.get("points"),
                idempotency_key=_service_key(request),
                actor=caller_label(request),
            )
            return Response(io.SpendOutput(spend).data)

        return idempotent(request, endpoint=f"loyalty.points_capture:{hold_id}", perform=perform)


class PointsReleaseApi(APIView):
    required_scopes = [Scope.LOYALTY_WRITE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=None,
        responses={200: io.SpendOutput, **ERRORS},
    )
    def post(self, request, hold_id: int):
        def perform():
            spend = services.points_release(
                spend_id=hold_id,
                idempotency_key=_service_key(request),
                actor=caller_label(request),
            )
            return Response(io.SpendOutput(spend).data)

        return idempotent(request, endpoint=f"loyalty.points_release:{hold_id}", perform=perform)


class RewardListApi(APIView):
    """The rewards catalogue (active rewards buyable on the caller's channel)."""

    required_scopes = [Scope.CUSTOMERS_READ]

    @extend_schema(responses={200: io.RewardOutput(many=True), **ERRORS})
    def get(self, request):
        channel = caller_channel(request)
        rewards = [r for r in selectors.rewards_list() if not r.channels or channel in r.channels]
        return Response(io.RewardOutput(rewards, many=True).data)


class RewardBuyApi(APIView):
    """Buy a reward with points (spent at once, soonest-expiring lots first)."""

    required_scopes = [Scope.LOYALTY_WRITE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.RewardBuyInput,
        responses={201: io.SpendOutput, **ERRORS},
        description="404 reward_unavailable, 409 insufficient_points, 404 no_loyalty_account.",
    )
    def post(self, request):
        data = validated_input(io.RewardBuyInput, request)
        customer = customer_get(reference=data["customer"])
        store = _store(data.get("store"))

        def perform():
            spend = services.reward_buy(
                customer=customer,
                reward_code=data["reward"],
                channel=caller_channel(request),
                store=store,
                idempotency_key=_service_key(request),
                actor=caller_label(request),
            )
            return Response(io.SpendOutput(spend).data, status=status.HTTP_201_CREATED)

        return idempotent(request, endpoint="loyalty.reward_buy", perform=perform)


class CouponValidateApi(APIView):
    """Check a code against a cart (owner, validity, channel, basket rules). Changes nothing."""

    required_scopes = [Scope.LOYALTY_WRITE]

    @extend_schema(
        request=io.CouponInput,
        responses={200: io.ValidationOutput, **ERRORS},
        description="404 coupon_not_found, 410 coupon_expired, 403 coupon_not_owned / "
        "coupon_channel_not_allowed, 422 basket_not_eligible, 409 coupon_already_used / "
        "coupon_held_elsewhere.",
    )
    def post(self, request):
        data = validated_input(io.CouponInput, request)
        result = coupons.coupon_validate(
            code=data["code"],
            customer=customer_get(reference=data["customer"]),
            channel=caller_channel(request),
            lines=_basket(data),
            currency=data["currency"],
        )
        return Response(io.ValidationOutput(result).data)


class CouponHoldApi(APIView):
    """Apply a code to a storefront cart: it is reserved for the cart until the hold expires."""

    required_scopes = [Scope.LOYALTY_WRITE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.CouponHoldInput,
        responses={200: io.ValidationOutput, **ERRORS},
    )
    def post(self, request):
        data = validated_input(io.CouponHoldInput, request)
        customer = customer_get(reference=data["customer"])

        def perform():
            result = coupons.coupon_hold(
                code=data["code"],
                customer=customer,
                channel=caller_channel(request),
                cart_ref=data["cart_ref"],
                lines=_basket(data),
                currency=data["currency"],
            )
            return Response(io.ValidationOutput(result).data)

        return idempotent(request, endpoint="loyalty.coupon_hold", perform=perform)


class CouponReleaseApi(APIView):
    required_scopes = [Scope.LOYALTY_WRITE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.CouponReleaseInput,
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
    )
    def post(self, request):
        data = validated_input(io.CouponReleaseInput, request)
        customer = customer_get(reference=data["customer"])

        def perform():
            released = coupons.coupon_release(
                code=data["code"], customer=customer, cart_ref=data["cart_ref"]
            )
            return Response({"released": released})

        return idempotent(request, endpoint="loyalty.coupon_release", perform=perform)


class CouponRedeemApi(APIView):
    """Redeem a code once: the storefront with its order, the till with its sale (store
    required). A code redeemed anywhere is dead everywhere."""

    required_scopes = [Scope.LOYALTY_WRITE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.CouponRedeemInput,
        responses={201: io.RedemptionOutput, **ERRORS},
    )
    def post(self, request):
        data = validated_input(io.CouponRedeemInput, request)
        customer = customer_get(reference=data["customer"])
        store = _store(data.get("store"))

        def perform():
            redemption = coupons.coupon_redeem(
                code=data["code"],
                customer=customer,
                channel=caller_channel(request),
                lines=_basket(data),
                currency=data["currency"],
                store=store,
                till=data.get("till", ""),
                order_ref=data.get("order_ref", ""),
                cart_ref=data.get("cart_ref", ""),
                idempotency_key=_service_key(request),
            )
            return Response(io.RedemptionOutput(redemption).data, status=status.HTTP_201_CREATED)

        return idempotent(request, endpoint="loyalty.coupon_redeem", perform=perform)


class CampaignReportApi(APIView):
    """Issued, redeemed, rate, store vs online, O2O store visitors, revenue (docs/loyalty.md)."""

    required_scopes = [Scope.CUSTOMERS_READ]

    @extend_schema(responses={200: io.ReportOutput, **ERRORS})
    def get(self, request, campaign_id: int):
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        return Response(io.ReportOutput(coupons.campaign_report(campaign=campaign)).data)


class CampaignReportCsvApi(APIView):
    required_scopes = [Scope.CUSTOMERS_READ]

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR, **ERRORS})
    def get(self, request, campaign_id: int):
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        response = HttpResponse(
            coupons.campaign_reports_csv([coupons.campaign_report(campaign=campaign)]),
            content_type="text/csv",
        )
        response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}.csv"'
        return response


# ---- campaigns (a CRM drives them) ---------------------------------------------------------


def _campaign_data(campaign_id: int) -> dict:
    return io.CampaignOutput(selectors.campaign_get(campaign_id=campaign_id, with_counts=True)).data


class CampaignListCreateApi(APIView):
    required_scopes = {"GET": [Scope.CUSTOMERS_READ], "POST": [Scope.CAMPAIGNS_WRITE]}

    @extend_schema(
        operation_id="v1_loyalty_campaigns_list",
        responses={200: paginated(io.CampaignOutput), **ERRORS},
    )
    def get(self, request):
        """Campaigns, newest first (paginated: `page`, `page_size`)."""
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(selectors.campaign_list(), request, view=self)
        return paginator.get_paginated_response(io.CampaignOutput(page, many=True).data)

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=io.CampaignCreateInput,
        responses={201: io.CampaignOutput, **ERRORS},
        description="Create a campaign (no code issued yet: `issue/`). A list target names its "
        "customers (references or numbers); a segment target filters by tier, preferred store "
        "and inactivity. Errors: campaign_discount_invalid, campaign_period_invalid, "
        "campaign_target_invalid, unknown_sku, unknown_tier, unknown_location, "
        "customer_not_found, customer_erased.",
    )
    def post(self, request):
        def perform():
            data = validated_input(io.CampaignCreateInput, request)
            tier_code = data.pop("segment_tier", None)
            store_code = data.pop("segment_preferred_store", None)
            references = data.pop("target_customers")
            campaign = coupons.campaign_create(
                **data,
                target_customers=selectors.target_customers_resolve(references),
                segment_tier=selectors.tier_get(code=tier_code) if tier_code else None,
                segment_preferred_store=_store(store_code),
            )
            return Response(_campaign_data(campaign.pk), status=status.HTTP_201_CREATED)

        return idempotent(request, endpoint="loyalty.campaign_create", perform=perform)


class CampaignDetailApi(APIView):
    required_scopes = [Scope.CUSTOMERS_READ]

    @extend_schema(responses={200: io.CampaignOutput, **ERRORS})
    def get(self, request, campaign_id: int):
        return Response(_campaign_data(campaign_id))


class CampaignIssueApi(APIView):
    required_scopes = [Scope.CAMPAIGNS_WRITE]

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=None,
        responses={200: io.IssueOutput, **ERRORS},
        description="Issue one personal code to every target who consents to marketing on the "
        "campaign's issue channel and holds fewer than per_customer_limit codes of it. Issuing "
        "again only reaches new targets (never a second code beyond the limit). 410 "
        "campaign_over once it has ended.",
    )
    def post(self, request, campaign_id: int):
        def perform():
            campaign = selectors.campaign_get(campaign_id=campaign_id)
            result = coupons.campaign_issue(campaign=campaign)
            counts = selectors.campaign_get(campaign_id=campaign_id, with_counts=True)
            return Response(
                io.IssueOutput(
                    {
                        "campaign": campaign.pk,
                        "issued": result.issued,
                        "skipped_no_consent": result.skipped_no_consent,
                        "skipped_limit": result.skipped_limit,
                        "codes_issued": counts.codes_issued,
                    }
                ).data
            )

        return idempotent(
            request, endpoint=f"loyalty.campaign_issue.{campaign_id}", perform=perform
        )


class CampaignRecipientsApi(APIView):
    """Who came to the shop after the offer: one row per recipient (paginated)."""

    required_scopes = [Scope.CUSTOMERS_READ]

    @extend_schema(
        operation_id="v1_loyalty_campaigns_recipients_list",
        responses={200: paginated(io.RecipientOutput), **ERRORS},
        description="Recipients, oldest issue first: their codes, redemptions (where, when) and "
        "store visits within the campaign's o2o_days. Identity (reference, number) only for "
        "recipients who consent today to marketing on the campaign's issue channel; the others "
        "stay as anonymous rows, so the list adds up to the report (docs/loyalty.md).",
    )
    def get(self, request, campaign_id: int):
        campaign = selectors.campaign_get(campaign_id=campaign_id)
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(
            selectors.campaign_recipients(campaign=campaign), request, view=self
        )
        return paginator.get_paginated_response(io.RecipientOutput(page, many=True).data)


class CampaignRecipientsCsvApi(APIView):
    required_scopes = [Scope.CUSTOMERS_READ]

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR, **ERRORS})
    def get(self, request, campaign_id: int):
        campaign = selectors.campaign_get(campaign_id=campaign_id)
        response = StreamingHttpResponse(
            coupons.campaign_recipients_csv(campaign=campaign), content_type="text/csv"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="campaign-{campaign.pk}-recipients.csv"'
        )
        return response

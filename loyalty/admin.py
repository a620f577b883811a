"""Back office for the loyalty programme and personal offers.

Editable: the programme settings, tiers, earning rules and campaigns (with an "Issue codes"
action and the campaign report, also as CSV). Read-only: accounts, lots, movements, spends,
operations, codes and redemptions — points change only through the services.
"""

from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy

from common.admin_utils import ReadOnlyAdminMixin, ReadOnlyInline, run_admin_service
from loyalty import coupons
from loyalty.models import (
    Campaign,
    Coupon,
    CouponRedemption,
    EarningRule,
    LoyaltyAccount,
    PointsLot,
    PointsMovement,
    PointsOperation,
    PointsSpend,
    ProgramSettings,
    Reward,
    Tier,
    TierChange,
)
from loyalty.selectors import points_summary


@admin.register(ProgramSettings)
class ProgramSettingsAdmin(admin.ModelAdmin):
    list_display = [
        "currency",
        "points_per_unit",
        "min_order_value",
        "pending_days",
        "validity_days",
        "tier_period_days",
        "hold_ttl_minutes",
    ]

    def has_add_permission(self, request):
        return not ProgramSettings.objects.exists()  # one row

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "threshold_points", "multiplier"]


@admin.register(EarningRule)
class EarningRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "scope",
        "value",
        "multiplier",
        "bonus_points",
        "starts_at",
        "ends_at",
        "is_active",
    ]
    list_filter = ["scope", "is_active"]
    search_fields = ["name", "value"]


@admin.register(Reward)
class RewardAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "points_cost", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "code"]


# ---- ledgers (read-only) -------------------------------------------------------------------


class LotInline(ReadOnlyInline):
    model = PointsLot
    fields = [
        "kind",
        "source_type",
        "source_ref",
        "amount",
        "remaining",
        "earned_at",
        "available_at",
        "expires_at",
    ]
    readonly_fields = fields
    ordering = ["-pk"]


class TierChangeInline(ReadOnlyInline):
    model = TierChange
    fields = ["occurred_at", "from_tier", "to_tier", "qualifying_points", "reason"]
    readonly_fields = fields


@admin.register(LoyaltyAccount)
class LoyaltyAccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["card_number", "customer", "tier", "points_remaining", "is_active"]
    list_filter = ["tier", "is_active"]
    search_fields = ["card_number", "customer__number", "customer__last_name"]
    list_select_related = ["customer", "tier"]
    readonly_fields = ["balances"]
    inlines = [LotInline, TierChangeInline]

    @admin.display(description=gettext_lazy("Points now"))
    def balances(self, obj):
        summary = points_summary(account=obj)
        return ", ".join(f"{name}: {value}" for name, value in summary.items())


@admin.register(PointsLot)
class PointsLotAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "pk",
        "account",
        "kind",
        "source_type",
        "source_ref",
        "amount",
        "remaining",
        "available_at",
        "expires_at",
    ]
    list_filter = ["kind", "source_type"]
    search_fields = ["source_ref", "account__card_number"]
    list_select_related = ["account"]


@admin.register(PointsMovement)
class PointsMovementAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["pk", "occurred_at", "account", "lot", "kind", "delta", "spend"]
    list_filter = ["kind"]
    search_fields = ["account__card_number"]
    list_select_related = ["account"]


@admin.register(PointsSpend)
class PointsSpendAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "pk",
        "account",
        "purpose",
        "reference",
        "points",
        "captured_points",
        "refunded_points",
        "status",
        "channel",
        "created_at",
    ]
    list_filter = ["status", "purpose", "channel"]
    search_fields = ["reference", "account__card_number"]


@admin.register(PointsOperation)
class PointsOperationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["pk", "kind", "idempotency_key", "channel", "actor", "created_at"]
    list_filter = ["kind"]
    search_fields = ["idempotency_key"]


# ---- offers ----------------------------------------------------------------------------------


@admin.action(
    description=gettext_lazy("Issue codes to the targeted customers (who consented)"),
    permissions=["change"],
)
def issue_codes(modeladmin, request, queryset):
    for campaign in queryset.order_by("pk"):
        result = {}

        def call(campaign=campaign, result=result):
            result["r"] = coupons.campaign_issue(campaign=campaign)

        if run_admin_service(request, call, f"{campaign}: codes issued."):
            r = result["r"]
            messages.info(
                request,
                f"{campaign}: {r.issued} issued, {r.skipped_no_consent} without consent, "
                f"{r.skipped_limit} already at the per-customer limit.",
            )


@admin.action(
    description=gettext_lazy("Download the report of the selected campaigns (CSV)"),
    permissions=["view"],
)
def report_as_csv(modeladmin, request, queryset):
    reports = [coupons.campaign_report(campaign=c) for c in queryset.order_by("pk")]
    response = HttpResponse(coupons.campaign_reports_csv(reports), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="campaigns.csv"'
    return response


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "discount_type", "discount_value", "starts_at", "ends_at", "issued"]
    search_fields = ["name"]
    raw_id_fields = ["target_customers", "segment_preferred_store"]
    actions = [issue_codes, report_as_csv]
    readonly_fields = ["report"]

    @admin.display(description=gettext_lazy("Codes"))
    def issued(self, obj):
        return obj.coupons.count()

    @admin.display(description=gettext_lazy("Report"))
    def report(self, obj):
        if obj.pk is None:
            return "—"
        report = coupons.campaign_report(campaign=obj)
        return format_html_join(
            "",
            "<div><strong>{}</strong>: {}</div>",
            ((key.replace("_", " "), value) for key, value in report.items()),
        )


@admin.register(Coupon)
class CouponAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["pk", "campaign", "customer", "masked_code", "issue_channel", "status"]
    list_filter = ["status", "issue_channel", "campaign"]
    list_select_related = ["campaign", "customer"]
    exclude = ["code"]
    readonly_fields = ["masked_code"]

    @admin.display(description=gettext_lazy("Code"))
    def masked_code(self, obj):
        # The code is the customer's: staff see enough to tell it apart, not enough to use it.
        return f"{obj.code[:4]}••••••••"


@admin.register(CouponRedemption)
class CouponRedemptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "pk",
        "campaign",
        "customer",
        "channel",
        "store",
        "till",
        "order_ref",
        "basket_total",
        "discount",
        "redeemed_at",
    ]
    list_filter = ["channel", "campaign"]
    list_select_related = ["campaign", "customer", "store"]

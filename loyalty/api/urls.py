from django.urls import path

from loyalty.api import views

urlpatterns = [
    path(
        "loyalty/customers/<str:reference>/",
        views.LoyaltyAccountApi.as_view(),
        name="loyalty-account",
    ),
    path(
        "loyalty/customers/<str:reference>/history/",
        views.LoyaltyHistoryApi.as_view(),
        name="loyalty-history",
    ),
    path(
        "loyalty/customers/<str:reference>/offers/",
        views.LoyaltyOffersApi.as_view(),
        name="loyalty-offers",
    ),
    path("loyalty/points/holds/", views.PointsHoldApi.as_view(), name="loyalty-points-hold"),
    path(
        "loyalty/points/holds/<int:hold_id>/capture/",
        views.PointsCaptureApi.as_view(),
        name="loyalty-points-capture",
    ),
    path(
        "loyalty/points/holds/<int:hold_id>/release/",
        views.PointsReleaseApi.as_view(),
        name="loyalty-points-release",
    ),
    path("loyalty/rewards/", views.RewardListApi.as_view(), name="loyalty-rewards"),
    path("loyalty/rewards/buy/", views.RewardBuyApi.as_view(), name="loyalty-reward-buy"),
    path(
        "loyalty/coupons/validate/", views.CouponValidateApi.as_view(), name="loyalty-coupon-check"
    ),
    path("loyalty/coupons/hold/", views.CouponHoldApi.as_view(), name="loyalty-coupon-hold"),
    path(
        "loyalty/coupons/release/", views.CouponReleaseApi.as_view(), name="loyalty-coupon-release"
    ),
    path("loyalty/coupons/redeem/", views.CouponRedeemApi.as_view(), name="loyalty-coupon-redeem"),
    path("loyalty/campaigns/", views.CampaignListCreateApi.as_view(), name="loyalty-campaigns"),
    path(
        "loyalty/campaigns/<int:campaign_id>/",
        views.CampaignDetailApi.as_view(),
        name="loyalty-campaign",
    ),
    path(
        "loyalty/campaigns/<int:campaign_id>/issue/",
        views.CampaignIssueApi.as_view(),
        name="loyalty-campaign-issue",
    ),
    path(
        "loyalty/campaigns/<int:campaign_id>/recipients/",
        views.CampaignRecipientsApi.as_view(),
        name="loyalty-campaign-recipients",
    ),
    path(
        "loyalty/campaigns/<int:campaign_id>/recipients.csv",
        views.CampaignRecipientsCsvApi.as_view(),
        name="loyalty-campaign-recipients-csv",
    ),
    path(
        "loyalty/campaigns/<int:campaign_id>/report/",
        views.CampaignReportApi.as_view(),
        name="loyalty-campaign-report",
    ),
    path(
        "loyalty/campaigns/<int:campaign_id>/report.csv",
        views.CampaignReportCsvApi.as_view(),
        name="loyalty-campaign-report-csv",
    ),
]

from django.urls import path

from payments.api import views

urlpatterns = [
    path("payments/gift-cards/", views.GiftCardSellApi.as_view(), name="payments-gift-card-sell"),
    path(
        "payments/gift-cards/balance/",
        views.GiftCardBalanceApi.as_view(),
        name="payments-gift-card-balance",
    ),
    path(
        "payments/customers/<str:reference>/store-credit/",
        views.StoreCreditApi.as_view(),
        name="payments-store-credit",
    ),
    path(
        "payments/orders/<str:reference>/",
        views.OrderPaymentApi.as_view(),
        name="payments-order",
    ),
    path(
        "payments/orders/<str:reference>/tenders/",
        views.TenderAddApi.as_view(),
        name="payments-order-tenders",
    ),
    path(
        "payments/orders/<str:reference>/refunds/",
        views.RefundApi.as_view(),
        name="payments-order-refunds",
    ),
    path("payments/holds/", views.HoldCreateApi.as_view(), name="payments-hold-create"),
    path(
        "payments/holds/<str:hold_id>/capture/",
        views.HoldCaptureApi.as_view(),
        name="payments-hold-capture",
    ),
    path(
        "payments/holds/<str:hold_id>/release/",
        views.HoldReleaseApi.as_view(),
        name="payments-hold-release",
    ),
    path(
        "payments/webhooks/<str:provider>/",
        views.ProviderWebhookApi.as_view(),
        name="payments-provider-webhook",
    ),
]

from django.urls import path

from inventory.api import views

urlpatterns = [
    path("skus/", views.SkuListApi.as_view(), name="sku-list"),
    path("skus/<str:code>/", views.SkuDetailApi.as_view(), name="sku-detail"),
    path("availability/", views.AvailabilityApi.as_view(), name="availability"),
    path("availability/near/", views.AvailabilityNearApi.as_view(), name="availability-near"),
    path("stock/positions/", views.PositionListApi.as_view(), name="position-list"),
    path("stock/movements/", views.MovementListApi.as_view(), name="movement-list"),
    path("stock/receipts/", views.ReceiptCreateApi.as_view(), name="stock-receipt"),
    path("stock/adjustments/", views.AdjustmentCreateApi.as_view(), name="stock-adjustment"),
    path("stock/set-aside/", views.SetAsideCreateApi.as_view(), name="stock-set-aside"),
    path("stock/counts/", views.CountCreateApi.as_view(), name="stock-count"),
    path("stock/counts/<int:pk>/", views.CountDetailApi.as_view(), name="stock-count-detail"),
    path("reservations/", views.ReservationListCreateApi.as_view(), name="reservation-list"),
    path("reservations/<int:pk>/", views.ReservationDetailApi.as_view(), name="reservation-detail"),
    path(
        "reservations/<int:pk>/release/",
        views.ReservationSettleApi.as_view(commit=False),
        name="reservation-release",
    ),
    path(
        "reservations/<int:pk>/commit/",
        views.ReservationSettleApi.as_view(commit=True),
        name="reservation-commit",
    ),
    path("transfers/", views.TransferListCreateApi.as_view(), name="transfer-list"),
    path("transfers/<int:pk>/", views.TransferDetailApi.as_view(), name="transfer-detail"),
    path(
        "transfers/<int:pk>/ship/",
        views.TransferActionApi.as_view(action="ship"),
        name="transfer-ship",
    ),
    path(
        "transfers/<int:pk>/receive/",
        views.TransferActionApi.as_view(action="receive"),
        name="transfer-receive",
    ),
    path(
        "transfers/<int:pk>/cancel/",
        views.TransferActionApi.as_view(action="cancel"),
        name="transfer-cancel",
    ),
]

from django.urls import path

from orders.api import views

urlpatterns = [
    path("orders/cart-check/", views.CartCheckApi.as_view(), name="order-cart-check"),
    path("orders/", views.OrderPlaceApi.as_view(), name="order-place"),
    path("orders/<str:reference>/", views.OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<str:reference>/cancel/", views.OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<str:reference>/picking/", views.OrderPickingApi.as_view(), name="order-picking"),
    path("orders/<str:reference>/ready/", views.OrderReadyApi.as_view(), name="order-ready"),
    path("orders/<str:reference>/collect/", views.OrderCollectApi.as_view(), name="order-collect"),
    path("orders/<str:reference>/ship/", views.OrderShipApi.as_view(), name="order-ship"),
    path("orders/<str:reference>/deliver/", views.OrderDeliverApi.as_view(), name="order-deliver"),
    path(
        "orders/<str:reference>/lines/<int:line>/reject/",
        views.OrderLineRejectApi.as_view(),
        name="order-line-reject",
    ),
    path(
        "orders/<str:reference>/transfers/<int:allocation>/ship/",
        views.OrderTransferShipApi.as_view(),
        name="order-transfer-ship",
    ),
    path(
        "orders/<str:reference>/transfers/<int:allocation>/receive/",
        views.OrderTransferReceiveApi.as_view(),
        name="order-transfer-receive",
    ),
    path("orders/<str:reference>/returns/", views.OrderReturnApi.as_view(), name="order-return"),
    path("stock-alerts/", views.StockAlertCreateApi.as_view(), name="stock-alert-create"),
]

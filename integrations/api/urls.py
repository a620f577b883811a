from django.urls import path

from integrations.api import views, webhooks

urlpatterns = [
    path("pos/<slug:slug>/events/", views.PosEventIntakeApi.as_view(), name="pos-events"),
    path(
        "pos/<slug:slug>/events/batch/",
        views.PosEventBatchIntakeApi.as_view(),
        name="pos-events-batch",
    ),
    path(
        "pos/<slug:slug>/customer-lookup/",
        views.PosCustomerLookupApi.as_view(),
        name="pos-customer-lookup",
    ),
    path(
        "webhooks/endpoints/",
        webhooks.EndpointListCreateApi.as_view(),
        name="webhook-endpoint-list",
    ),
    path(
        "webhooks/endpoints/<int:endpoint_id>/",
        webhooks.EndpointDetailApi.as_view(),
        name="webhook-endpoint-detail",
    ),
    path(
        "webhooks/endpoints/<int:endpoint_id>/pause/",
        webhooks.EndpointPauseApi.as_view(),
        name="webhook-endpoint-pause",
    ),
    path(
        "webhooks/endpoints/<int:endpoint_id>/resume/",
        webhooks.EndpointResumeApi.as_view(),
        name="webhook-endpoint-resume",
    ),
    path(
        "webhooks/endpoints/<int:endpoint_id>/rotate-secret/",
        webhooks.EndpointRotateSecretApi.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path(
        "webhooks/endpoints/<int:endpoint_id>/deliveries/",
        webhooks.DeliveryListApi.as_view(),
        name="webhook-delivery-list",
    ),
    path(
        "webhooks/endpoints/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver/",
        webhooks.DeliveryRedeliverApi.as_view(),
        name="webhook-delivery-redeliver",
    ),
]

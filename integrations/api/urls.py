from django.urls import path

from integrations.api import views

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
]

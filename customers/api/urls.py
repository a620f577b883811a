from django.urls import path

from customers.api import views

urlpatterns = [
    path("customers/resolve/", views.CustomerResolveApi.as_view(), name="customer-resolve"),
    path("customers/identify/", views.CustomerIdentifyApi.as_view(), name="customer-identify"),
    # before customers/<reference>/, which "merges" would otherwise match
    path("customers/merges/", views.CustomerMergeApi.as_view(), name="customer-merges"),
    path(
        "customers/merges/<int:merge_id>/",
        views.CustomerMergeDetailApi.as_view(),
        name="customer-merge",
    ),
    path(
        "customers/merges/<int:merge_id>/undo/",
        views.CustomerUnmergeApi.as_view(),
        name="customer-unmerge",
    ),
    path("customers/<str:reference>/", views.CustomerDetailApi.as_view(), name="customer-detail"),
    path(
        "customers/<str:reference>/identifiers/",
        views.CustomerIdentifierCreateApi.as_view(),
        name="customer-identifiers",
    ),
    path(
        "customers/<str:reference>/identifiers/<int:identifier_id>/",
        views.CustomerIdentifierDeleteApi.as_view(),
        name="customer-identifier-delete",
    ),
    path(
        "customers/<str:reference>/consents/",
        views.CustomerConsentsApi.as_view(),
        name="customer-consents",
    ),
    path(
        "customers/<str:reference>/history/",
        views.CustomerHistoryApi.as_view(),
        name="customer-history",
    ),
    path(
        "customers/<str:reference>/export/",
        views.CustomerExportApi.as_view(),
        name="customer-export",
    ),
    path(
        "customers/<str:reference>/erase/", views.CustomerEraseApi.as_view(), name="customer-erase"
    ),
]

from django.urls import path

from stores.api import views

urlpatterns = [
    path("locations/", views.LocationListApi.as_view(), name="location-list"),
    path("locations/<str:code>/", views.LocationDetailApi.as_view(), name="location-detail"),
]

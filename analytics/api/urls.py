from django.urls import path

from analytics.api.views import KpiTableApi

urlpatterns = [path("kpis/<str:name>/", KpiTableApi.as_view(), name="kpi-table")]

from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path
from django.utils.translation import gettext_lazy
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from common.schema import SerialSchemaView
from common.views import healthz, healthz_node
from stores.views import staff_language_switch

admin.site.site_header = gettext_lazy("Omnistock back office")
admin.site.site_title = "Omnistock"

api_v1 = [
    path("", include("stores.api.urls")),
    path("", include("inventory.api.urls")),
    path("", include("customers.api.urls")),
    path("", include("orders.api.urls")),
    path("", include("integrations.api.urls")),
    path("", include("payments.api.urls")),
    path("", include("loyalty.api.urls")),
    path("", include("analytics.api.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("healthz/node", healthz_node, name="healthz-node"),
    path("api/schema/", SerialSchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/v1/", include(api_v1)),
    path("i18n/setlang/", staff_language_switch, name="set_language"),
    path("admin/", admin.site.urls),
]
# The embedded server (gunicorn, DEBUG on) serves the admin's and the API docs' static files;
# production serves the collected files (STATIC_ROOT) from the proxy. Empty when DEBUG is off.
urlpatterns += staticfiles_urlpatterns()

handler400 = "common.api.json_400"
handler404 = "common.api.json_404"
handler500 = "common.api.json_500"

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class StoresConfig(AppConfig):
    name = "stores"
    verbose_name = gettext_lazy("Locations (warehouses and stores)")

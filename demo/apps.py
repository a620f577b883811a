from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class DemoConfig(AppConfig):
    """The demo data set of `make run`: the top layer, loaded through every app's services."""

    name = "demo"
    verbose_name = gettext_lazy("Demo data")

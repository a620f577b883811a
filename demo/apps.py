from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo data set of `make run`: the top layer, loaded through every app's services."""

    name = "demo"
    verbose_name = "Demo data"

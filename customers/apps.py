from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = gettext_lazy("Customers (RCU)")

    def ready(self) -> None:
        from django.core.signals import setting_changed
        from django.db.models.signals import post_delete, post_save

        from customers import contributions
        from customers.identifiers import junk_rules_clear
        from customers.models import JunkIdentifierPattern
        from stores.models import Location

        contributions.register()

        # the cached placeholder rules depend on these rows and settings
        def clear(**kwargs):
            junk_rules_clear()

        for model in (JunkIdentifierPattern, Location):
            post_save.connect(
                clear,
                sender=model,
                weak=False,
                dispatch_uid=f"customers-junk-{model._meta.label}-save",
            )
            post_delete.connect(
                clear,
                sender=model,
                weak=False,
                dispatch_uid=f"customers-junk-{model._meta.label}-delete",
            )
        setting_changed.connect(clear, weak=False, dispatch_uid="customers-junk-settings")

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class InventoryConfig(AppConfig):
    name = "inventory"
    verbose_name = gettext_lazy("Stock ledger")

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from inventory.selectors import availability_locations_changed
        from stores.models import Location

        def locations_changed(**kwargs):
            # Which locations serve which channel is cached with the availability answers.
            availability_locations_changed()

        post_save.connect(locations_changed, sender=Location, dispatch_uid="avail-locations-save")
        post_delete.connect(locations_changed, sender=Location, dispatch_uid="avail-locations-del")

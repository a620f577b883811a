from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = gettext_lazy("Orders and click & collect")

    def ready(self):
        from django.db import transaction
        from django.db.models.signals import post_delete, post_save

        from inventory.transfer_owners import TransferOwner, register_transfer_owner
        from orders import customer_hooks, payments_port, selectors
        from orders.models import RoutingRule
        from orders.services import transfers
        from payments.orders_port import register_order_reader
        from stores.models import Closure, Location, OpeningHours

        customer_hooks.register()
        _store_staff_land_on_their_board()
        register_transfer_owner(
            TransferOwner(
                owner_of=transfers.order_of_transfer,
                ship=transfers.order_transfer_ship_from_stock,
                receive=transfers.order_transfer_receive_from_stock,
            )
        )
        register_order_reader(
            payable_order=payments_port.payable_order,
            order_lines_refund=payments_port.order_lines_refund,
        )

        def reference_changed(**kwargs):
            # Now, for this process, and again once committed: another process that read the
            # reference data between the first bump and the commit cached the old rows.
            selectors.reference_data_changed()
            transaction.on_commit(selectors.reference_data_changed)

        for model in (Location, OpeningHours, Closure, RoutingRule):
            for signal in (post_save, post_delete):
                signal.connect(
                    reference_changed, sender=model, dispatch_uid=f"orders-ref-{model.__name__}"
                )


def _store_staff_land_on_their_board() -> None:
    """After login, store staff (assigned to stores, not seeing every location) land on their
    store's pickup board — a chooser when they work at several — instead of the model list."""
    from django.contrib import admin
    from django.shortcuts import redirect

    from stores.access import staff_location_ids

    site_index = admin.site.index
    if getattr(site_index, "lands_on_board", False):
        return

    def index(request, extra_context=None):
        if (
            request.user.has_perm("orders.view_order")
            and staff_location_ids(request.user)
            and not request.GET.get("all")
        ):
            return redirect("admin:orders_board")
        return site_index(request, extra_context)

    index.lands_on_board = True
    admin.site.index = index

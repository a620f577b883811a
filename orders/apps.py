from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders and click & collect"

    def ready(self):
        from orders import customer_hooks

        customer_hooks.register()

from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers (RCU)"

    def ready(self) -> None:
        from customers import contributions

        contributions.register()

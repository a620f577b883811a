"""The back-office groups of the issue: store associate, store manager, warehouse operator and
customer service. Their members are attached to locations with stores.StaffAssignment (customer
service sees every location)."""

from django.db import migrations

GROUPS = {
    "Store associate": [
        "orders.view_order",
        "orders.prepare_order",
        "orders.handover_order",
        "orders.reject_order_line",
        "orders.receive_order_transfer",
        "inventory.view_stockposition",
        "inventory.view_transfer",
        "stores.view_location",
    ],
    "Store manager": [
        "orders.view_order",
        "orders.prepare_order",
        "orders.handover_order",
        "orders.reject_order_line",
        "orders.receive_order_transfer",
        "orders.cancel_order",
        "orders.view_routingdecision",
        "orders.view_return",
        "inventory.view_stockposition",
        "inventory.view_stockmovement",
        "inventory.view_transfer",
        "inventory.view_reservation",
        "stores.view_location",
        "stores.view_staffassignment",
    ],
    "Warehouse operator": [
        "orders.view_order",
        "orders.prepare_order",
        "orders.reject_order_line",
        "orders.receive_order_transfer",
        "inventory.view_stockposition",
        "inventory.view_stockmovement",
        "inventory.view_transfer",
        "inventory.view_reservation",
        "stores.view_location",
    ],
    "Customer service": [
        "orders.view_order",
        "orders.cancel_order",
        "orders.view_all_locations",
        "orders.view_routingdecision",
        "orders.view_return",
        "customers.view_customer",
        "customers.change_customer",
        "inventory.view_stockposition",
        "stores.view_location",
    ],
}


def create_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after `migrate`; create them now so a fresh database gets
    # complete groups.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for dotted in codenames:
            app_label, codename = dotted.split(".")
            permission = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if permission is not None:
                group.permissions.add(permission)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(GROUPS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0002_order_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("inventory", "0001_initial"),
        ("customers", "0001_initial"),
        ("stores", "0002_staffassignment"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]

"""The staff groups get the stock writes and returns their job needs, now that the admin and
the API check them (inventory.access, orders.access): an associate receives deliveries, counts,
moves transfers, holds items for a customer and takes returns; adjusting stock (shrinkage) is
the manager's and the warehouse operator's."""

from django.db import migrations

GRANTS = {
    "Store associate": [
        "inventory.receive_stock",
        "inventory.count_stock",
        "inventory.move_stock",
        "inventory.add_reservation",
        "inventory.change_reservation",
        "orders.add_return",
    ],
    "Store manager": [
        "inventory.receive_stock",
        "inventory.adjust_stock",
        "inventory.count_stock",
        "inventory.move_stock",
        "inventory.add_reservation",
        "inventory.change_reservation",
        "orders.add_return",
    ],
    "Warehouse operator": [
        "inventory.receive_stock",
        "inventory.adjust_stock",
        "inventory.count_stock",
        "inventory.move_stock",
        "inventory.add_reservation",
        "inventory.change_reservation",
    ],
}


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, dotted_names in GRANTS.items():
        group = Group.objects.filter(name=name).first()
        if group is None:  # an operator renamed or removed it: leave their choice alone
            continue
        for dotted in dotted_names:
            app_label, codename = dotted.split(".")
            permission = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if permission is not None:
                group.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0009_line_status_fulfilled"),
        ("inventory", "0002_stock_write_permissions"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

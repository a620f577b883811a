"""Store staff see what they record: the stock counts of their locations and the returns they
take (an associate could take a return or count a shelf, and then not find it)."""

from django.db import migrations

GRANTS = {
    "Store associate": ["inventory.view_stockcount", "orders.view_return"],
    "Store manager": ["inventory.view_stockcount", "orders.view_return"],
    "Warehouse operator": ["inventory.view_stockcount"],
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
        ("orders", "0011_translatable_names"),
        ("inventory", "0003_translatable_names"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

"""Store managers see their store's KPIs (the dashboard, the reports API with a session)."""

from django.db import migrations

GRANTS = {"Store manager": ["analytics.view_kpis"]}


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
        ("analytics", "0001_stock_rollups"),
        ("orders", "0012_staff_groups_see_counts_and_returns"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

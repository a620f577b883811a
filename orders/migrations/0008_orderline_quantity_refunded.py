"""Per-line refunds are capped by the units not yet refunded. Until now only returns refunded
units (each returned unit was refunded), so the existing lines start with what they returned;
amount-only refunds made before were never tied to lines and stay so."""

from django.db import migrations, models


def refunded_from_returned(apps, schema_editor):
    OrderLine = apps.get_model("orders", "OrderLine")
    OrderLine.objects.filter(quantity_returned__gt=0).update(
        quantity_refunded=models.F("quantity_returned")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0001_initial"),
        ("orders", "0007_pending_notification"),
    ]

    operations = [
        migrations.AddField(
            model_name="orderline",
            name="quantity_refunded",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(refunded_from_returned, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="orderline",
            constraint=models.CheckConstraint(
                condition=models.Q(quantity_refunded__lte=models.F("quantity")),
                name="order_line_refunded_lte_quantity",
            ),
        ),
    ]

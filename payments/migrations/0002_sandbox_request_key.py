from django.db import migrations, models
from django.db.models import F


def fill_request_keys(apps, schema_editor):
    # Intents created before this migration were keyed by their merchant reference.
    apps.get_model("payments", "SandboxIntent").objects.update(request_key=F("merchant_reference"))


class Migration(migrations.Migration):
    dependencies = [("payments", "0001_stored_value_and_tenders")]

    operations = [
        migrations.AddField(
            model_name="sandboxintent",
            name="request_key",
            field=models.CharField(max_length=255, null=True),
        ),
        migrations.RunPython(fill_request_keys, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="sandboxintent",
            name="request_key",
            field=models.CharField(help_text="Idempotency key.", max_length=255, unique=True),
        ),
        migrations.AlterField(
            model_name="sandboxintent",
            name="merchant_reference",
            field=models.CharField(db_index=True, max_length=255),
        ),
    ]

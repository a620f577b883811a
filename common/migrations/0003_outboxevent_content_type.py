# The outbox's content type follows the model to `common`, so that staff permissions granted on
# it (and the admin's history) stay attached. The table keeps its name (see OutboxEvent.Meta).

from django.db import migrations


def content_type_to_common(apps, schema_editor):
    content_types = apps.get_model("contenttypes", "ContentType")
    old = content_types.objects.filter(app_label="integrations", model="outboxevent").first()
    if old is None:
        return  # a new database: the content type is created for `common` after migrating
    # One created for `common` meanwhile (and its permissions) gives way to the old one.
    content_types.objects.filter(app_label="common", model="outboxevent").delete()
    old.app_label = "common"
    old.save(update_fields=["app_label"])


def content_type_to_integrations(apps, schema_editor):
    content_types = apps.get_model("contenttypes", "ContentType")
    content_types.objects.filter(app_label="common", model="outboxevent").update(
        app_label="integrations"
    )


class Migration(migrations.Migration):

    dependencies = [
        ("common", "0002_outboxevent"),
        ("integrations", "0003_outbox_moves_to_common"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(content_type_to_common, content_type_to_integrations),
    ]

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("common", "0002_outboxevent"),
        ("integrations", "0003_outbox_moves_to_common"),
    ]

    operations = [
        migrations.AlterModelTable(name="outboxevent", table=None),
    ]

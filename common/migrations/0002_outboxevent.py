# The outbox moved from `integrations` to `common`, below the ledgers that write it. Its table
# is taken over as it is (state only), then renamed by 0003 once `integrations` points at it.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("common", "0001_initial"),
        ("integrations", "0002_posintegration_posevent_postill_storereceipt_and_more"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="OutboxEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("topic", models.CharField(db_index=True, max_length=60)),
                        ("payload", models.JSONField()),
                        ("occurred_at", models.DateTimeField()),
                        ("dispatched_at", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        "ordering": ["id"],
                        "db_table": "integrations_outboxevent",
                        "indexes": [
                            models.Index(
                                condition=models.Q(("dispatched_at__isnull", True)),
                                fields=["id"],
                                name="outbox_undispatched",
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]

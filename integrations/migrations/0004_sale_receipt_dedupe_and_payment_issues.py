"""One sale per (integration, store, till, receipt number). Sales already in the inbox get their
receipt number from their payload; when a till re-sent a receipt under a new event id before
this constraint existed, the first sale keeps the number and the later copies keep none (their
effects stay as they were applied: a back-office correction, listed by the migration's log)."""

import logging

from django.db import migrations, models
from django.db.models import Count, Min, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, Left

logger = logging.getLogger(__name__)


def receipt_numbers_backfill(apps, schema_editor):
    PosEvent = apps.get_model("integrations", "PosEvent")
    sales = PosEvent.objects.filter(event_type="sale", location__isnull=False).exclude(
        status="rejected"
    )
    sales.update(receipt_number=Coalesce(Left(KT("payload__data__receipt"), 60), Value("")))
    repeated = (
        sales.exclude(receipt_number="")
        .values("integration_id", "location_id", "till", "receipt_number")
        .annotate(copies=Count("pk"), first=Min("pk"))
        .filter(copies__gt=1)
    )
    for group in list(repeated):
        first = group.pop("first")
        group.pop("copies")
        later = sales.filter(**group).exclude(pk=first)
        copies = list(later.values_list("pk", flat=True))
        logger.warning("POS receipt %s re-sent as events %s", group, copies)
        later.update(receipt_number="")


class Migration(migrations.Migration):

    dependencies = [
        ('integrations', '0003_outbox_moves_to_common'),
        ('stores', '0003_delivery_promise'),
    ]

    operations = [
        migrations.AddField(
            model_name='posevent',
            name='receipt_number',
            field=models.CharField(blank=True, help_text="A sale's receipt number: one sale per store, till and receipt, whatever event id the till sends it under.", max_length=60),
        ),
        migrations.AddField(
            model_name='storereceipt',
            name='payment_issues',
            field=models.JSONField(blank=True, default=list, help_text='Tenders the till took that could not be applied (a gift card without the balance, an unknown card…): [{kind, reference, amount, code, message}].'),
        ),
        migrations.RunPython(receipt_numbers_backfill, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='posevent',
            constraint=models.UniqueConstraint(condition=models.Q(('event_type', 'sale'), models.Q(('receipt_number', ''), _negated=True)), fields=('integration', 'location', 'till', 'receipt_number'), name='uniq_pos_sale_receipt'),
        ),
    ]

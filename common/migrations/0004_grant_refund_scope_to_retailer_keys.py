"""Refunds got their own scope (`payments:refund`). Keys of the retailer's own channels (tills,
back office) that could refund before, through `payments:write`, keep that right; keys of the
online channels (web, app, marketplace, call centre) lose it: a storefront takes money, it does
not give it back. An operator grants it to such a key explicitly in the admin."""

from django.db import migrations

ONLINE_CHANNELS = {"web", "app", "marketplace", "call_centre"}


def grant_refund_to_retailer_keys(apps, schema_editor):
    ApiKey = apps.get_model("common", "ApiKey")
    for key in ApiKey.objects.exclude(channel__in=ONLINE_CHANNELS).only("id", "scopes"):
        scopes = list(key.scopes or [])
        if "payments:write" in scopes and "payments:refund" not in scopes:
            key.scopes = [*scopes, "payments:refund"]
            key.save(update_fields=["scopes"])


class Migration(migrations.Migration):
    dependencies = [("common", "0003_outboxevent_content_type")]

    operations = [
        migrations.RunPython(grant_refund_to_retailer_keys, migrations.RunPython.noop),
    ]

import importlib

from django.conf import settings


def test_every_beat_entry_names_a_task_that_exists():
    # A typo here would mean a timed job (expiries, retries, reconciliations) silently never runs.
    # (Checked on the modules, not through Celery's registry, which other tests reconfigure.)
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        module, function = entry["task"].rsplit(".", 1)
        assert hasattr(importlib.import_module(module), function), name

import importlib

from django.conf import settings


def test_every_beat_entry_names_a_real_celery_task():
    # A typo here would mean a timed job (expiries, retries, reconciliations) silently never runs.
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        module, function = entry["task"].rsplit(".", 1)
        task = getattr(importlib.import_module(module), function, None)
        assert task is not None and hasattr(task, "delay"), name
        assert task.name == entry["task"], name

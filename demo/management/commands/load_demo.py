from django.core.management.base import BaseCommand

from demo import data as demo
from demo.history import history_load, history_start


class Command(BaseCommand):
    help = (
        "Load the demo data set (once): locations, SKUs, stock, API keys, staff logins; with "
        "--history-weeks, weeks of orders behind the KPI dashboard (made by the services)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--history-weeks", type=int, default=0)

    def handle(self, *args, history_weeks: int = 0, **options):
        stocked_at = history_start(weeks=history_weeks) if history_weeks > 0 else None
        if not demo.load(stocked_at=stocked_at):
            self.stdout.write("Demo data already present.")
            return
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        if history_weeks > 0:
            placed = history_load(weeks=history_weeks, progress=self._progress)
            self.stdout.write(f"\n{placed} orders of history over {history_weeks} weeks.")

    def _progress(self, done: int, total: int) -> None:
        filled = round(30 * done / total)
        self.stdout.write(f"\rHistory [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} days",
                          ending="")  # fmt: skip
        self.stdout.flush()

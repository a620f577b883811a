from django.core.management.base import BaseCommand

from analytics.services import stock_days_backfill


class Command(BaseCommand):
    help = "Rebuild the nightly stock rollups of the last N days from the ledger."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=28)

    def handle(self, *args, days, **options):
        stock_days_backfill(days=days)
        self.stdout.write(f"{days} day(s) of stock rollups written.")

"""Record merge suggestions for duplicate candidates (rules in docs/customers.md). Run nightly."""

from django.core.management.base import BaseCommand

from customers.services import duplicate_suggestions_refresh


class Command(BaseCommand):
    help = "Record a merge suggestion for each new pair of probable duplicates."

    def handle(self, *args, **options):
        created = duplicate_suggestions_refresh()
        self.stdout.write(f"{created} new merge suggestion(s).")

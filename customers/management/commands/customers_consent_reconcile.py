"""Prove that the current consent state (Consent) equals the append-only log (ConsentEvent)."""

from django.core.management.base import BaseCommand, CommandError

from customers.selectors import consent_cache_mismatches
from customers.services import consent_cache_rebuild


class Command(BaseCommand):
    help = "Compare the consent state with the log; --repair rebuilds it from the log."

    def add_arguments(self, parser):
        parser.add_argument(
            "--repair", action="store_true", help="Rebuild the state of the customers that differ."
        )

    def handle(self, *args, repair: bool = False, **options):
        mismatches = consent_cache_mismatches()
        if not mismatches:
            self.stdout.write("Consent state equals the log.")
            return
        for mismatch in mismatches:
            self.stdout.write(f"mismatch {mismatch}")
        if repair:
            consent_cache_rebuild(customer_ids={m["key"][0] for m in mismatches})
            self.stdout.write(f"Rebuilt {len({m['key'][0] for m in mismatches})} customer(s).")
            return
        raise CommandError(f"{len(mismatches)} consent state row(s) differ from the log.")

from django.core.management.base import BaseCommand

from demo import data as demo


class Command(BaseCommand):
    help = "Load the demo data set (once): locations, SKUs, stock, API keys, a staff login."

    def handle(self, *args, **options):
        if demo.load():
            self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        else:
            self.stdout.write("Demo data already present.")

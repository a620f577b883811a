from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Sum

from inventory.models import StockMovement, StockPosition
from inventory.selectors import availability_changed, ledger_mismatches


class Command(BaseCommand):
    help = (
        "Prove that every stock position equals the sum of its movements. "
        "Exit status 1 when they differ; --rebuild rewrites the positions from the ledger."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="Recompute every position from its movements (the ledger wins).",
        )

    def handle(self, *args, rebuild: bool = False, **options):
        mismatches = ledger_mismatches()
        total = StockPosition.objects.count()
        if not mismatches:
            self.stdout.write(
                self.style.SUCCESS(
                    f"OK: {total} positions, every one equal to the sum of its movements."
                )
            )
            return
        for row in mismatches[:100]:
            self.stdout.write(
                f"position {row['position']}: {row['bucket']} is {row['projection']}, "
                f"ledger says {row['ledger']}"
            )
        if not rebuild:
            raise CommandError(f"{len(mismatches)} mismatches (run with --rebuild to repair).")
        position_ids = sorted({row["position"] for row in mismatches})
        with transaction.atomic():
            # Repair tool, the one writer besides stock_apply: lock, then set each position to
            # the sum of its own movements.
            list(
                StockPosition.objects.select_for_update().filter(pk__in=position_ids).order_by("pk")
            )
            sums = {
                row["position_id"]: row
                for row in StockMovement.objects.filter(position_id__in=position_ids)
                .values("position_id")
                .annotate(
                    on_hand=Sum("on_hand_delta"),
                    reserved=Sum("reserved_delta"),
                    unsellable=Sum("unsellable_delta"),
                    incoming=Sum("incoming_delta"),
                )
            }
            for position_id in position_ids:
                row = sums.get(position_id, {})
                StockPosition.objects.filter(pk=position_id).update(
                    on_hand=row.get("on_hand") or 0,
                    reserved=row.get("reserved") or 0,
                    unsellable=row.get("unsellable") or 0,
                    incoming=row.get("incoming") or 0,
                )
        availability_changed(
            StockPosition.objects.filter(pk__in=position_ids).values_list("sku_id", flat=True)
        )
        self.stdout.write(
            self.style.WARNING(f"Rebuilt {len(position_ids)} positions from the ledger.")
        )

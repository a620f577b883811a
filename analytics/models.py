"""Nightly rollups of the stock ledger (analytics.services.stock_day_take, Celery beat): the
stock KPIs read a few rows per location and day instead of replaying the ledger."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class StockDay(models.Model):
    """One location's shelf at the end of one day (report clock): the SKUs it stocks and how
    many of them it could sell — the stock-out rate is 1 − sellable / listed over the days."""

    day = models.DateField(verbose_name=_("day"))
    location = models.ForeignKey(
        "stores.Location", on_delete=models.CASCADE, related_name="+", verbose_name=_("location")
    )
    skus_listed = models.PositiveIntegerField(
        verbose_name=_("SKUs listed"), help_text=_("SKUs with any movement there so far.")
    )
    skus_sellable = models.PositiveIntegerField(
        verbose_name=_("SKUs sellable"), help_text=_("Of those, SKUs with a unit to sell.")
    )

    class Meta:
        verbose_name = _("stock day")
        verbose_name_plural = _("stock days")
        constraints = [
            models.UniqueConstraint(fields=["day", "location"], name="uniq_stock_day_location")
        ]
        # Who may open the KPI dashboard and call the reports API with a staff session.
        permissions = [("view_kpis", _("See the omnichannel KPIs"))]

    def __str__(self) -> str:
        return f"{self.location_id} {self.day}: {self.skus_sellable}/{self.skus_listed}"


class CatalogueDay(models.Model):
    """The chain at the end of one day: SKUs sellable online counting the warehouses only, and
    counting every location that serves online orders (unified stock)."""

    day = models.DateField(unique=True, verbose_name=_("day"))
    skus_active = models.PositiveIntegerField(verbose_name=_("active SKUs"))
    sellable_warehouse_only = models.PositiveIntegerField(
        verbose_name=_("sellable online from the warehouses")
    )
    sellable_anywhere = models.PositiveIntegerField(
        verbose_name=_("sellable online from any location")
    )

    class Meta:
        verbose_name = _("catalogue day")
        verbose_name_plural = _("catalogue days")

    def __str__(self) -> str:
        return f"{self.day}: {self.sellable_warehouse_only} → {self.sellable_anywhere}"

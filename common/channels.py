from django.db import models
from django.utils.translation import gettext_lazy as _


class SalesChannel(models.TextChoices):
    """Where a request comes from.

    Online channels respect the safety stock; the store till does not.
    """

    WEB = "web", _("Web shop")
    APP = "app", _("Mobile app")
    MARKETPLACE = "marketplace", _("Marketplace")
    CALL_CENTRE = "call_centre", _("Call centre")
    STORE = "store", _("Store till (POS)")
    BACKOFFICE = "backoffice", _("Back office (staff)")


ONLINE_CHANNELS = frozenset(
    {SalesChannel.WEB, SalesChannel.APP, SalesChannel.MARKETPLACE, SalesChannel.CALL_CENTRE}
)


def is_online(channel: str) -> bool:
    return channel in ONLINE_CHANNELS

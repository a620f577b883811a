from django.db import models


class SalesChannel(models.TextChoices):
    """Where a request comes from.

    Online channels respect the safety stock; the store till does not.
    """

    WEB = "web", "Web shop"
    APP = "app", "Mobile app"
    MARKETPLACE = "marketplace", "Marketplace"
    CALL_CENTRE = "call_centre", "Call centre"
    STORE = "store", "Store till (POS)"
    BACKOFFICE = "backoffice", "Back office (staff)"


ONLINE_CHANNELS = frozenset(
    {SalesChannel.WEB, SalesChannel.APP, SalesChannel.MARKETPLACE, SalesChannel.CALL_CENTRE}
)


def is_online(channel: str) -> bool:
    return channel in ONLINE_CHANNELS

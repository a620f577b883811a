from django.utils.translation import gettext_lazy

from common.exceptions import Conflict, DomainError, IllegalTransition, InvalidInput, NotFound


class InsufficientStock(Conflict):
    code = "insufficient_stock"
    default_message = gettext_lazy("Not enough stock available.")


class InvalidQuantity(InvalidInput):
    code = "invalid_quantity"
    default_message = gettext_lazy("Quantities are whole numbers greater than zero.")


class UnknownSku(NotFound):
    code = "unknown_sku"
    default_message = gettext_lazy("Unknown SKU.")


class UnknownLocation(NotFound):
    code = "unknown_location"
    default_message = gettext_lazy("Unknown location.")


class LocationInactive(Conflict):
    code = "location_inactive"
    default_message = gettext_lazy("This location is inactive.")


class ReservationNotOpen(IllegalTransition):
    code = "reservation_not_open"
    default_message = gettext_lazy("This reservation has nothing left to release or commit.")


class TransferStateError(IllegalTransition):
    code = "transfer_state"


__all__ = [
    "DomainError",
    "InsufficientStock",
    "InvalidQuantity",
    "UnknownSku",
    "UnknownLocation",
    "LocationInactive",
    "ReservationNotOpen",
    "TransferStateError",
]

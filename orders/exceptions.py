from django.utils.translation import gettext, gettext_lazy

from common.exceptions import Conflict, DomainError, InvalidInput, NotFound


class OrderNotFound(NotFound):
    code = "order_not_found"
    default_message = gettext_lazy("No such order.")

    @classmethod
    def of_reference(cls, reference: str) -> "OrderNotFound":
        return cls(
            gettext("No order %(reference)s.") % {"reference": repr(reference[:40])},
            details={"reference": [reference[:40]]},
        )


class OutOfStock(Conflict):
    """No location (nor combination of locations) can serve these lines: nothing was reserved."""

    code = "out_of_stock"
    default_message = gettext_lazy("Some lines cannot be served: nothing was reserved.")


class PickupNotOffered(InvalidInput):
    code = "pickup_not_offered"
    default_message = gettext_lazy("This store does not offer click & collect.")


class StoreInactive(Conflict):
    code = "store_inactive"
    default_message = gettext_lazy("This store is inactive.")


class StoreClosed(Conflict):
    code = "store_closed"
    default_message = gettext_lazy(
        "This store has no opening in the coming weeks: no pickup can be promised."
    )


class StoreAtCapacity(Conflict):
    code = "store_at_capacity"
    default_message = gettext_lazy("This store has reached the number of orders it prepares today.")


class WrongPickupCode(InvalidInput):
    code = "wrong_pickup_code"
    default_message = gettext_lazy("The pickup code does not match this order.")


class PickupCodeLocked(DomainError):
    code = "pickup_code_locked"
    http_status = 429
    default_message = gettext_lazy("Too many wrong pickup codes for this order; try again later.")


class WaitingForTransfer(Conflict):
    code = "waiting_for_transfer"
    default_message = gettext_lazy("Some lines have not arrived at the pickup store yet.")


class LineRefundExceedsQuantity(Conflict):
    """A per-line refund asked for more units than the line has left to refund (earlier
    refunds and returns counted): nothing was refunded."""

    code = "refund_exceeds_line"
    default_message = gettext_lazy("This line has fewer units left to refund.")


class PaymentDue(Conflict):
    """A hand-over while money is still due on the order: nothing was handed over (take the
    payment at the till with the hand-over, or collect fewer units)."""

    code = "payment_due"
    default_message = gettext_lazy(
        "Money is still due on this order: take the payment with the hand-over."
    )

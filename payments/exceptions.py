"""Payment errors. Every one of them means: no money moved."""

from django.utils.translation import gettext_lazy

from common.exceptions import Conflict, DomainError, InvalidInput, NotFound


class InvalidAmount(InvalidInput):
    code = "invalid_amount"
    default_message = gettext_lazy("The amount is not valid.")


class InsufficientBalance(Conflict):
    code = "insufficient_balance"
    default_message = gettext_lazy("The balance available is lower than the amount asked.")


class GiftCardNotFound(NotFound):
    code = "gift_card_not_found"
    default_message = gettext_lazy("No gift card has this code.")


class GiftCardInvalidCode(InvalidInput):
    code = "gift_card_code_invalid"
    default_message = gettext_lazy(
        "This is not a valid gift card code (check the characters typed)."
    )


class GiftCardBlocked(Conflict):
    code = "gift_card_blocked"
    default_message = gettext_lazy("This gift card is blocked.")


class GiftCardExpired(Conflict):
    code = "gift_card_expired"
    default_message = gettext_lazy("This gift card has expired.")


class WalletNotFound(NotFound):
    code = "wallet_not_found"
    default_message = gettext_lazy("This customer has no store credit in this currency.")


class HoldNotOpen(Conflict):
    code = "hold_not_open"
    default_message = gettext_lazy("This hold was already captured, released or expired.")


class RefundExceedsCaptured(Conflict):
    code = "refund_exceeds_captured"
    default_message = gettext_lazy("A refund cannot exceed what was captured.")


class CaptureExceedsAuthorised(Conflict):
    code = "capture_exceeds_authorised"
    default_message = gettext_lazy("A capture cannot exceed what was authorised or held.")


class TenderNotFound(NotFound):
    code = "tender_not_found"
    default_message = gettext_lazy("No such tender.")


class ProviderUnavailable(DomainError):
    code = "payment_provider_unavailable"
    http_status = 502
    default_message = gettext_lazy(
        "The payment provider could not be reached; nothing was charged."
    )


class UnknownProvider(NotFound):
    code = "unknown_payment_provider"
    default_message = gettext_lazy("No payment provider has this name.")


class OrderNotPayable(NotFound):
    code = "order_not_payable"
    default_message = gettext_lazy("This order cannot be paid.")


class OrderClosed(Conflict):
    code = "order_closed"
    default_message = gettext_lazy("This order is closed; it takes no new tender.")


class TenderExceedsDue(Conflict):
    code = "tender_exceeds_due"
    default_message = gettext_lazy("The tender is more than what is still due on the order.")


class TenderStateError(Conflict):
    code = "tender_state"
    default_message = gettext_lazy("The tender is not in a state that allows this.")


class HoldNotFound(NotFound):
    code = "hold_not_found"
    default_message = gettext_lazy("No such hold.")

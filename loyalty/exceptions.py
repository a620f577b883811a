"""Loyalty and offer errors. Every one of them means: no point and no code was consumed."""

from django.utils.translation import gettext_lazy

from common.exceptions import Conflict, DomainError, InvalidInput, NotFound


class InvalidPoints(InvalidInput):
    code = "invalid_points"
    default_message = gettext_lazy("Points must be a whole number greater than zero.")


class NoLoyaltyAccount(NotFound):
    code = "no_loyalty_account"
    default_message = gettext_lazy("This customer has no loyalty account.")


class InsufficientPoints(Conflict):
    code = "insufficient_points"
    default_message = gettext_lazy(
        "Fewer points are spendable than asked (pending points cannot be spent yet)."
    )


class SpendNotFound(NotFound):
    code = "points_hold_not_found"
    default_message = gettext_lazy("No points hold has this id.")


class SpendNotHeld(Conflict):
    code = "points_hold_not_open"
    default_message = gettext_lazy(
        "This points hold is no longer open (captured, released or expired)."
    )


class RefundExceedsSpent(Conflict):
    code = "points_refund_exceeds_spent"
    default_message = gettext_lazy("More points cannot be given back than the spend captured.")


class ReturnExceedsPurchase(InvalidInput):
    code = "return_exceeds_purchase"
    default_message = gettext_lazy("More units are returned than this purchase earned points on.")


class CouponNotFound(NotFound):
    code = "coupon_not_found"
    default_message = gettext_lazy("No offer has this code.")


class CouponExpired(DomainError):
    code = "coupon_expired"
    http_status = 410
    default_message = gettext_lazy("This offer is not valid now.")


class CouponNotOwned(DomainError):
    code = "coupon_not_owned"
    http_status = 403
    default_message = gettext_lazy("This code belongs to another customer.")


class CouponChannelNotAllowed(DomainError):
    code = "coupon_channel_not_allowed"
    http_status = 403
    default_message = gettext_lazy("This offer cannot be used on this channel.")


class BasketNotEligible(DomainError):
    code = "basket_not_eligible"
    http_status = 422
    default_message = gettext_lazy("The basket does not meet the offer's conditions.")


class CouponAlreadyUsed(Conflict):
    code = "coupon_already_used"
    default_message = gettext_lazy("This code was already redeemed.")


class CouponHeldElsewhere(Conflict):
    code = "coupon_held_elsewhere"
    default_message = gettext_lazy("This code is applied to another cart right now.")


class RewardUnavailable(NotFound):
    code = "reward_unavailable"
    default_message = gettext_lazy("No active reward has this code on this channel.")


class CampaignNotFound(NotFound):
    code = "campaign_not_found"
    default_message = gettext_lazy("No campaign has this id.")


class CampaignOver(CouponExpired):
    code = "campaign_over"
    default_message = gettext_lazy("The campaign is over: no code can be issued for it.")


class CampaignPeriodInvalid(InvalidInput):
    code = "campaign_period_invalid"
    default_message = gettext_lazy("The campaign must end after it starts, and in the future.")


class CampaignDiscountInvalid(InvalidInput):
    code = "campaign_discount_invalid"
    default_message = gettext_lazy("The discount or the minimum basket is out of range.")


class CampaignTargetInvalid(InvalidInput):
    code = "campaign_target_invalid"
    default_message = gettext_lazy(
        "A list campaign names its customers; a segment campaign names none."
    )


class TierNotFound(NotFound):
    code = "unknown_tier"
    default_message = gettext_lazy("No tier has this code.")

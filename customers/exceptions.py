"""Customer domain errors (mapped to JSON by common.api.exception_handler)."""

from django.utils.translation import gettext_lazy

from common.exceptions import Conflict, DomainError, InvalidInput, NotFound


class InvalidIdentifier(InvalidInput):
    code = "invalid_identifier"
    default_message = gettext_lazy("This identifier is not valid.")


class NoUsableIdentifier(InvalidInput):
    code = "no_usable_identifier"
    default_message = gettext_lazy(
        "Send at least one real identifier (placeholder values are ignored)."
    )


class IdentifierTaken(Conflict):
    code = "identifier_taken"
    default_message = gettext_lazy("This identifier already belongs to another customer.")


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    default_message = gettext_lazy("No customer with this reference.")


class CustomerErased(DomainError):
    code = "customer_erased"
    http_status = 410
    default_message = gettext_lazy("This customer was erased at their request.")


class MergeRefused(Conflict):
    code = "merge_refused"
    default_message = gettext_lazy("These two customers cannot be merged.")


class MergeBlocked(Conflict):
    code = "merge_blocked"
    default_message = gettext_lazy(
        "These records hold data that cannot belong to one person automatically; "
        "a staff member may force the merge with a reason."
    )


class UnmergeRefused(Conflict):
    code = "unmerge_refused"
    default_message = gettext_lazy("This merge cannot be undone.")


class ErasureBlocked(Conflict):
    code = "erasure_blocked"
    default_message = gettext_lazy("This customer cannot be erased yet.")


class MergeNotFound(NotFound):
    code = "merge_not_found"
    default_message = gettext_lazy("No merge has this id.")

"""Writes about store staff that are not stock or orders: their own back-office preferences."""

from django.conf import settings

from common.exceptions import InvalidInput
from stores.models import StaffPreference


def staff_language_set(*, user, language: str) -> StaffPreference:
    """Remember the language a staff member reads the back office in ('' = her browser's)."""
    if language and language not in dict(settings.LANGUAGES):
        raise InvalidInput(
            f"Unknown language {language!r}.",
            details={"language": [f"one of {[code for code, _ in settings.LANGUAGES]}"]},
        )
    preference, _created = StaffPreference.objects.update_or_create(
        user=user, defaults={"language": language}
    )
    return preference

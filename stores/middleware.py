"""The back office in the language the staff member chose (stores.StaffPreference), over the
browser's Accept-Language that django's LocaleMiddleware follows otherwise."""

from django.utils import translation

from stores.models import StaffPreference


class StaffLanguageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = _chosen_language(request)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)


def _chosen_language(request) -> str:
    """'' for anyone but a signed-in staff member with a choice (one indexed read)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return ""
    return (
        StaffPreference.objects.filter(user=user).values_list("language", flat=True).first() or ""
    )

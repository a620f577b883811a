"""The back office's language switch: Django's set_language (the cookie, for this browser),
and for a signed-in staff member her remembered choice (every device she logs in on)."""

from contextlib import suppress

from django.conf import settings
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

from common.exceptions import InvalidInput
from stores import services


@require_POST
def staff_language_switch(request):
    response = set_language(request)
    if not request.POST.get("language"):  # back to the browser's language
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
    if request.user.is_authenticated and request.user.is_staff:
        # An unknown language: set_language ignored it too, the page comes back unchanged.
        with suppress(InvalidInput):
            services.staff_language_set(user=request.user, language=request.POST.get("language"))
    return response

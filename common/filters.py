"""django-filter pieces shared by the list endpoints."""

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from common.serializers import datetime_in_range


class _BoundedIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        try:
            parsed = super().to_python(value)
        except OverflowError:  # an offset that moves it out of datetime's range
            raise forms.ValidationError("Give a date between 1970 and 2100.") from None
        if parsed is not None and not datetime_in_range(parsed):
            raise forms.ValidationError("Give a date between 1970 and 2100.")
        return parsed


class BoundedIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time filter that refuses dates outside 1970–2100 with a 400."""

    field_class = _BoundedIsoDateTimeField

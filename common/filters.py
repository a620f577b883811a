"""django-filter pieces shared by the list endpoints."""

import django_filters
from django import forms
from django.db import models
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


class _StrictBooleanField(forms.Field):
    """true/false (or 1/0); anything else is a 400, never silently "no filter"."""

    TRUE, FALSE = {"true", "1"}, {"false", "0"}

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise forms.ValidationError("Give true or false.")


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = _StrictBooleanField


class StrictFilterSet(django_filters.FilterSet):
    """The FilterSet of every list endpoint: boolean fields refuse values other than true and
    false (`?ships_from_location=null` used to return everything)."""

    FILTER_DEFAULTS = {
        **django_filters.FilterSet.FILTER_DEFAULTS,
        models.BooleanField: {"filter_class": StrictBooleanFilter},
    }

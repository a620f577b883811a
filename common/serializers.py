from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers


class QuantityField(serializers.IntegerField):
    """A whole number of units sent as a JSON integer: no strings, floats or booleans."""

    default_error_messages = {
        "strict": "Send a whole number of units as a JSON integer.",
    }

    def __init__(self, *, allow_zero: bool = False, signed: bool = False, **kwargs):
        maximum = settings.OMNISTOCK["MAX_QUANTITY_PER_LINE"]
        kwargs.setdefault("max_value", maximum)
        kwargs.setdefault("min_value", -maximum if signed else (0 if allow_zero else 1))
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("strict")
        return super().to_internal_value(data)


class CodeField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)


class ErrorSerializer(serializers.Serializer):
    """The shape of every error response."""

    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


# Dates a client may send: anything outside is a typo or a probe (year 0996 with a +20:04 offset
# reached a 500; year 9999 held stock for ever).
EARLIEST_INPUT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INPUT = datetime(2100, 1, 1, tzinfo=UTC)


def datetime_in_range(value: datetime) -> bool:
    return EARLIEST_INPUT <= value < LATEST_INPUT


class InputDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date and time between 1970 and 2100 (a time without offset is UTC)."""

    default_error_messages = {"range": "Give a date between 1970 and 2100."}

    def to_internal_value(self, value):
        parsed = super().to_internal_value(value)
        if not datetime_in_range(parsed):
            self.fail("range")
        return parsed

    def enforce_timezone(self, value):
        try:
            return super().enforce_timezone(value)
        except OverflowError:  # the offset moves it out of datetime's range
            self.fail("range")


class AwareDateTimeField(InputDateTimeField):
    """The same, with its UTC offset required: a time without one is ambiguous (whose
    midnight?), so it is refused rather than read as UTC."""

    default_error_messages = {"naive": "Give the UTC offset, e.g. 2026-03-01T09:00:00+01:00."}

    def enforce_timezone(self, value):
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)

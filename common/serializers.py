from django.conf import settings
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

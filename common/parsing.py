"""Strict JSON: what a request body may hold, checked before anything reads it.

Python's parser takes more than JSON and more than the database stores, and each gap was a 500:
NaN and Infinity (not JSON), numbers that overflow to infinity (`1e400`), a body nested 100,000
deep (RecursionError), "\\u0000" (PostgreSQL text cannot hold NUL) and lone surrogates
("\\ud800": not encodable in UTF-8, so not storable). All are refused here as malformed.
"""

import json
import math

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Deeper than any body of this API needs (an order is 4 levels deep, a POS batch 6).
MAX_JSON_DEPTH = 32


class MalformedJson(ValueError):
    """The body is not JSON this service accepts; the message says why."""


def _refuse_constant(name: str):
    raise MalformedJson(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJson(f"the number {text[:20]} is out of range")
    return value


def _check(payload) -> None:
    """Depth, NUL characters and lone surrogates, without recursion (a deep body must not be
    able to exhaust the stack here either)."""
    stack = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise MalformedJson(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key)
                stack.append((item, depth + 1))
        else:
            stack.extend((item, depth + 1) for item in value)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise MalformedJson("NUL characters are not accepted")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedJson("lone surrogates (\\ud800-\\udfff) are not text") from None


def strict_json_loads(raw: bytes | str):
    """The parsed body, or MalformedJson."""
    try:
        payload = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise MalformedJson(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except MalformedJson:
        raise
    except ValueError as exc:  # JSONDecodeError, invalid UTF-8, an integer of 4,300+ digits
        raise MalformedJson(str(exc)) from None
    _check(payload)
    return payload


class StrictJSONParser(JSONParser):
    """DRF's JSON parser with the rules above."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream else b""
        try:
            return strict_json_loads(raw)
        except MalformedJson as exc:
            raise ParseError(f"JSON parse error - {exc}") from None

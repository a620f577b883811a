"""Identifier parsing: normalisation, validation, placeholder ("junk") values, customer numbers.

Pure functions except `junk_patterns`, which reads the extra patterns and store phones from the
database. The admin search and the resolve selector normalise exactly like identify-or-create,
so what was stored is what is found.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import unicodedata
from dataclasses import dataclass

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from customers.exceptions import InvalidIdentifier
from customers.models import IdentifierKind, JunkIdentifierPattern
from stores.models import Location

# Matching priority, strongest first: a loyalty card is scanned from the person's own card; an
# external id is an account they logged into; an email is personal but sometimes shared; a phone
# is often a household landline.
KIND_PRIORITY: dict[str, int] = {
    IdentifierKind.LOYALTY_CARD: 0,
    IdentifierKind.EXTERNAL: 1,
    IdentifierKind.EMAIL: 2,
    IdentifierKind.PHONE: 3,
}

# Values tills and forms type by default. Regular expressions, full match, case-insensitive,
# tried on the trimmed raw value and on the normalised value. "*" applies to every kind.
# Override with settings.CUSTOMERS_JUNK_VALUES (same shape); add with
# settings.CUSTOMERS_EXTRA_JUNK_VALUES or JunkIdentifierPattern rows (admin).
DEFAULT_JUNK_VALUES: dict[str, list[str]] = {
    "*": [
        r"",
        r"null",
        r"none",
        r"nil",
        r"n/?a",
        r"-1",
        r"0+",
        r"x+",
        r"-+",
        r"\.+",
        r"test",
        r"unknown",
        r"inconnu",
    ],
    IdentifierKind.EMAIL: [
        r"no-?e?mail@.*",
        r"(pas|sans|aucun)-?e?mail@.*",
        r"(none|null|test|nomail|no|x+|a+)@.*",
        r".*@(example\.(com|org|net|fr)|test\.(com|fr)|noemail\.[a-z]+|nomail\.[a-z]+)",
    ],
    IdentifierKind.PHONE: [
        # national significant number made of one repeated digit, or a keyboard run
        r"\+\d{1,3}(\d)\1{6,}",
        r"\+33(0?123456789|0?600000000)",
        r"(0|\+33)?1234567890?",
    ],
    IdentifierKind.LOYALTY_CARD: [r"(\d)\1+", r"1234567890?"],
    IdentifierKind.EXTERNAL: [],
}

_CARD_RE = re.compile(r"^[A-Z0-9]{4,32}$")
_SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,39}$")
_email_validator = EmailValidator()


@dataclass(frozen=True)
class Identifier:
    """A parsed identifier: what is stored and looked up."""

    kind: str
    source: str
    value: str  # normalised
    raw: str

    @property
    def priority(self) -> int:
        return KIND_PRIORITY[self.kind]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.source, self.value)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "source": self.source, "value": self.value}


def default_region() -> str:
    return getattr(settings, "CUSTOMERS_DEFAULT_PHONE_REGION", "FR")


def normalise_email(raw: str) -> str:
    value = raw.strip().lower()
    try:
        _email_validator(value)
    except ValidationError:
        raise InvalidIdentifier(
            f"{raw!r} is not a valid email address.", details={"email": ["invalid"]}
        ) from None
    return value


def normalise_phone(raw: str, *, region: str | None = None) -> str:
    """E.164. National forms are read in `region` (France by default: 06 12 34 56 78)."""
    try:
        number = phonenumbers.parse(raw.strip(), region or default_region())
    except phonenumbers.NumberParseException:
        raise InvalidIdentifier(
            f"{raw!r} is not a phone number.", details={"phone": ["invalid"]}
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifier(
            f"{raw!r} is not a valid phone number.", details={"phone": ["invalid"]}
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_card(raw: str) -> str:
    value = re.sub(r"[\s.-]", "", raw).upper()
    if not _CARD_RE.match(value):
        raise InvalidIdentifier(
            f"{raw!r} is not a loyalty card number (4–32 letters or digits).",
            details={"loyalty_card": ["invalid"]},
        )
    return value


def normalise_external(raw: str, source: str) -> tuple[str, str]:
    source = (source or "").strip().lower()
    if not _SOURCE_RE.match(source):
        raise InvalidIdentifier(
            "An external id needs a source such as 'ecommerce', 'crm' or 'pos:PARIS01'.",
            details={"source": ["invalid"]},
        )
    value = raw.strip()
    if not value or len(value) > 128:
        raise InvalidIdentifier(
            "An external id has 1 to 128 characters.", details={"external": ["invalid"]}
        )
    return source, value


def parse_identifier(
    kind: str, raw: str, *, source: str = "", region: str | None = None
) -> Identifier:
    """Normalise and validate one identifier; raises InvalidIdentifier. Junk is NOT checked here."""
    if not isinstance(raw, str) or len(raw) > 254:
        raise InvalidIdentifier(
            "An identifier is a string of at most 254 characters.", details={kind: ["invalid"]}
        )
    if kind == IdentifierKind.EMAIL:
        return Identifier(kind, "", normalise_email(raw), raw.strip())
    if kind == IdentifierKind.PHONE:
        return Identifier(kind, "", normalise_phone(raw, region=region), raw.strip())
    if kind == IdentifierKind.LOYALTY_CARD:
        return Identifier(kind, "", normalise_card(raw), raw.strip())
    if kind == IdentifierKind.EXTERNAL:
        source, value = normalise_external(raw, source)
        return Identifier(kind, source, value, raw.strip())
    raise InvalidIdentifier(f"Unknown identifier kind {kind!r}.", details={"kind": ["invalid"]})


# ---- junk ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JunkRules:
    patterns: dict[str, list[re.Pattern]]
    store_phones: frozenset[str]

    def is_junk(self, kind: str, raw: str, normalised: str | None = None) -> bool:
        candidates = {raw.strip().lower()}
        if normalised is not None:
            candidates.add(normalised.lower())
            if kind == IdentifierKind.PHONE and normalised in self.store_phones:
                return True
        rules = self.patterns.get("*", []) + self.patterns.get(kind, [])
        return any(rule.fullmatch(value) for rule in rules for value in candidates)


def _compile(mapping: dict[str, list[str]], into: dict[str, list[re.Pattern]]) -> None:
    for kind, patterns in mapping.items():
        into.setdefault(kind or "*", []).extend(re.compile(p, re.IGNORECASE) for p in patterns)


_junk_cache: tuple[float, JunkRules] | None = None
_junk_lock = threading.Lock()


def junk_rules_clear() -> None:
    """Forget the cached rules (on a change of a junk pattern or a location, or of settings)."""
    global _junk_cache
    _junk_cache = None


def junk_rules() -> JunkRules:
    """The placeholder values in force: settings (or defaults), extra settings, admin patterns,
    and every location's own phone number (a till clerk types the store's number).

    Cached in the process for settings.CUSTOMERS_JUNK_CACHE_SECONDS (default 60) so that a resolve
    is one query; a change saved in this process clears the cache at once, other processes see it
    within that delay."""
    global _junk_cache
    ttl = getattr(settings, "CUSTOMERS_JUNK_CACHE_SECONDS", 60)
    cached = _junk_cache
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    with _junk_lock:
        rules = _junk_rules_load()
        if ttl > 0:
            _junk_cache = (time.monotonic() + ttl, rules)
    return rules


def _junk_rules_load() -> JunkRules:

    patterns: dict[str, list[re.Pattern]] = {}
    _compile(getattr(settings, "CUSTOMERS_JUNK_VALUES", DEFAULT_JUNK_VALUES), patterns)
    _compile(getattr(settings, "CUSTOMERS_EXTRA_JUNK_VALUES", {}), patterns)
    extra: dict[str, list[str]] = {}
    for kind, pattern in JunkIdentifierPattern.objects.filter(is_active=True).values_list(
        "kind", "pattern"
    ):
        extra.setdefault(kind or "*", []).append(pattern)
    _compile(extra, patterns)
    store_phones = set()
    for phone in Location.objects.exclude(phone="").values_list("phone", flat=True):
        try:
            store_phones.add(normalise_phone(phone))
        except InvalidIdentifier:
            continue
    return JunkRules(patterns=patterns, store_phones=frozenset(store_phones))


# ---- names and customer numbers --------------------------------------------------------------


def name_key(first_name: str, last_name: str) -> str:
    text = f"{first_name} {last_name}".strip().lower()
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


def luhn_check_digit(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:  # doubled: the digit next to the check digit, then every other one
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def customer_number_is_valid(number: str) -> bool:
    number = re.sub(r"\s", "", number or "")
    return len(number) == 10 and number.isdigit() and luhn_check_digit(number[:-1]) == number[-1]


def customer_number_new() -> str:
    """Random (it reveals no customer count), 9 digits not starting with 0, then a Luhn digit so a
    mistyped number is caught at the till."""
    body = str(100_000_000 + secrets.randbelow(900_000_000))
    return body + luhn_check_digit(body)

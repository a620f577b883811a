"""Pickup codes: a short code the customer shows (or its QR payload) to collect an order.

The code is never stored: it is derived from SECRET_KEY and a random per-order nonce with an
HMAC, so neither a database dump nor the admin shows it, and the notification task can still
render it. Rotating SECRET_KEY invalidates the codes of orders waiting for pickup.
"""

import hashlib
import hmac
import secrets

from django.conf import settings
from django.core.cache import caches

from orders.exceptions import PickupCodeLocked

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud at a counter
CODE_LENGTH = 6
QR_PREFIX = "OMNISTOCK-PICKUP"


def new_nonce() -> str:
    return secrets.token_hex(16)


def pickup_code(*, reference: str, nonce: str) -> str:
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"pickup:{reference}:{nonce}".encode(), hashlib.sha256
    ).digest()
    number = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(CODE_LENGTH):
        number, index = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[index])
    return "".join(chars)


def qr_payload(*, reference: str, nonce: str) -> str:
    return f"{QR_PREFIX}:{reference}:{pickup_code(reference=reference, nonce=nonce)}"


def code_matches(*, reference: str, nonce: str, presented: str) -> bool:
    """The short code (any case, spaces ignored) or the full QR payload."""
    if not nonce or not isinstance(presented, str):
        return False
    expected = pickup_code(reference=reference, nonce=nonce)
    text = presented.strip().upper().replace(" ", "")
    if text.startswith(QR_PREFIX + ":"):
        parts = text.split(":")
        if len(parts) != 3 or parts[1] != reference.upper():
            return False
        text = parts[2]
    return hmac.compare_digest(text, expected)


# A 6-character code can be guessed by trying: wrong attempts are counted per order in the shared
# cache (a failed hand-over rolls its transaction back, so the database cannot count them), and
# the order's code is refused for the rest of the window after MAX_ATTEMPTS wrong ones. The
# strict `counters` cache: without Redis a hand-over by code answers 503, never an unlimited
# number of guesses.
MAX_ATTEMPTS = 5
ATTEMPT_WINDOW_SECONDS = 15 * 60


def _attempts_key(order_id: int) -> str:
    return f"pickup-attempts:{order_id}"


def attempts_check(order_id: int) -> None:
    cache = caches["counters"]

    if (cache.get(_attempts_key(order_id)) or 0) >= MAX_ATTEMPTS:
        raise PickupCodeLocked(details={"retry_after_seconds": ATTEMPT_WINDOW_SECONDS})


def attempt_failed(order_id: int) -> None:
    cache = caches["counters"]

    key = _attempts_key(order_id)
    if not cache.add(key, 1, ATTEMPT_WINDOW_SECONDS):
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, ATTEMPT_WINDOW_SECONDS)


def attempts_clear(order_id: int) -> None:
    cache = caches["counters"]

    cache.delete(_attempts_key(order_id))

"""HMAC-SHA256 signatures over a timestamp and the raw body, for every webhook in and out.

Header format (Stripe-like, so existing tooling understands it):
    X-Omnistock-Signature: t=<unix seconds>,v1=<hex hmac>[,v1=<hex hmac>]
The signed message is f"{t}.{raw body}". Several v1 values may be present while a secret rotates.
"""

import hashlib
import hmac
import time
from collections.abc import Iterable

from django.utils.translation import gettext_lazy

from common.exceptions import DomainError


class SignatureInvalid(DomainError):
    code = "signature_invalid"
    http_status = 401
    default_message = gettext_lazy("The request signature is missing, malformed, stale or wrong.")


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(
    secret: str, body: bytes, timestamp: int | None = None, *, also: Iterable[str] = ()
) -> str:
    """`also`: secrets that sign too (a rotation's previous secret), one v1 value each."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signatures = [compute_signature(s, timestamp, body) for s in (secret, *also)]
    return f"t={timestamp}," + ",".join(f"v1={signature}" for signature in signatures)


def verify_signature(
    *,
    header: str | None,
    body: bytes,
    secrets: Iterable[str],
    tolerance_seconds: int,
    now: float | None = None,
) -> int:
    """Return the signed timestamp, or raise SignatureInvalid. Any of `secrets` may match."""
    if not header:
        raise SignatureInvalid("The signature header is missing.")
    timestamp = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureInvalid("The signature header is malformed.")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureInvalid("The signature timestamp is outside the tolerance window.")
    for secret in secrets:
        if not secret:
            continue
        expected = compute_signature(secret, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return timestamp
    raise SignatureInvalid("The signature does not match.")

from django.core.exceptions import ValidationError


def gtin_check_digit_ok(code: str) -> bool:
    """GS1 mod-10 check digit, for GTIN-8/12/13/14 (EAN-13 included)."""
    if not code.isdigit() or len(code) not in (8, 12, 13, 14):
        return False
    digits = [int(c) for c in code]
    body, check = digits[:-1], digits[-1]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def validate_gtin(value: str) -> None:
    if not gtin_check_digit_ok(value):
        raise ValidationError(
            f"{value!r} is not a valid EAN-13/GTIN (8, 12, 13 or 14 digits with a GS1 check digit)."
        )


def gtin_with_check_digit(body: str) -> str:
    """Append the GS1 check digit to a 7/11/12/13-digit body."""
    digits = [int(c) for c in body]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return body + str((10 - total % 10) % 10)

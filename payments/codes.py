"""Gift card codes: 15 random characters of the Crockford base-32 alphabet (75 bits, so they
cannot be guessed) and a check character (Luhn mod 32, which catches every single mistyped
character and every swap of two neighbours but one: `0` and `Z` — like Luhn mod 10 misses 09/90),
shown in groups of four: `7KQ3-M9XD-2HCF-WT4B`. A missed typo only means "no such card".

Typing is forgiving: case, spaces and dashes are ignored, and I/L read as 1, O as 0.
"""

import hashlib
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_INDEX = {char: i for i, char in enumerate(ALPHABET)}
_BASE = len(ALPHABET)
PAYLOAD_LENGTH = 15
CODE_LENGTH = PAYLOAD_LENGTH + 1
_LOOKALIKES = str.maketrans({"I": "1", "L": "1", "O": "0"})


def check_character(payload: str) -> str:
    """Luhn mod N over the payload (the character that makes the whole code check)."""
    factor, total = 2, 0
    for char in reversed(payload):
        addend = factor * _INDEX[char]
        factor = 1 if factor == 2 else 2
        total += addend // _BASE + addend % _BASE
    return ALPHABET[(_BASE - total % _BASE) % _BASE]


def normalise(raw: str) -> str | None:
    """The canonical 16 characters, or None when `raw` cannot be a valid code."""
    if not isinstance(raw, str):
        return None
    code = raw.upper().replace("-", "").replace(" ", "").translate(_LOOKALIKES)
    if len(code) != CODE_LENGTH or any(char not in _INDEX for char in code):
        return None
    if check_character(code[:-1]) != code[-1]:
        return None
    return code


def generate() -> str:
    payload = "".join(secrets.choice(ALPHABET) for _ in range(PAYLOAD_LENGTH))
    return payload + check_character(payload)


def display(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def code_hash(code: str) -> str:
    """Of a normalised code. 75 random bits: a plain SHA-256 cannot be reversed by guessing."""
    return hashlib.sha256(code.encode()).hexdigest()

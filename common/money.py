"""A small Money value type: Decimal amounts that always travel with their ISO 4217 currency."""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.utils.translation import gettext_lazy

from common.exceptions import InvalidInput

# Minor units per currency (ISO 4217). Extend when a new currency is sold.
CURRENCY_DECIMALS = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "JPY": 0}


class CurrencyMismatch(InvalidInput):
    code = "currency_mismatch"
    default_message = gettext_lazy("Amounts in different currencies cannot be combined.")


def currency_exponent(currency: str) -> int:
    try:
        return CURRENCY_DECIMALS[currency]
    except KeyError:
        raise InvalidInput(
            f"Unsupported currency {currency!r}.",
            details={"currency": [f"one of {sorted(CURRENCY_DECIMALS)}"]},
        ) from None


# The largest amount one field takes: every money column stores at least 10 digits with 2
# decimals, and no retail line, tender or refund comes near 100 million.
MAX_AMOUNT = Decimal("99999999.99")


def parse_amount(value, currency: str, *, field: str = "amount") -> Decimal:
    """Parse a client amount strictly: no floats, no more decimals than the currency has."""
    if isinstance(value, float):
        raise InvalidInput(
            "Send amounts as strings or integers, not floats.", details={field: ["float"]}
        )
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvalidInput(
            f"{value!r} is not an amount.", details={field: ["not a number"]}
        ) from None
    if not amount.is_finite():
        raise InvalidInput("Amount must be finite.", details={field: ["not finite"]})
    if abs(amount) > MAX_AMOUNT:  # also keeps quantize() below within Decimal's precision
        raise InvalidInput(f"Amounts are at most {MAX_AMOUNT:,}.", details={field: ["too large"]})
    exponent = currency_exponent(currency)
    if amount != amount.quantize(Decimal(1).scaleb(-exponent)):
        raise InvalidInput(
            f"{currency} amounts have at most {exponent} decimals.",
            details={field: ["too many decimals"]},
        )
    return amount


@dataclass(frozen=True, order=False)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self):
        if isinstance(self.amount, float):
            raise TypeError("Money refuses floats; use Decimal or str")
        object.__setattr__(self, "amount", Decimal(self.amount))
        currency_exponent(self.currency)

    @classmethod
    def zero(cls, currency: str) -> "Money":
        return cls(Decimal(0), currency)

    def _check(self, other: "Money") -> None:
        if not isinstance(other, Money) or other.currency != self.currency:
            raise CurrencyMismatch()

    def __add__(self, other: "Money") -> "Money":
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor) -> "Money":
        if isinstance(factor, float):
            raise TypeError("Money refuses floats")
        return Money(self.amount * Decimal(factor), self.currency)

    def __lt__(self, other: "Money") -> bool:
        self._check(other)
        return self.amount < other.amount

    def __le__(self, other: "Money") -> bool:
        self._check(other)
        return self.amount <= other.amount

    def rounded(self) -> "Money":
        quantum = Decimal(1).scaleb(-currency_exponent(self.currency))
        return Money(self.amount.quantize(quantum, rounding=ROUND_HALF_UP), self.currency)

    def as_dict(self) -> dict:
        return {"amount": str(self.rounded().amount), "currency": self.currency}

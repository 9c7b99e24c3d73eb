"""Quantities as people type them: kilograms with one decimal for weighed categories, whole
counts otherwise; stored as whole grams or items. Decimal arithmetic, never floats."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

GRAMS_PER_KG = 1000


class BadQuantity(ValueError):
    pass


def parse_quantity(typed: str, weighed: bool) -> int:
    typed = typed.strip().replace("，", ".").replace(",", ".")
    if not typed:
        raise BadQuantity("empty")
    try:
        value = Decimal(typed)
    except InvalidOperation:
        raise BadQuantity("not a number") from None
    if not value.is_finite() or value <= 0:
        raise BadQuantity("not positive")
    if weighed:
        if value.as_tuple().exponent < -1:  # type: ignore[operator]
            raise BadQuantity("more than one decimal")
        return int((value * GRAMS_PER_KG).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if value != value.to_integral_value():
        raise BadQuantity("not whole")
    return int(value)


def show_quantity(amount: int, weighed: bool) -> str:
    """Grams as kilograms with one decimal (rounded half up); counts as they are."""
    if not weighed:
        return str(amount)
    tenths = (amount + 50) // 100
    return f"{tenths // 10}.{tenths % 10}"


def parse_yuan(typed: str) -> int:
    """Yuan with at most two decimals, as whole fen."""
    typed = typed.strip().replace("，", ".").replace(",", ".")
    if not typed:
        return 0
    try:
        value = Decimal(typed)
    except InvalidOperation:
        raise BadQuantity("not a number") from None
    if not value.is_finite() or value < 0 or value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise BadQuantity("not an amount")
    return int(value * 100)


def show_yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def whole_number(typed: str) -> int | None:
    """ASCII digits only: str.isdigit() also accepts '²', which int() refuses."""
    typed = typed.strip()
    return int(typed) if typed.isascii() and typed.isdigit() and len(typed) <= 12 else None

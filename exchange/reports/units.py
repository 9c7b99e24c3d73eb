"""Units at the edge: weights are whole grams, points whole points, money whole fen and CO2e
whole grams everywhere else; kilograms, yuan and percentages only as text to show."""


def rate_permille(part: int, whole: int) -> int:
    """part / whole in per mille, rounded half up; 0 when there is no whole."""
    return (part * 2000 + whole) // (2 * whole) if whole else 0


def format_kg(grams: int) -> str:
    """Grams as kilograms with one decimal, rounded half up: 12345 → "12.3"."""
    tenths = (grams + 50) // 100
    return f"{tenths // 10}.{tenths % 10}"


def format_rate(permille: int) -> str:
    return f"{permille // 10}.{permille % 10}%"


def format_yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"

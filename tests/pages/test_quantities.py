"""What people type as a quantity becomes whole grams or a whole count, never a float."""

import pytest

from api.pages.quantities import BadQuantity, parse_quantity, show_quantity, whole_number


@pytest.mark.parametrize(
    ("typed", "grams"),
    [("2.5", 2500), ("0.1", 100), ("12", 12000), ("3，5", 3500), (" 1.0 ", 1000)],
)
def test_kilograms_with_one_decimal_become_grams(typed: str, grams: int) -> None:
    assert parse_quantity(typed, weighed=True) == grams


@pytest.mark.parametrize("typed", ["", "abc", "-1", "0", "2.55", "NaN", "Infinity", "1e3x"])
def test_bad_weights_are_refused(typed: str) -> None:
    with pytest.raises(BadQuantity):
        parse_quantity(typed, weighed=True)


@pytest.mark.parametrize("typed", ["1.5", "0", "-2", "x"])
def test_counts_are_whole_and_positive(typed: str) -> None:
    with pytest.raises(BadQuantity):
        parse_quantity(typed, weighed=False)
    assert parse_quantity("3", weighed=False) == 3


def test_grams_show_as_kilograms_with_one_decimal() -> None:
    assert show_quantity(2500, weighed=True) == "2.5"
    assert show_quantity(2449, weighed=True) == "2.4"
    assert show_quantity(7, weighed=False) == "7"


def test_whole_numbers_are_ascii_digits() -> None:
    assert whole_number(" 42 ") == 42
    assert whole_number("²") is None
    assert whole_number("-1") is None
    assert whole_number("1.5") is None
    assert whole_number("") is None

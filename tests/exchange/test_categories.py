"""The points rule: whole points, rounded down, from grams per kilogram or items."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.categories import CATEGORIES, Unit, category
from exchange.errors import QuantityOutOfBounds, UnknownCategory

rates = st.integers(min_value=1, max_value=100_000)


@given(grams=st.integers(min_value=100, max_value=50_000), per_kg=rates)
def test_weighed_points_are_the_exact_value_rounded_down(grams: int, per_kg: int) -> None:
    points = category("paper").points(grams, per_kg)
    exact = Fraction(grams * per_kg, 1000)
    assert isinstance(points, int)
    assert points <= exact < points + 1


@given(
    code=st.sampled_from([c.code for c in CATEGORIES.values() if c.unit is Unit.item]),
    count=st.integers(min_value=1, max_value=10),
    per_item=rates,
)
def test_counted_points_are_count_times_rate(code: str, count: int, per_item: int) -> None:
    assert category(code).points(count, per_item) == count * per_item


@given(quantity=st.integers(min_value=-(10**9), max_value=10**9))
def test_every_category_accepts_exactly_its_bounds(quantity: int) -> None:
    for kind in CATEGORIES.values():
        inside = kind.minimum <= quantity <= kind.maximum
        try:
            kind.check_quantity(quantity)
        except QuantityOutOfBounds:
            assert not inside
        else:
            assert inside


def test_an_unknown_code_names_the_known_ones() -> None:
    with pytest.raises(UnknownCategory) as refused:
        category("fridge")
    assert "toner_cartridge" in refused.value.detail

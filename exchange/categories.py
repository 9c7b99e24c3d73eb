"""What can be dropped off: a fixed list of categories, each weighed in grams or counted.

A rate card prices weighed categories in points per kilogram and counted ones in points per
item. Points are whole: for weighed categories `points = floor(grams * per_kg / 1000)`, so
a partial kilogram earns its share rounded down; counted categories earn `count * per_item`.
"""

from dataclasses import dataclass
from enum import StrEnum

from exchange.errors import QuantityOutOfBounds, UnknownCategory, WrongUnit


class Unit(StrEnum):
    gram = "g"
    item = "item"


@dataclass(frozen=True)
class Category:
    code: str
    name_zh: str
    name_en: str
    unit: Unit
    minimum: int
    maximum: int

    @property
    def per(self) -> int:
        """How many of the unit one rate point buys: 1,000 grams, or one item."""
        return 1000 if self.unit is Unit.gram else 1

    @property
    def rate_unit(self) -> str:
        """What one rate point buys: a kilogram of a weighed category, one counted item."""
        return "kg" if self.unit is Unit.gram else "item"

    def check_unit(self, unit: str | None) -> None:
        """A client may say which unit it meant; a mismatch (say, kilograms sent as a count
        of paper) is refused rather than silently misread."""
        if unit is None or unit == self.unit.value:
            return
        expected = "weighed in grams (g)" if self.unit is Unit.gram else "counted (item)"
        raise WrongUnit(f"unit: {self.name_en} is {expected}, not {unit!r}.", self.unit.value)

    def check_quantity(self, quantity: int, field: str = "quantity") -> None:
        if self.minimum <= quantity <= self.maximum:
            return
        unit = "grams" if self.unit is Unit.gram else "items"
        raise QuantityOutOfBounds(
            f"{field}: {self.name_en} takes {self.minimum}-{self.maximum} {unit}, not {quantity}.",
            self.minimum,
            self.maximum,
            self.unit.value,
        )

    def points(self, quantity: int, rate: int) -> int:
        """Whole points for `quantity` at `rate` (per kg or per item), rounded down."""
        return quantity * rate // self.per

    def accepts(self, quantity: int, unit: str | None) -> bool:
        """Whether `check_unit` and `check_quantity` would let this through."""
        return unit in (None, self.unit.value) and self.minimum <= quantity <= self.maximum


CATEGORIES: dict[str, Category] = {
    c.code: c
    for c in (
        Category("paper", "报纸及废纸", "newspapers and paper", Unit.gram, 100, 50_000),
        Category("ink_cartridge", "墨盒", "ink cartridges", Unit.item, 1, 50),
        Category("toner_cartridge", "硒鼓/粉盒", "toner cartridges", Unit.item, 1, 50),
        Category("phone", "旧手机", "phones", Unit.item, 1, 10),
        Category("charger_cable", "充电器及数据线", "chargers and cables", Unit.item, 1, 10),
        Category("keyboard_mouse", "键盘鼠标", "keyboards and mice", Unit.item, 1, 10),
        Category("other_small_device", "其他小型电子产品", "other small devices", Unit.item, 1, 10),
    )
}

ROUNDING_RULE = (
    "Points are whole numbers. Weighed categories (paper) are priced in points per kilogram "
    "and earn floor(grams × points_per_kg / 1000) points, i.e. rounded down; counted "
    "categories earn count × points_per_item."
)


def category(code: str) -> Category:
    try:
        return CATEGORIES[code]
    except KeyError:
        known = ", ".join(CATEGORIES)
        raise UnknownCategory(code, f"No category {code!r}; known categories: {known}.") from None

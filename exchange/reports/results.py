"""What a report holds: plain, frozen values the pages, the API, the exports and the summary
read. Weights are grams, points whole points, money fen, CO2e grams."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from catalog.models import utcnow
from exchange.categories import Unit
from exchange.errors import InvalidInput
from exchange.reports.co2e import FactorSet
from exchange.reports.period import Period

PAPER_UNIT = Unit.gram.value


@dataclass(frozen=True)
class StatusCount:
    status: str
    count: int
    points: int


@dataclass(frozen=True)
class CategoryRow:
    """Confirmed drop-offs of one category: quantity in grams (paper) or items."""

    category: str
    unit: str
    quantity: int
    count: int
    points: int
    co2e_grams: int | None  # None: no factor claims anything for the category


@dataclass(frozen=True)
class StationRow:
    station_id: str
    name: str
    dropoffs: int
    confirmed: int
    paper_grams: int
    items: int
    points: int


@dataclass(frozen=True)
class DayRow:
    day: date
    dropoffs: int  # logged that day, any status
    confirmed: int  # logged that day and confirmed (now)
    paper_grams: int
    items: int
    points_issued: int  # credits posted that day
    points_spent: int  # orders picked up that day
    first_time: int  # employees whose first confirmed drop-off ever was that day


@dataclass(frozen=True)
class Participation:
    members: int  # active users of the department(s) holding the employee role
    participants: int  # with at least one confirmed drop-off logged in the period
    rate_permille: int
    ordered: int  # placed at least one order in the period


@dataclass(frozen=True)
class PointsSummary:
    issued: int
    pending: int
    rejected: int
    spent: int
    held: int  # at the end of the period
    released: int
    expired: int  # moved to the department's expiry account by the expiry sweep
    outstanding: int  # employees' posted balances at the end of the period


@dataclass(frozen=True)
class ProductRow:
    product_id: str
    name: str
    unit: str
    orders: int
    quantity: int
    points: int
    value_fen: int


@dataclass(frozen=True)
class Report:
    department_id: str | None  # None: the whole platform
    period: Period
    dropoffs_by_status: tuple[StatusCount, ...]
    categories: tuple[CategoryRow, ...]
    stations: tuple[StationRow, ...]
    days: tuple[DayRow, ...]
    participation: Participation
    points: PointsSummary
    orders_by_status: tuple[StatusCount, ...]
    products: tuple[ProductRow, ...]
    factor_set: FactorSet  # the CO2e factors the report was computed with
    generated_at: datetime = field(default_factory=utcnow)

    @property
    def paper_grams(self) -> int:
        return sum(c.quantity for c in self.categories if c.unit == PAPER_UNIT)

    @property
    def items(self) -> int:
        return sum(c.quantity for c in self.categories if c.unit != PAPER_UNIT)

    @property
    def value_fen(self) -> int:
        return sum(p.value_fen for p in self.products)

    @property
    def co2e_grams(self) -> int:
        return sum(c.co2e_grams or 0 for c in self.categories)

    @property
    def is_empty(self) -> bool:
        """Nothing logged, moved or ordered in the period: charts would have nothing to show."""
        return not (
            any(d.dropoffs or d.points_issued or d.points_spent for d in self.days)
            or any(s.count for s in self.orders_by_status)
        )


@dataclass(frozen=True)
class DepartmentRow:
    department_id: str
    name: str
    members: int
    participants: int
    rate_permille: int
    paper_grams: int
    items: int
    points_issued: int
    points_spent: int
    points_expired: int
    value_fen: int
    co2e_grams: int


DEPARTMENT_SORT_KEYS = tuple(
    name for name in DepartmentRow.__dataclass_fields__ if name != "department_id"
)


@dataclass(frozen=True)
class PlatformReport:
    totals: Report
    departments: tuple[DepartmentRow, ...]


def sort_departments(
    rows: Iterable[DepartmentRow], key: str = "name", descending: bool = False
) -> tuple[DepartmentRow, ...]:
    if key not in DEPARTMENT_SORT_KEYS:
        raise InvalidInput("sort", f"one of {', '.join(DEPARTMENT_SORT_KEYS)}")
    ordered = sorted(rows, key=lambda row: (getattr(row, key), row.name, row.department_id))
    return tuple(reversed(ordered) if descending else ordered)


@dataclass(frozen=True)
class MemberTotals:
    """An employee's drop-offs and orders, all time."""

    dropoffs: int
    confirmed: int
    paper_grams: int
    items: int
    points_earned: int
    orders: int
    points_spent: int


@dataclass(frozen=True)
class DayTotals:
    """A department's activity on one Asia/Shanghai day, and what awaits it now."""

    dropoffs: int  # logged that day and not rejected
    confirmed: int  # logged that day and confirmed
    pending: int  # logged that day and still pending
    participants: int  # employees with a confirmed drop-off logged that day
    categories: tuple[CategoryRow, ...]  # confirmed quantities logged that day
    points_issued: int  # credits posted that day
    orders: int  # placed that day and not cancelled or expired
    picked_up: int  # orders picked up that day
    points_spent: int
    value_fen: int  # value of the products picked up that day
    waiting: int  # drop-offs pending a steward, whichever day they were logged
    open_orders: int  # orders reserved and not yet picked up, cancelled or expired

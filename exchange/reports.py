"""Reports: what a department, or the whole platform, achieved in a period.

Every figure is aggregated in SQL (GROUP BY over the exchange's tables); Python only folds
the small grouped results together. The report reads the exchange's own records, and a test
checks that its points figures equal the sums of the department's ledger entries.

Public names (the pages, the API and the summary build on these; they stay stable):

- ``Period`` — resolved by ``resolve_period(session, department_id, campaign=…, date_from=…,
  date_to=…)`` from a campaign or from/to Asia/Shanghai dates (inclusive), into UTC bounds
  ``[start, end)`` and the Shanghai days ``first_day … last_day`` (``period.days``).
- ``department_report(session, department_id, period) -> Report`` and
  ``platform_report(session, period, sort=…, descending=…) -> PlatformReport``.
- ``Report``: ``department_id`` (None for the platform totals), ``period``,
  ``dropoffs_by_status`` (``StatusCount``), ``categories`` (``CategoryRow``), ``stations``
  (``StationRow``; empty in the platform totals), ``days`` (``DayRow``, every day of the
  period, zero days included), ``participation`` (``Participation``), ``points``
  (``PointsSummary``), ``orders_by_status`` (``StatusCount``), ``products`` (``ProductRow``),
  and the properties ``paper_grams``, ``items``, ``value_fen``, ``co2e_grams``.
- ``PlatformReport``: ``totals`` (a ``Report``) and ``departments`` (``DepartmentRow``),
  sorted by one of ``DEPARTMENT_SORT_KEYS`` (``sort_departments`` re-sorts).
- ``CO2E_FACTORS`` (``Co2eFactor`` per category: grams CO2e avoided per kg or per item, or
  None where no sourced factor exists, with its source), printed under every report.
- ``report_tables(report)`` / ``platform_tables(report)`` -> ``ReportTable`` (name, header,
  rows of plain values): what CSV and XLSX exports write, one table per sheet.
- ``format_kg(grams)`` ("12.3"), ``format_rate(permille)`` ("12.3%").
- ``member_totals(session, department_id, user_id)`` -> ``MemberTotals`` and
  ``day_totals(session, department_id, day)`` -> ``DayTotals`` for the employee home page and
  the coordinator dashboard.

Units: weights are whole grams, points whole points, money whole fen, CO2e whole grams;
kilograms with one decimal only at the edge (``format_kg``). Rates are per mille (integer).

When things count:
- drop-off figures (statuses, categories, collection points, the day series' drop-offs,
  participants, first-time participants) count drop-offs *logged* in the period;
- points figures count when the ledger moved the points: issued when a credit was posted
  (the drop-off confirmed, ``decided_at``), rejected when voided, spent when an order was
  picked up and released when cancelled or expired (``resolved_at``). ``pending`` is the
  credit of drop-offs logged in the period and still awaiting a steward. ``held`` and
  ``outstanding`` are balances at the end of the period: points held by open orders, and the
  posted balances of every employee account;
- orders by status count orders placed in the period; products delivered count orders picked
  up in the period, at the value snapshotted into the order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    true,
)
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import Department, Role, User, UserRole, utcnow
from exchange.campaigns import SHANGHAI, get_campaign
from exchange.categories import CATEGORIES, Unit
from exchange.errors import InvalidInput
from exchange.models import Dropoff, DropoffStatus, Order, OrderStatus, Station

D = Dropoff.__table__
O = Order.__table__  # noqa: E741
U = User.__table__
R = UserRole.__table__
S = Station.__table__
DEPT = Department.__table__

MAX_PERIOD_DAYS = 366
CONFIRMED = DropoffStatus.confirmed.value
PAPER_UNIT = Unit.gram.value


# --- the period -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """UTC bounds ``[start, end)`` and the Asia/Shanghai days they cover (inclusive)."""

    start: datetime
    end: datetime
    first_day: date
    last_day: date
    campaign_id: str | None = None
    campaign_name: str | None = None

    @property
    def days(self) -> tuple[date, ...]:
        count = (self.last_day - self.first_day).days + 1
        return tuple(self.first_day + timedelta(days=n) for n in range(count))

    @classmethod
    def of_days(cls, first_day: date, last_day: date) -> Period:
        start = datetime.combine(first_day, time(), SHANGHAI).astimezone(UTC)
        end = datetime.combine(last_day + timedelta(days=1), time(), SHANGHAI).astimezone(UTC)
        return cls(start=start, end=end, first_day=first_day, last_day=last_day)


def _parse_day(name: str, text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(name, "a date as YYYY-MM-DD (Asia/Shanghai)") from None


async def resolve_period(
    session: AsyncSession,
    department_id: str | None,
    *,
    campaign: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
) -> Period:
    """A campaign (visible to the department: its own or platform-wide), or from/to dates.

    Raises InvalidInput for a missing, malformed, reversed or over-long period and NotFound
    for an unknown campaign."""
    if campaign:
        if date_from or date_to:
            raise InvalidInput("campaign", "give either a campaign or from and to, not both")
        found = await get_campaign(session, campaign, department_id)  # type: ignore[arg-type]
        last = found.ends_at - timedelta(microseconds=1)
        return Period(
            start=found.starts_at,
            end=found.ends_at,
            first_day=found.starts_at.astimezone(SHANGHAI).date(),
            last_day=last.astimezone(SHANGHAI).date(),
            campaign_id=found.id,
            campaign_name=found.name,
        )
    if not date_from or not date_to:
        raise InvalidInput("from", "give a campaign, or both from and to (YYYY-MM-DD)")
    first, last = _parse_day("from", date_from), _parse_day("to", date_to)
    if last < first:
        raise InvalidInput("to", "must not be before from")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise InvalidInput("to", f"a report covers at most {MAX_PERIOD_DAYS} days")
    return Period.of_days(first, last)


# --- environmental effect -------------------------------------------------------------------


@dataclass(frozen=True)
class Co2eFactor:
    """Grams of CO2e avoided per kilogram (weighed categories) or per item (counted ones);
    None where no sourced factor exists, which the note explains."""

    category: str
    grams_per_unit: int | None
    per: str  # "kg" or "item"
    source: str
    note: str = ""

    def avoided(self, quantity: int) -> int | None:
        """Whole grams avoided for a quantity in the category's unit (grams or items)."""
        if self.grams_per_unit is None:
            return None
        if self.per == "kg":
            return quantity * self.grams_per_unit // 1000
        return quantity * self.grams_per_unit


# Short ton → kilograms: 907.18474 kg. 2.71 t CO2e per short ton = 2,987 g CO2e per kg.
_WARM_NEWSPAPER = Co2eFactor(
    "paper",
    2987,
    "kg",
    "US EPA, Waste Reduction Model (WARM) Version 15, November 2020: net emission factor "
    "for Newspaper, Recycling: −2.71 MTCO2E per short ton (avoided emissions are the "
    "negative of the net factor; 2.71 × 1,000,000 g ÷ 907.18474 kg = 2,987 g per kg).",
    "Newspapers are the bulk of the paper collected, so the newspaper factor is used for all "
    "paper. The value is WARM v15's published per-material recycling factor; the exhibit and "
    "page in the WARM v15 documentation were not re-read when this was written: confirm "
    "them before publishing a summary that quotes it.",
)
_PER_ITEM = (
    "No sourced factor per item exists for this category: WARM gives electronics factors per "
    "short ton by device type, and the exchange counts items, not their weight; converting "
    "would need a sourced average mass per item, which we do not have. Its quantity is "
    "reported, but no CO2e is claimed for it."
)
_CARTRIDGES = (
    "No published CO2e factor for recycling ink or toner cartridges was found, so none is "
    "used: their quantity is reported, but no CO2e is claimed for them."
)

CO2E_FACTORS: dict[str, Co2eFactor] = {
    "paper": _WARM_NEWSPAPER,
    "ink_cartridge": Co2eFactor("ink_cartridge", None, "item", "", _CARTRIDGES),
    "toner_cartridge": Co2eFactor("toner_cartridge", None, "item", "", _CARTRIDGES),
    **{
        code: Co2eFactor(code, None, "item", "", _PER_ITEM)
        for code in ("phone", "charger_cable", "keyboard_mouse", "other_small_device")
    },
}
assert set(CO2E_FACTORS) == set(CATEGORIES), "every category needs a row in the factor table"


# --- the report's parts ---------------------------------------------------------------------


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
    co2e_grams: int | None


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


# --- SQL helpers ----------------------------------------------------------------------------


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


# Midnight in Asia/Shanghai, the origin of the day bins below.
_SHANGHAI_MIDNIGHT = datetime(2000, 1, 1, tzinfo=SHANGHAI)


def _day_of(session: AsyncSession, column: Any) -> ColumnElement[Any]:
    """The Asia/Shanghai day of a UTC timestamp column, in SQL, cheap enough to group by: on
    PostgreSQL the start of its day bin (date_bin is several times cheaper than to_char), on
    SQLite the date text. ``_day_key`` turns either into YYYY-MM-DD."""
    if _dialect(session) == "postgresql":
        return func.date_bin(timedelta(days=1), column, _SHANGHAI_MIDNIGHT)
    # China has kept UTC+8 all year since 1991, so a fixed offset is exact for our dates.
    return func.date(column, "+8 hours")


def _day_key(value: datetime | str) -> str:
    if isinstance(value, datetime):
        return value.astimezone(SHANGHAI).date().isoformat()
    return value


def _in_scope(table: Any, department_id: str | None) -> ColumnElement[bool]:
    return table.c.department_id == department_id if department_id is not None else true()


def _by_department(table: Any, department_id: str | None) -> tuple[Any, list[Any]]:
    """The department column to select and the keys to group by: for one department a
    constant, so the database hashes one key fewer per row."""
    if department_id is None:
        return table.c.department_id, [table.c.department_id]
    return literal(department_id).label("department_id"), []


def _during(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


def _sum(expression: Any) -> ColumnElement[int]:
    # PostgreSQL sums BIGINT to NUMERIC (a Decimal in Python): cast back to whole numbers.
    return cast(func.coalesce(func.sum(expression), 0), BigInteger)


_QUANTITY = func.coalesce(D.c.confirmed_quantity, D.c.quantity)


async def _rows(session: AsyncSession, statement: Any) -> Sequence[Any]:
    return (await session.exec(statement)).all()


# --- the grouped queries --------------------------------------------------------------------
# Each query scans its table once and returns small grouped results keyed by department, so
# the department report (one group) and the platform report (every group, then summed) share
# one code path. A department report scans drop-offs four times and orders four times.


def _counters() -> defaultdict[str, list[int]]:
    return defaultdict(lambda: [0, 0, 0])


@dataclass
class _Dept:
    """Grouped figures of one department, filled by the queries below."""

    status: defaultdict[str, list[int]] = field(default_factory=_counters)  # count, points
    categories: defaultdict[str, list[int]] = field(default_factory=_counters)
    stations: defaultdict[str, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * 5)
    )
    members: int = 0
    participants: int = 0
    ordered: int = 0
    issued: int = 0
    rejected: int = 0
    spent: int = 0
    released: int = 0
    value_fen: int = 0
    held: int = 0
    outstanding: int = 0
    order_status: defaultdict[str, list[int]] = field(default_factory=_counters)


_ADDITIVE = (
    "members participants ordered issued rejected spent released value_fen held outstanding"
).split()


@dataclass
class _Days:
    """Per-day figures of the whole scope, keyed by YYYY-MM-DD."""

    rows: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0] * 7))

    def add(self, day: datetime | str, column: int, value: int) -> None:
        self.rows[_day_key(day)][column] += value


async def _logged(
    session: AsyncSession, department_id: str | None, period: Period, groups: dict[str, _Dept]
) -> None:
    """Drop-offs logged in the period by department, status, category (and collection point
    for one department)."""
    dept, keys = _by_department(D, department_id)
    detail = [D.c.status, D.c.category] + ([D.c.station_id] if department_id else [])
    query = (
        select(dept, *detail, func.count(), _sum(D.c.points), _sum(_QUANTITY))
        .where(_in_scope(D, department_id), _during(D.c.created_at, period))
        .group_by(*keys, *detail)
    )
    for dept_id, status, category, *rest in await _rows(session, query):
        *station, count, points, quantity = rest
        unit = CATEGORIES[category].unit.value if category in CATEGORIES else ""
        figures = groups[dept_id]
        figures.status[status][0] += count
        figures.status[status][1] += points
        confirmed = status == CONFIRMED
        if confirmed:
            row = figures.categories[category]
            row[0] += quantity
            row[1] += count
            row[2] += points
        if station:
            at = figures.stations[station[0]]
            at[0] += count
            if confirmed:
                at[1] += count
                at[2 if unit == PAPER_UNIT else 3] += quantity
                at[4] += points


async def _logged_days(
    session: AsyncSession, department_id: str | None, period: Period, days: _Days
) -> None:
    query = (
        select(D.c.local_day, D.c.status, D.c.unit, func.count(), _sum(_QUANTITY))
        .where(_in_scope(D, department_id), _during(D.c.created_at, period))
        .group_by(D.c.local_day, D.c.status, D.c.unit)
    )
    for day, status, unit, count, quantity in await _rows(session, query):
        days.add(day, 0, count)
        if status == CONFIRMED:
            days.add(day, 1, count)
            days.add(day, 2 if unit == PAPER_UNIT else 3, quantity)


async def _participants(
    session: AsyncSession,
    department_id: str | None,
    period: Period,
    groups: dict[str, _Dept],
    days: _Days,
) -> None:
    """Per employee with a confirmed drop-off: the day of their first one ever and whether
    one was logged in the period; grouped, that gives participants and first-timers per day."""
    dept, keys = _by_department(D, department_id)
    per_user = (
        select(
            dept,
            func.min(D.c.local_day).label("first"),
            func.max(case((_during(D.c.created_at, period), 1), else_=0)).label("active"),
        )
        .where(
            _in_scope(D, department_id),
            D.c.status == CONFIRMED,
            D.c.local_day <= period.last_day.isoformat(),
        )
        .group_by(*keys, D.c.user_id)
        .subquery()
    )
    new_on = case((per_user.c.first >= period.first_day.isoformat(), per_user.c.first))
    query = select(
        per_user.c.department_id, new_on, func.count(), _sum(per_user.c.active)
    ).group_by(per_user.c.department_id, new_on)
    for dept, first_day, count, active in await _rows(session, query):
        groups[dept].participants += active
        if first_day is not None:
            days.add(first_day, 6, count)
    dept, keys = _by_department(O, department_id)
    ordered = (
        select(dept, O.c.user_id)
        .where(_in_scope(O, department_id), _during(O.c.created_at, period))
        .group_by(*keys, O.c.user_id)
        .subquery()
    )
    query = select(ordered.c.department_id, func.count()).group_by(ordered.c.department_id)
    for dept, count in await _rows(session, query):
        groups[dept].ordered = count
    members = (
        select(U.c.department_id, func.count())
        .join(R, and_(R.c.user_id == U.c.id, R.c.role == Role.employee.value))
        .where(
            _in_scope(U, department_id) if department_id else U.c.department_id.is_not(None),
            U.c.is_active.is_(True),
        )
        .group_by(U.c.department_id)
    )
    for dept, count in await _rows(session, members):
        groups[dept].members = count


async def _decided(
    session: AsyncSession,
    department_id: str | None,
    period: Period,
    groups: dict[str, _Dept],
    days: _Days,
) -> None:
    """Credits posted (confirmed) or voided (rejected) before the end of the period: by day
    within it (issued, rejected), before it (towards the outstanding balances)."""
    rejected = DropoffStatus.rejected.value
    scope = (
        _in_scope(D, department_id),
        D.c.status.in_([CONFIRMED, rejected]),
        D.c.decided_at < period.end,
    )
    # One department: by day in one scan. The platform: per department whether in the
    # period, then the days of the whole platform in a second scan (fewer groups to fetch).
    in_period = D.c.decided_at >= period.start
    day = _day_of(session, D.c.decided_at)
    bucket = case((in_period, day if department_id else 1))
    dept, keys = _by_department(D, department_id)
    query = (
        select(dept, D.c.status, bucket, _sum(D.c.points))
        .where(*scope)
        .group_by(*keys, D.c.status, bucket)
    )
    for dept_id, status, when, points in await _rows(session, query):
        figures = groups[dept_id]
        if status == CONFIRMED:
            figures.outstanding += points
        if when is None:
            continue
        if status == CONFIRMED:
            figures.issued += points
            if department_id:
                days.add(when, 4, points)
        else:
            figures.rejected += points
    if department_id is None:
        query = (
            select(day, _sum(D.c.points))
            .where(*scope, in_period, D.c.status == CONFIRMED)
            .group_by(day)
        )
        for when, points in await _rows(session, query):
            days.add(when, 4, points)


async def _orders(
    session: AsyncSession,
    department_id: str | None,
    period: Period,
    groups: dict[str, _Dept],
    days: _Days,
) -> None:
    """Orders placed before the end of the period: still open at its end (held), resolved in
    it (spent by day, released) or before it (towards the outstanding balances)."""
    fulfilled = OrderStatus.fulfilled.value
    open_at_end = case((or_(O.c.resolved_at.is_(None), O.c.resolved_at >= period.end), 1), else_=0)
    day = _day_of(session, O.c.resolved_at)
    resolved_in = case((O.c.resolved_at >= period.start, day if department_id else 1))
    dept, keys = _by_department(O, department_id)
    query = (
        select(
            dept,
            O.c.status,
            open_at_end,
            resolved_in,
            _sum(O.c.points),
            _sum(O.c.value_fen),
        )
        .where(_in_scope(O, department_id), O.c.created_at < period.end)
        .group_by(*keys, O.c.status, open_at_end, resolved_in)
    )
    for dept_id, status, still_open, when, points, value in await _rows(session, query):
        figures = groups[dept_id]
        if still_open:
            figures.held += points
            continue
        if status == fulfilled:
            figures.outstanding -= points
        if when is None:
            continue
        if status == fulfilled:
            figures.spent += points
            figures.value_fen += value
            if department_id:
                days.add(when, 5, points)
        else:
            figures.released += points
    if department_id is None:
        query = (
            select(day, _sum(O.c.points))
            .where(_during(O.c.resolved_at, period), O.c.status == fulfilled)
            .group_by(day)
        )
        for when, points in await _rows(session, query):
            days.add(when, 5, points)
    placed = (
        select(dept, O.c.status, func.count(), _sum(O.c.points))
        .where(_in_scope(O, department_id), _during(O.c.created_at, period))
        .group_by(*keys, O.c.status)
    )
    for dept_id, status, count, points in await _rows(session, placed):
        groups[dept_id].order_status[status][0] += count
        groups[dept_id].order_status[status][1] += points


async def _station_rows(
    session: AsyncSession, department_id: str, figures: _Dept
) -> tuple[StationRow, ...]:
    names = dict(
        await _rows(
            session,
            select(S.c.id, S.c.name).where(
                S.c.department_id == department_id, S.c.id.in_(list(figures.stations))
            ),
        )
    )
    rows = [StationRow(sid, names.get(sid, sid), *f) for sid, f in figures.stations.items()]
    return tuple(sorted(rows, key=lambda row: (-row.dropoffs, row.name, row.station_id)))


async def _product_rows(
    session: AsyncSession, department_id: str | None, period: Period
) -> tuple[ProductRow, ...]:
    query = (
        select(
            O.c.product_id,
            func.max(O.c.product_name),
            func.max(O.c.product_unit),
            func.count(),
            _sum(O.c.quantity),
            _sum(O.c.points),
            _sum(O.c.value_fen),
        )
        .where(
            _in_scope(O, department_id),
            _during(O.c.resolved_at, period),
            O.c.status == OrderStatus.fulfilled.value,
        )
        .group_by(O.c.product_id)
    )
    rows = [ProductRow(*row) for row in await _rows(session, query)]
    return tuple(sorted(rows, key=lambda row: (-row.value_fen, row.name, row.product_id)))


# --- assembling -----------------------------------------------------------------------------


def _category_rows(categories: dict[str, list[int]]) -> tuple[CategoryRow, ...]:
    rows = []
    for code, kind in CATEGORIES.items():  # the fixed category order
        quantity, count, points = categories.get(code, (0, 0, 0))
        rows.append(
            CategoryRow(
                code, kind.unit.value, quantity, count, points, CO2E_FACTORS[code].avoided(quantity)
            )
        )
    return tuple(rows)


def _status_counts(
    figures: dict[str, list[int]], statuses: Iterable[str]
) -> tuple[StatusCount, ...]:
    return tuple(StatusCount(s, *figures.get(s, (0, 0))[:2]) for s in statuses)


def _merge(groups: dict[str, _Dept]) -> _Dept:
    total = _Dept()
    for figures in groups.values():
        for mine, theirs in (
            (total.status, figures.status),
            (total.order_status, figures.order_status),
            (total.categories, figures.categories),
            (total.stations, figures.stations),
        ):
            for key, values in theirs.items():
                for i, value in enumerate(values):
                    mine[key][i] += value
        for name in _ADDITIVE:
            setattr(total, name, getattr(total, name) + getattr(figures, name))
    return total


async def _report(
    session: AsyncSession, department_id: str | None, period: Period
) -> tuple[Report, dict[str, _Dept]]:
    groups: dict[str, _Dept] = defaultdict(_Dept)
    days = _Days()
    if _dialect(session) == "postgresql":
        # The planner cannot estimate how few groups a day bucket makes and, within the
        # default 4 MB, sorts every row to disk instead of hashing them: give it room.
        await session.exec(text("SET LOCAL work_mem = '32MB'"))  # type: ignore[call-overload]
    await _logged(session, department_id, period, groups)
    await _logged_days(session, department_id, period, days)
    await _participants(session, department_id, period, groups, days)
    await _decided(session, department_id, period, groups, days)
    await _orders(session, department_id, period, groups, days)
    total = _merge(groups)
    report = Report(
        department_id=department_id,
        period=period,
        dropoffs_by_status=_status_counts(total.status, DropoffStatus.__members__),
        categories=_category_rows(total.categories),
        stations=await _station_rows(session, department_id, total) if department_id else (),
        days=tuple(DayRow(day, *days.rows.get(day.isoformat(), [0] * 7)) for day in period.days),
        participation=Participation(
            members=total.members,
            participants=total.participants,
            rate_permille=rate_permille(total.participants, total.members),
            ordered=total.ordered,
        ),
        points=PointsSummary(
            issued=total.issued,
            pending=total.status.get(DropoffStatus.pending.value, [0, 0])[1],
            rejected=total.rejected,
            spent=total.spent,
            held=total.held,
            released=total.released,
            outstanding=total.outstanding,
        ),
        orders_by_status=_status_counts(total.order_status, OrderStatus.__members__),
        products=await _product_rows(session, department_id, period),
    )
    return report, groups


async def department_report(session: AsyncSession, department_id: str, period: Period) -> Report:
    """One department's report. The caller checks the department exists and may be seen."""
    report, _ = await _report(session, department_id, period)
    return report


async def platform_report(
    session: AsyncSession, period: Period, *, sort: str = "name", descending: bool = False
) -> PlatformReport:
    """Every department's totals side by side, and the platform's totals."""
    totals, groups = await _report(session, None, period)
    names = await _rows(session, select(DEPT.c.id, DEPT.c.name))
    rows = []
    for dept, name in names:
        figures = groups.get(dept, _Dept())
        categories = _category_rows(figures.categories)
        rows.append(
            DepartmentRow(
                department_id=dept,
                name=name,
                members=figures.members,
                participants=figures.participants,
                rate_permille=rate_permille(figures.participants, figures.members),
                paper_grams=sum(c.quantity for c in categories if c.unit == PAPER_UNIT),
                items=sum(c.quantity for c in categories if c.unit != PAPER_UNIT),
                points_issued=figures.issued,
                points_spent=figures.spent,
                value_fen=figures.value_fen,
                co2e_grams=sum(c.co2e_grams or 0 for c in categories),
            )
        )
    return PlatformReport(totals=totals, departments=sort_departments(rows, sort, descending))


# --- tables for CSV and XLSX ----------------------------------------------------------------


@dataclass(frozen=True)
class ReportTable:
    name: str  # also the XLSX sheet name: at most 31 characters
    header: tuple[str, ...]
    rows: tuple[tuple[str | int, ...], ...]


def _quantity_text(unit: str, quantity: int) -> str:
    return format_kg(quantity) if unit == PAPER_UNIT else str(quantity)


def _factor_table() -> ReportTable:
    return ReportTable(
        "co2e_factors",
        ("category", "grams_co2e_avoided", "per", "source", "note"),
        tuple(
            (
                f.category,
                "" if f.grams_per_unit is None else f.grams_per_unit,
                f.per,
                f.source,
                f.note,
            )
            for f in CO2E_FACTORS.values()
        ),
    )


def report_tables(report: Report) -> list[ReportTable]:
    """The report as plain tables, in the order an export writes them."""
    p, part, period = report.points, report.participation, report.period
    summary = ReportTable(
        "summary",
        ("figure", "value"),
        (
            ("department_id", report.department_id or "platform"),
            ("campaign", period.campaign_name or ""),
            ("from", period.first_day.isoformat()),
            ("to", period.last_day.isoformat()),
            ("paper_kg", format_kg(report.paper_grams)),
            ("items", report.items),
            ("members", part.members),
            ("participants", part.participants),
            ("participation_rate", format_rate(part.rate_permille)),
            ("employees_who_ordered", part.ordered),
            ("points_issued", p.issued),
            ("points_pending", p.pending),
            ("points_rejected", p.rejected),
            ("points_spent", p.spent),
            ("points_held_at_end", p.held),
            ("points_released", p.released),
            ("points_outstanding_at_end", p.outstanding),
            ("value_to_villages_yuan", format_yuan(report.value_fen)),
            ("co2e_avoided_kg", format_kg(report.co2e_grams)),
            ("generated_at", report.generated_at.isoformat()),
        ),
    )
    tables = [
        summary,
        ReportTable(
            "dropoffs_by_status",
            ("status", "dropoffs", "points"),
            tuple((s.status, s.count, s.points) for s in report.dropoffs_by_status),
        ),
        ReportTable(
            "categories",
            ("category", "unit", "quantity", "dropoffs", "points", "co2e_avoided_kg"),
            tuple(
                (
                    c.category,
                    "kg" if c.unit == PAPER_UNIT else "item",
                    _quantity_text(c.unit, c.quantity),
                    c.count,
                    c.points,
                    "" if c.co2e_grams is None else format_kg(c.co2e_grams),
                )
                for c in report.categories
            ),
        ),
    ]
    if report.department_id is not None:
        tables.append(
            ReportTable(
                "collection_points",
                ("station_id", "name", "dropoffs", "confirmed", "paper_kg", "items", "points"),
                tuple(
                    (
                        s.station_id,
                        s.name,
                        s.dropoffs,
                        s.confirmed,
                        format_kg(s.paper_grams),
                        s.items,
                        s.points,
                    )
                    for s in report.stations
                ),
            )
        )
    tables += [
        ReportTable(
            "days",
            (
                "day",
                "dropoffs",
                "confirmed",
                "paper_kg",
                "items",
                "points_issued",
                "points_spent",
                "first_time_participants",
            ),
            tuple(
                (
                    d.day.isoformat(),
                    d.dropoffs,
                    d.confirmed,
                    format_kg(d.paper_grams),
                    d.items,
                    d.points_issued,
                    d.points_spent,
                    d.first_time,
                )
                for d in report.days
            ),
        ),
        ReportTable(
            "orders_by_status",
            ("status", "orders", "points"),
            tuple((s.status, s.count, s.points) for s in report.orders_by_status),
        ),
        ReportTable(
            "products_delivered",
            ("product_id", "name", "unit", "orders", "quantity", "points", "value_yuan"),
            tuple(
                (
                    r.product_id,
                    r.name,
                    r.unit,
                    r.orders,
                    r.quantity,
                    r.points,
                    format_yuan(r.value_fen),
                )
                for r in report.products
            ),
        ),
        _factor_table(),
    ]
    return tables


def platform_tables(report: PlatformReport) -> list[ReportTable]:
    departments = ReportTable(
        "departments",
        (
            "department_id",
            "name",
            "members",
            "participants",
            "participation_rate",
            "paper_kg",
            "items",
            "points_issued",
            "points_spent",
            "value_to_village_yuan",
            "co2e_avoided_kg",
        ),
        tuple(
            (
                r.department_id,
                r.name,
                r.members,
                r.participants,
                format_rate(r.rate_permille),
                format_kg(r.paper_grams),
                r.items,
                r.points_issued,
                r.points_spent,
                format_yuan(r.value_fen),
                format_kg(r.co2e_grams),
            )
            for r in report.departments
        ),
    )
    tables = report_tables(report.totals)
    return [tables[0], departments, *tables[1:]]


# --- small totals for the employee home page and the coordinator dashboard ------------------


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


async def member_totals(session: AsyncSession, department_id: str, user_id: str) -> MemberTotals:
    confirmed = D.c.status == CONFIRMED
    ((dropoffs, n_confirmed, paper, items, earned),) = await _rows(
        session,
        select(
            func.count(),
            _sum(case((confirmed, 1), else_=0)),
            _sum(case((and_(confirmed, D.c.unit == PAPER_UNIT), _QUANTITY), else_=0)),
            _sum(case((and_(confirmed, D.c.unit != PAPER_UNIT), _QUANTITY), else_=0)),
            _sum(case((confirmed, D.c.points), else_=0)),
        ).where(D.c.department_id == department_id, D.c.user_id == user_id),
    )
    fulfilled = O.c.status == OrderStatus.fulfilled.value
    ((orders, spent),) = await _rows(
        session,
        select(func.count(), _sum(case((fulfilled, O.c.points), else_=0))).where(
            O.c.department_id == department_id, O.c.user_id == user_id
        ),
    )
    return MemberTotals(dropoffs, n_confirmed, paper, items, earned, orders, spent)


async def day_totals(session: AsyncSession, department_id: str, day: date) -> DayTotals:
    report = await department_report(session, department_id, Period.of_days(day, day))
    dropoffs = {s.status: s.count for s in report.dropoffs_by_status}
    orders = {s.status: s.count for s in report.orders_by_status}
    (waiting,) = await _rows(
        session,
        select(func.count()).where(
            D.c.department_id == department_id, D.c.status == DropoffStatus.pending.value
        ),
    )
    (open_orders,) = await _rows(
        session,
        select(func.count()).where(
            O.c.department_id == department_id, O.c.status == OrderStatus.reserved.value
        ),
    )
    return DayTotals(
        dropoffs=dropoffs[CONFIRMED] + dropoffs[DropoffStatus.pending.value],
        confirmed=dropoffs[CONFIRMED],
        pending=dropoffs[DropoffStatus.pending.value],
        participants=report.participation.participants,
        categories=tuple(c for c in report.categories if c.count),
        points_issued=report.points.issued,
        orders=orders[OrderStatus.reserved.value] + orders[OrderStatus.fulfilled.value],
        picked_up=sum(p.orders for p in report.products),
        points_spent=report.points.spent,
        value_fen=report.value_fen,
        waiting=waiting[0],
        open_orders=open_orders[0],
    )


__all__ = [
    "CO2E_FACTORS",
    "DEPARTMENT_SORT_KEYS",
    "MAX_PERIOD_DAYS",
    "CategoryRow",
    "Co2eFactor",
    "DayRow",
    "DayTotals",
    "DepartmentRow",
    "MemberTotals",
    "Participation",
    "Period",
    "PlatformReport",
    "PointsSummary",
    "ProductRow",
    "Report",
    "ReportTable",
    "StationRow",
    "StatusCount",
    "day_totals",
    "department_report",
    "format_kg",
    "format_rate",
    "format_yuan",
    "member_totals",
    "platform_report",
    "platform_tables",
    "rate_permille",
    "report_tables",
    "resolve_period",
    "sort_departments",
]

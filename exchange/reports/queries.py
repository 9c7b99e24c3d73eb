"""The report's queries: every figure from the rollups, a few grouped rows per day.

A whole day is read from the rollup tables alone (exchange/reports/rollups.py keeps them in
every write's transaction), a whole month the sweep has folded from its month rows
(exchange/reports/months.py); the part of a day that a period covers when a campaign starts or
ends within a day is read from the same rollup recomputed from the raw rows of that part,
through the indexes on (department_id, created_at / decided_at / resolved_at). Each query
returns small grouped results keyed by department, so the department report (one group) and
the platform report (every group, summed) share one code path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.departments import get_department
from catalog.identity import Identity
from catalog.models import Department, Role, User, UserRole
from exchange.categories import CATEGORIES, Unit
from exchange.models import Dropoff, DropoffStatus, Order, OrderStatus, Station
from exchange.reports import co2e, months, rollups
from exchange.reports.months import Cover, Folds
from exchange.reports.period import Period
from exchange.reports.results import (
    CategoryRow,
    DayRow,
    DayTotals,
    DepartmentRow,
    MemberTotals,
    Participation,
    PlatformReport,
    PointsSummary,
    ProductRow,
    Report,
    StationRow,
    StatusCount,
    sort_departments,
)
from exchange.reports.rollups import Rollup, Window
from exchange.reports.units import rate_permille

D = Dropoff.__table__
O = Order.__table__  # noqa: E741
U = User.__table__
R = UserRole.__table__
S = Station.__table__
DEPT = Department.__table__
PARTICIPANTS = rollups.PARTICIPANTS.table
FIRST = rollups.FIRST_DROPOFFS.table

CONFIRMED = DropoffStatus.confirmed.value


def _sum(expression: Any) -> ColumnElement[int]:
    # PostgreSQL sums BIGINT to NUMERIC (a Decimal in Python): cast back to whole numbers.
    return cast(func.coalesce(func.sum(expression), 0), BigInteger)


async def _rows(session: AsyncSession, statement: Any) -> Sequence[Any]:
    return (await session.exec(statement)).all()  # type: ignore[call-overload]


def _in_scope(table: Any, department_id: str | None) -> ColumnElement[bool]:
    return table.c.department_id == department_id if department_id is not None else true()


def _during(column: Any, windows: Sequence[Window]) -> ColumnElement[bool]:
    return or_(false(), *(and_(column >= w.start, column < w.end) for w in windows))


def _source(
    session: AsyncSession,
    rollup: Rollup,
    department_id: str | None,
    cover: Cover | None,
    windows: Sequence[Window],
) -> Any:
    """The rollup's rows for the whole days of `cover` (month rows for its folded months, day
    rows for the rest), and for the parts of days in `windows` recomputed from the raw rows:
    one relation with the rollup's columns."""
    table = rollup.table
    parts = []
    if cover is not None and rollup.months is None:
        cover = Folds().cover(cover.first, cover.last)
    if cover is not None:
        if rollup.months is not None and (rows := cover.month_rows(rollup.months)) is not None:
            parts.append(select(rollup.months).where(_in_scope(rollup.months, department_id), rows))
        if (rows := cover.day_rows(table)) is not None:
            parts.append(select(table).where(_in_scope(table, department_id), rows))
    if windows:
        dialect = session.get_bind().dialect.name
        again = rollups.recomputed(rollup, dialect, department_id=department_id, windows=windows)
        parts.append(select(*again.c))
    if not parts:
        parts.append(select(table).where(false()))
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()


def _period_source(
    session: AsyncSession, rollup: Rollup, scope: str | None, period: Period, folds: Folds
) -> Any:
    whole = period.whole_days
    return _source(session, rollup, scope, folds.cover(*whole) if whole else None, period.windows)


def _by_department(source: Any, department_id: str | None) -> tuple[Any, list[Any]]:
    """The department column to select and the keys to group by: for one department a
    constant, so the database groups by one key fewer."""
    if department_id is None:
        return source.c.department_id, [source.c.department_id]
    return literal(department_id).label("department_id"), []


@dataclass
class _Dept:
    """Grouped figures of one department, filled by the queries below; each counter named."""

    status: dict[str, StatusCount] = field(default_factory=dict)
    categories: dict[str, CategoryRow] = field(default_factory=dict)
    # category -> campaign -> confirmed quantity, for factors that hold for some campaigns
    by_campaign: defaultdict[str, defaultdict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    orders: dict[str, StatusCount] = field(default_factory=dict)
    members: int = 0
    participants: int = 0
    ordered: int = 0
    issued: int = 0
    rejected: int = 0
    spent: int = 0
    released: int = 0
    expired: int = 0
    value_fen: int = 0
    held: int = 0
    outstanding: int = 0

    def add_status(self, status: str, count: int, points: int) -> None:
        was = self.status.get(status, StatusCount(status, 0, 0))
        self.status[status] = StatusCount(status, was.count + count, was.points + points)

    def add_order_status(self, status: str, count: int, points: int) -> None:
        was = self.orders.get(status, StatusCount(status, 0, 0))
        self.orders[status] = StatusCount(status, was.count + count, was.points + points)


_ADDITIVE = [f.name for f in fields(_Dept) if f.type == "int"]


async def _dropoffs(
    session: AsyncSession,
    scope: str | None,
    period: Period,
    folds: Folds,
    groups: dict[str, _Dept],
) -> None:
    """Drop-offs logged in the period by status and category (and campaign, for the CO2e
    factors that hold only for some campaigns)."""
    source = _period_source(session, rollups.DROPOFF_DAYS, scope, period, folds)
    dept, keys = _by_department(source, scope)
    counters = [c for c in rollups.DROPOFF_DAYS.counters]
    query = select(
        dept, source.c.category, source.c.campaign_id, *[_sum(source.c[c]) for c in counters]
    ).group_by(*keys, source.c.category, source.c.campaign_id)
    for dept_id, category, campaign, *sums in await _rows(session, query):
        figures, found = groups[dept_id], dict(zip(counters, sums, strict=True))
        for status in rollups.DROPOFF_STATUSES:
            figures.add_status(status, found[f"{status}_count"], found[f"{status}_points"])
        quantity, count = found["confirmed_quantity"], found["confirmed_count"]
        was = figures.categories.get(category)
        figures.categories[category] = CategoryRow(
            category,
            CATEGORIES[category].unit.value if category in CATEGORIES else "",
            quantity + (was.quantity if was else 0),
            count + (was.count if was else 0),
            found["confirmed_points"] + (was.points if was else 0),
            None,  # CO2e: once every campaign's quantity is in
        )
        figures.by_campaign[category][campaign] += quantity


async def _day_series(
    session: AsyncSession, scope: str | None, period: Period
) -> dict[date, dict[str, int]]:
    """Each day: drop-offs logged (all, confirmed, their grams and items), points issued and
    points spent (from day rows: a series needs its days)."""
    source = _period_source(session, rollups.DAYS, scope, period, Folds())
    names = (
        "dropoffs",
        "dropoffs_confirmed",
        "paper_grams",
        "items",
        "points_issued",
        "points_spent",
    )
    query = select(source.c.day, *[_sum(source.c[n]) for n in names]).group_by(source.c.day)
    return {
        _day(day): dict(zip(names, sums, strict=True)) for day, *sums in await _rows(session, query)
    }


def _day(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


async def _station_rows(
    session: AsyncSession, department_id: str, period: Period, folds: Folds
) -> tuple[StationRow, ...]:
    source = _period_source(session, rollups.STATION_DAYS, department_id, period, folds)
    counters = rollups.STATION_DAYS.counters
    query = (
        select(source.c.station_id, func.coalesce(S.c.name, source.c.station_id))
        .add_columns(*[_sum(source.c[c]) for c in counters])
        .outerjoin(S, and_(S.c.department_id == department_id, S.c.id == source.c.station_id))
        .group_by(source.c.station_id, S.c.name)
    )
    rows = [StationRow(*row) for row in await _rows(session, query)]
    return tuple(sorted(rows, key=lambda row: (-row.dropoffs, row.name, row.station_id)))


_DAY_COUNTERS = rollups.DAYS.counters


async def _movements(
    session: AsyncSession,
    scope: str | None,
    period: Period,
    folds: Folds,
    groups: dict[str, _Dept],
) -> None:
    """Points by movement and orders by status in the period."""
    source = _period_source(session, rollups.DAYS, scope, period, folds)
    dept, keys = _by_department(source, scope)
    query = select(dept, *[_sum(source.c[c]) for c in _DAY_COUNTERS]).group_by(*keys)
    for dept_id, *sums in await _rows(session, query):
        figures, found = groups[dept_id], dict(zip(_DAY_COUNTERS, sums, strict=True))
        figures.issued += found["points_issued"]
        figures.rejected += found["points_rejected"]
        figures.spent += found["points_spent"]
        figures.released += found["points_released"]
        figures.expired += found["points_expired"]
        for status in rollups.ORDER_STATUSES:
            figures.add_order_status(
                status, found[f"orders_{status}"], found[f"orders_{status}_points"]
            )


async def _balances_at_end(
    session: AsyncSession,
    scope: str | None,
    period: Period,
    folds: Folds,
    groups: dict[str, _Dept],
) -> None:
    """Points held by open orders and the employees' posted balances at the end of the
    period: everything placed, issued, spent, released and expired before it."""
    end_day, part = period.before_end
    before = folds.cover(date.min, end_day - timedelta(days=1))
    source = _source(session, rollups.DAYS, scope, before, [part] if part else [])
    dept, keys = _by_department(source, scope)
    placed = sum(source.c[f"orders_{status}_points"] for status in rollups.ORDER_STATUSES)
    query = select(
        dept,
        _sum(source.c.points_issued - source.c.points_spent - source.c.points_expired),
        _sum(placed - source.c.points_spent - source.c.points_released),
    ).group_by(*keys)
    for dept_id, outstanding, held in await _rows(session, query):
        groups[dept_id].outstanding += outstanding
        groups[dept_id].held += held


async def _participants(
    session: AsyncSession, scope: str | None, period: Period, groups: dict[str, _Dept]
) -> None:
    """Distinct employees with a confirmed drop-off logged, or an order placed, in the
    period: from a year's, a month's or a day's row of each, and the raw rows of part-days."""
    p = PARTICIPANTS.c
    spans = [
        and_(p.span == span, p.start_day.between(first, last))
        for span, first, last in period.spans()
    ]
    parts: list[Any] = [
        select(
            p.department_id,
            p.user_id,
            case((p.dropoffs > 0, 1), else_=0).label("dropped"),
            case((p.orders > 0, 1), else_=0).label("ordered"),
        ).where(
            # For the platform, every department's rows through the key (a join with the
            # departments), not a scan of every employee's day rows.
            _in_scope(PARTICIPANTS, scope)
            if scope
            else PARTICIPANTS.c.department_id.in_(select(DEPT.c.id)),
            or_(false(), *spans),
        )
    ]
    if period.windows:
        parts += [
            select(D.c.department_id, D.c.user_id, literal(1), literal(0)).where(
                _in_scope(D, scope),
                D.c.status == CONFIRMED,
                _during(D.c.created_at, period.windows),
            ),
            select(O.c.department_id, O.c.user_id, literal(0), literal(1)).where(
                _in_scope(O, scope), _during(O.c.created_at, period.windows)
            ),
        ]
    rows = union_all(*parts).subquery()
    query = select(
        rows.c.department_id,
        func.count(func.distinct(case((rows.c.dropped == 1, rows.c.user_id)))),
        func.count(func.distinct(case((rows.c.ordered == 1, rows.c.user_id)))),
    ).group_by(rows.c.department_id)
    for dept_id, participants, ordered in await _rows(session, query):
        groups[dept_id].participants += participants
        groups[dept_id].ordered += ordered
    members = (
        select(U.c.department_id, func.count())
        .join(R, and_(R.c.user_id == U.c.id, R.c.role == Role.employee.value))
        .where(
            _in_scope(U, scope) if scope else U.c.department_id.is_not(None),
            U.c.is_active.is_(True),
        )
        .group_by(U.c.department_id)
    )
    for dept_id, count in await _rows(session, members):
        groups[dept_id].members = count


async def _first_timers(
    session: AsyncSession, scope: str | None, period: Period
) -> dict[date, int]:
    """Employees whose first confirmed drop-off ever was logged on each day of the period."""
    query = (
        select(FIRST.c.first_day, func.count())
        .where(
            _in_scope(FIRST, scope), FIRST.c.first_day.between(period.first_day, period.last_day)
        )
        .group_by(FIRST.c.first_day)
    )
    return {_day(day): count for day, count in await _rows(session, query)}


async def _products(
    session: AsyncSession,
    scope: str | None,
    period: Period,
    folds: Folds,
    groups: dict[str, _Dept],
) -> tuple[ProductRow, ...]:
    """Orders picked up in the period, per product, at the values snapshotted into them."""
    source = _period_source(session, rollups.PRODUCT_DAYS, scope, period, folds)
    dept, keys = _by_department(source, scope)
    query = select(
        dept,
        source.c.product_id,
        func.max(source.c.product_name),
        func.max(source.c.product_unit),
        _sum(source.c.picked_up),
        _sum(source.c.quantity),
        _sum(source.c.points),
        _sum(source.c.value_fen),
    ).group_by(*keys, source.c.product_id)
    products: dict[str, ProductRow] = {}
    for dept_id, product_id, name, unit, orders, quantity, points, value in await _rows(
        session, query
    ):
        groups[dept_id].value_fen += value
        if orders:
            products[product_id] = ProductRow(
                product_id, name, unit, orders, quantity, points, value
            )
    return tuple(sorted(products.values(), key=lambda r: (-r.value_fen, r.name, r.product_id)))


# --- assembling -------------------------------------------------------------------------------


def _category_rows(
    figures: _Dept, period: Period, factors: co2e.FactorSet, remanufacturing: set[str]
) -> tuple[CategoryRow, ...]:
    rows = []
    for code, kind in CATEGORIES.items():  # the fixed category order
        row = figures.categories.get(code) or CategoryRow(code, kind.unit.value, 0, 0, 0, None)
        avoided = factors.avoided(
            code, period.last_day, figures.by_campaign.get(code, {}), remanufacturing
        )
        rows.append(
            CategoryRow(row.category, row.unit, row.quantity, row.count, row.points, avoided)
        )
    return tuple(rows)


def _merge(groups: dict[str, _Dept]) -> _Dept:
    total = _Dept()
    for figures in groups.values():
        for status in figures.status.values():
            total.add_status(status.status, status.count, status.points)
        for status in figures.orders.values():
            total.add_order_status(status.status, status.count, status.points)
        for code, row in figures.categories.items():
            was = total.categories.get(code)
            total.categories[code] = CategoryRow(
                code,
                row.unit,
                row.quantity + (was.quantity if was else 0),
                row.count + (was.count if was else 0),
                row.points + (was.points if was else 0),
                None,
            )
        for code, campaigns in figures.by_campaign.items():
            for campaign, quantity in campaigns.items():
                total.by_campaign[code][campaign] += quantity
        for name in _ADDITIVE:
            setattr(total, name, getattr(total, name) + getattr(figures, name))
    return total


def _statuses(found: dict[str, StatusCount], statuses: Sequence[str]) -> tuple[StatusCount, ...]:
    return tuple(found.get(s, StatusCount(s, 0, 0)) for s in statuses)


async def _report(
    session: AsyncSession, scope: str | None, period: Period, factors: co2e.FactorSet
) -> tuple[Report, dict[str, _Dept], set[str]]:
    groups: dict[str, _Dept] = defaultdict(_Dept)
    folds = await months.folds(await session.connection(), scope)
    await _dropoffs(session, scope, period, folds, groups)
    series = await _day_series(session, scope, period)
    await _movements(session, scope, period, folds, groups)
    await _balances_at_end(session, scope, period, folds, groups)
    await _participants(session, scope, period, groups)
    first = await _first_timers(session, scope, period)
    products = await _products(session, scope, period, folds, groups)
    remanufacturing = await co2e.remanufacturing_campaigns(session)
    total = _merge(groups)
    quiet: dict[str, int] = {}
    days = tuple(
        DayRow(
            day,
            dropoffs=series.get(day, quiet).get("dropoffs", 0),
            confirmed=series.get(day, quiet).get("dropoffs_confirmed", 0),
            paper_grams=series.get(day, quiet).get("paper_grams", 0),
            items=series.get(day, quiet).get("items", 0),
            points_issued=series.get(day, quiet).get("points_issued", 0),
            points_spent=series.get(day, quiet).get("points_spent", 0),
            first_time=first.get(day, 0),
        )
        for day in period.days
    )
    report = Report(
        department_id=scope,
        period=period,
        dropoffs_by_status=_statuses(total.status, rollups.DROPOFF_STATUSES),
        categories=_category_rows(total, period, factors, remanufacturing),
        stations=await _station_rows(session, scope, period, folds) if scope else (),
        days=days,
        participation=Participation(
            members=total.members,
            participants=total.participants,
            rate_permille=rate_permille(total.participants, total.members),
            ordered=total.ordered,
        ),
        points=PointsSummary(
            issued=total.issued,
            pending=total.status.get(DropoffStatus.pending.value, StatusCount("", 0, 0)).points,
            rejected=total.rejected,
            spent=total.spent,
            held=total.held,
            released=total.released,
            expired=total.expired,
            outstanding=total.outstanding,
        ),
        orders_by_status=_statuses(total.orders, rollups.ORDER_STATUSES),
        products=products,
        factor_set=factors,
    )
    return report, groups, remanufacturing


async def department_report(
    session: AsyncSession,
    caller: Identity,
    department_id: str,
    period: Period,
    *,
    factor_set: str | None = None,
) -> Report:
    """One department's report, with the current CO2e factors or the set named.

    The one access check: another department's is indistinguishable from a missing one
    (NotFound)."""
    await get_department(session, caller, department_id)
    factors = await co2e.factor_set(session, factor_set)
    report, _, _ = await _report(session, department_id, period, factors)
    return report


async def platform_report(
    session: AsyncSession,
    period: Period,
    *,
    sort: str = "name",
    descending: bool = False,
    factor_set: str | None = None,
) -> PlatformReport:
    """Every department's totals side by side, and the platform's totals."""
    factors = await co2e.factor_set(session, factor_set)
    totals, groups, remanufacturing = await _report(session, None, period, factors)
    names = await _rows(session, select(DEPT.c.id, DEPT.c.name))
    rows = []
    for dept, name in names:
        figures = groups.get(dept, _Dept())
        categories = _category_rows(figures, period, factors, remanufacturing)
        rows.append(
            DepartmentRow(
                department_id=dept,
                name=name,
                members=figures.members,
                participants=figures.participants,
                rate_permille=rate_permille(figures.participants, figures.members),
                paper_grams=sum(c.quantity for c in categories if c.unit == Unit.gram.value),
                items=sum(c.quantity for c in categories if c.unit != Unit.gram.value),
                points_issued=figures.issued,
                points_spent=figures.spent,
                points_expired=figures.expired,
                value_fen=figures.value_fen,
                co2e_grams=sum(c.co2e_grams or 0 for c in categories),
            )
        )
    return PlatformReport(totals=totals, departments=sort_departments(rows, sort, descending))


# --- small totals for the employee home page and the coordinator dashboard ------------------


async def member_totals(session: AsyncSession, department_id: str, user_id: str) -> MemberTotals:
    """An employee's own drop-offs and orders, all time: their rows, by their index."""
    confirmed = D.c.status == CONFIRMED
    quantity = func.coalesce(D.c.confirmed_quantity, D.c.quantity)
    paper = D.c.unit == Unit.gram.value
    ((dropoffs, n_confirmed, paper_grams, items, earned),) = await _rows(
        session,
        select(
            func.count(),
            _sum(case((confirmed, 1), else_=0)),
            _sum(case((and_(confirmed, paper), quantity), else_=0)),
            _sum(case((and_(confirmed, ~paper), quantity), else_=0)),
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
    return MemberTotals(dropoffs, n_confirmed, paper_grams, items, earned, orders, spent)


async def day_totals(
    session: AsyncSession, caller: Identity, department_id: str, day: date
) -> DayTotals:
    report = await department_report(session, caller, department_id, Period.of_days(day, day))
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
    pending = DropoffStatus.pending.value
    return DayTotals(
        dropoffs=dropoffs[CONFIRMED] + dropoffs[pending],
        confirmed=dropoffs[CONFIRMED],
        pending=dropoffs[pending],
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

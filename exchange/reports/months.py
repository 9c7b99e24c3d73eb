"""Month rows: the day rollups folded per month, so that a year reads 12 rows per key, not 365.

The triggers keep only the day rows (one upsert per counter row a write changes: issue 14's
budget); the month rows cost the write path nothing. The sweep folds each month once it has
ended (`fold_closed`), in one transaction:

1. it deletes the month's stale marks (below), then
2. replaces the month rows by the sums of the month's day rows, and records the month as
   folded (`report_folded_months`).

A write can still land in an ended month: a steward confirms last month's drop-off, an order
placed on the 31st is picked up on the 2nd, an order expires. Such a write does not touch the
month rows; its trigger marks the department's month stale (`report_stale_months`) whenever
a day row it may change lies before the current month by the database's clock, and a
report reads a stale month from its day rows until the next sweep folds it again. Why this
is exact under concurrency (PostgreSQL, READ COMMITTED):

- a write that judged its month current ran its trigger before the month ended and commits
  at once; the sweep folds a month only `GRACE` after its end, so the fold sees that write;
- a late write marks the month with an upsert that locks the mark (`DO UPDATE`, not `DO
  NOTHING`): a fold deleting that mark waits for the write to commit and then reads the day
  rows with a snapshot that includes it; a write marking after the fold's delete either
  waits for the fold to commit or inserts a fresh mark, which outlives the fold. Either the
  fold saw the write, or the month stays marked.

Reports (`Folds.cover`) read the whole folded, unmarked months of a period from month rows
and every other day from day rows. `check` compares the month rows of every folded month
that is not marked with the sums of the day rows (which `rollups.check` compares with the raw
rows).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, and_, delete, func, insert, literal, not_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.models import utcnow
from exchange.models import ReportFoldedMonth, ReportStaleMonth
from exchange.reports import rollups
from exchange.reports.rollups import Difference, Rollup

FOLDED = ReportFoldedMonth.__table__  # type: ignore[attr-defined]
STALE = ReportStaleMonth.__table__  # type: ignore[attr-defined]
# How long after a month's end the sweep folds it: far longer than a trigger, which runs at
# the commit, takes to commit, so a write that found its month current is always seen.
GRACE = timedelta(hours=1)
FOLD_LOCK_KEY = 0x666F6C64  # "fold" in ASCII: pg_advisory_xact_lock of a fold
# More stale departments than this in one month: a report reads the whole month from day rows.
MOST_STALE = 20


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_of(day: date) -> date:
    return day.replace(day=1)


# --- folding ----------------------------------------------------------------------------------


def _aggregate(how: str, column: Any) -> Any:
    return {"sum": func.sum, "max": func.max, "min": func.min}[how](column)


def fold_statements(month: date, departments: Sequence[str] | None = None) -> list[Any]:
    """Replace the month rows of `month` (every department's, or those given) by the sums of
    their day rows; the stale marks go first (see the module's docstring)."""
    first = literal(month, sa.Date)
    statements: list[Any] = []

    def scoped(table: Any) -> ColumnElement[bool]:
        return table.c.department_id.in_(departments) if departments is not None else true()

    statements.append(delete(STALE).where(STALE.c.month == month, scoped(STALE)))
    for rollup in rollups.FOLDED:
        days, months = rollup.table, rollup.months
        assert months is not None
        keys = [days.c[k] for k in rollup.keys if k != "day"]
        values = [_aggregate(how, days.c[c]).label(c) for c, how in rollup.values.items()]
        folded = (
            select(*keys, first.label("day"), *values)
            .where(days.c.day >= month, days.c.day < next_month(month), scoped(days))
            .group_by(*keys)
        )
        statements += [
            delete(months).where(months.c.day == month, scoped(months)),
            insert(months).from_select([*rollup.keys, *rollup.values], folded),
        ]
    if departments is None:
        statements += [
            delete(FOLDED).where(FOLDED.c.month == month),
            insert(FOLDED).values(month=month, folded_at=utcnow()),
        ]
    return statements


def horizon_sql(dialect: str) -> str:
    """The first day of the month that (now - GRACE) falls in, Asia/Shanghai, by the
    database's clock (the one the triggers use): every month before it is closed."""
    hours = int(GRACE.total_seconds() // 3600)
    if dialect == "postgresql":
        return (
            f"SELECT CAST(date_trunc('month', (now() - interval '{hours} hours') "
            "AT TIME ZONE 'Asia/Shanghai') AS date)"
        )
    return f"SELECT date('now', '+8 hours', '-{hours} hours', 'start of month')"


def _date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def plan(
    horizon: date,
    folded: set[date],
    marks: Sequence[tuple[date, str]],
    earliest: date | None,
) -> list[tuple[date, tuple[str, ...] | None]]:
    """What to fold, given the first month not closed, the months folded, the stale marks
    (month, department) and the earliest day with day rows: every closed month after the
    last folded one (all departments), and the stale departments of folded months."""
    stale: defaultdict[date, list[str]] = defaultdict(list)
    for month, department in marks:
        if month < horizon:
            stale[month].append(department)
    start = next_month(max(folded)) if folded else earliest and month_of(earliest)
    months: dict[date, tuple[str, ...] | None] = {}
    while start is not None and start < horizon:
        months[start] = None
        start = next_month(start)
    for month, departments in stale.items():
        # A month never folded (a write dated before the first fold) is folded whole.
        months.setdefault(month, tuple(sorted(departments)) if month in folded else None)
    return sorted(months.items())


def _inputs() -> tuple[Any, Any, Any]:
    return (
        select(FOLDED.c.month),
        select(STALE.c.month, STALE.c.department_id),
        select(func.min(rollups.DAYS.table.c.day)),
    )


async def to_fold(conn: AsyncConnection) -> list[tuple[date, tuple[str, ...] | None]]:
    folded, marks, earliest = _inputs()
    horizon = (await conn.exec_driver_sql(horizon_sql(conn.dialect.name))).scalar_one()
    first = (await conn.execute(earliest)).scalar()
    return plan(
        _date(horizon),
        {_date(m) for m in (await conn.execute(folded)).scalars()},
        [(_date(m), d) for m, d in (await conn.execute(marks)).all()],
        _date(first) if first is not None else None,
    )


def to_fold_sync(conn: sa.Connection) -> list[tuple[date, tuple[str, ...] | None]]:
    """`to_fold` on a synchronous connection (a migration's)."""
    folded, marks, earliest = _inputs()
    horizon = conn.exec_driver_sql(horizon_sql(conn.dialect.name)).scalar_one()
    first = conn.execute(earliest).scalar()
    return plan(
        _date(horizon),
        {_date(m) for m in conn.execute(folded).scalars()},
        [(_date(m), d) for m, d in conn.execute(marks).all()],
        _date(first) if first is not None else None,
    )


async def fold_closed(conn: AsyncConnection) -> int:
    """Fold what `to_fold` finds, in the caller's transaction; how many months. On
    PostgreSQL two folds (two sweepers for a moment, a rebuild) take turns: the second plans
    once the first has committed."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(FOLD_LOCK_KEY)))
    work = await to_fold(conn)
    for month, departments in work:
        for statement in fold_statements(month, departments):
            await conn.execute(statement)
    return len(work)


async def refold(conn: AsyncConnection) -> int:
    """Forget every month row and mark, and fold every closed month again (after a rebuild
    of the day rows)."""
    await conn.execute(delete(FOLDED))
    await conn.execute(delete(STALE))
    for rollup in rollups.FOLDED:
        assert rollup.months is not None
        await conn.execute(delete(rollup.months))
    return await fold_closed(conn)


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Folds:
    """The folded months and, per month, the departments whose month rows are stale."""

    months: frozenset[date] = frozenset()
    stale: dict[date, frozenset[str]] = field(default_factory=dict)

    def cover(self, first: date, last: date) -> Cover:
        """How to read the days first..last: the whole folded months in it from month rows
        (but a department's stale month from its day rows), every other day from day rows."""
        earliest = min(self.months, default=None)
        if earliest is not None and not any(m < earliest for m in self.stale):
            # The first fold began at the earliest day row, and a write dated before a folded
            # month marks its month: there are no unmarked day rows before the first one.
            first = max(first, earliest)
        whole = sorted(
            m
            for m in self.months
            if m >= first and next_month(m) - timedelta(days=1) <= last
            and len(self.stale.get(m, ())) <= MOST_STALE
        )  # fmt: skip
        return Cover(
            first, last, tuple(whole), {m: self.stale[m] for m in whole if m in self.stale}
        )


async def folds(conn: Any, department_id: str | None) -> Folds:
    """The folds a report reads by (`conn`: a session or a connection)."""
    months = frozenset(_date(m) for m in (await conn.execute(select(FOLDED.c.month))).scalars())
    marks = select(STALE.c.month, STALE.c.department_id)
    if department_id is not None:
        marks = marks.where(STALE.c.department_id == department_id)
    stale: defaultdict[date, set[str]] = defaultdict(set)
    for month, department in (await conn.execute(marks)).all():
        stale[_date(month)].add(department)
    return Folds(months, {m: frozenset(d) for m, d in stale.items()})


def _ranges(months: Sequence[date]) -> list[tuple[date, date]]:
    """Consecutive months as (first day, last day) ranges."""
    found: list[tuple[date, date]] = []
    for month in months:
        last = next_month(month) - timedelta(days=1)
        if found and found[-1][1] + timedelta(days=1) == month:
            found[-1] = (found[-1][0], last)
        else:
            found.append((month, last))
    return found


@dataclass(frozen=True)
class Cover:
    first: date
    last: date
    months: tuple[date, ...]  # whole folded months, read from month rows
    stale: dict[date, frozenset[str]]  # of those, the departments read from day rows

    def month_rows(self, table: Any) -> ColumnElement[bool] | None:
        """Which month rows to read (None: none)."""
        if not self.months:
            return None
        return and_(
            table.c.day.in_(self.months),
            *(
                not_(and_(table.c.day == m, table.c.department_id.in_(sorted(d))))
                for m, d in self.stale.items()
            ),
        )

    def day_rows(self, table: Any) -> ColumnElement[bool] | None:
        """Which day rows to read (None: none, when folded months cover every day)."""
        covered = _ranges(self.months)
        gaps, day = [], self.first
        for start, end in covered:
            if day < start:
                gaps.append((day, start - timedelta(days=1)))
            day = end + timedelta(days=1)
        if day <= self.last:
            gaps.append((day, self.last))
        parts = [table.c.day.between(a, b) for a, b in gaps]
        parts += [
            and_(
                table.c.department_id.in_(sorted(d)),
                table.c.day.between(m, next_month(m) - timedelta(days=1)),
            )
            for m, d in self.stale.items()
        ]
        return or_(*parts) if parts else None


# --- checking ---------------------------------------------------------------------------------


def _significant(rollup: Rollup, rows: Sequence[Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    found = {}
    for row in rows:
        mapping = row._mapping
        values = {c: mapping[c] for c in rollup.values}
        if not any(values[c] for c in rollup.counters):
            continue
        key = tuple(_date(v) if k == "day" else v for k, v in zip(rollup.keys, row, strict=False))
        found[key] = values
    return found


async def check(conn: AsyncConnection) -> list[Difference]:
    """Every month row of a folded month, not marked stale, that differs from the sums of
    its day rows; and any month row of a month not folded."""
    found = await folds(conn, None)
    differences = []
    for rollup in rollups.FOLDED:
        days, months = rollup.table, rollup.months
        assert months is not None
        keys = [days.c[k] for k in rollup.keys if k != "day"]
        if conn.dialect.name == "postgresql":
            month = sa.cast(func.date_trunc("month", days.c.day), sa.Date).label("day")
        else:  # SQLite's CAST(… AS DATE) would make a number of the text
            month = sa.type_coerce(func.date(days.c.day, "start of month"), sa.Date).label("day")
        values = [
            sa.cast(_aggregate(how, days.c[c]), days.c[c].type).label(c)
            for c, how in rollup.values.items()
        ]
        summed = select(*keys, month, *values).group_by(*keys, month)
        columns = [months.c[c] for c in (*rollup.keys, *rollup.values)]
        stored = _significant(rollup, (await conn.execute(select(*columns))).all())
        fresh = _significant(rollup, (await conn.execute(summed)).all())
        day_at = rollup.keys.index("day")
        for key in sorted(set(stored) | set(fresh), key=repr):
            start, department = key[day_at], key[0]
            if key in stored and start not in found.months:
                differences.append(Difference(months.name, key, stored[key], None))
            elif (
                start in found.months
                and department not in found.stale.get(start, ())
                and stored.get(key) != fresh.get(key)
            ):
                differences.append(Difference(months.name, key, stored.get(key), fresh.get(key)))
    return differences

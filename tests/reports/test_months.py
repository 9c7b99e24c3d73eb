"""Month rows: the sweep folds each ended month's day rollups into one row per key, a write
that lands in an ended month marks the department's month stale (read from day rows until
the sweep folds it again), and the month rows a report may read always equal the day rows
they stand for — after any sequence of writes and folds, and with writers racing a fold on
PostgreSQL.

"Ended" is by the database's clock (the triggers' and the sweep's), so these shops open
months before today: every month they write in has ended, or ends while the writes go on."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from api import db
from api.sweep import sweep_once
from catalog.identity import Identity
from catalog.models import DepartmentStatus, Role
from exchange import reports
from exchange.models import Dropoff
from exchange.reports import months, rollups
from tests.reports.test_rollups import (
    Factory,
    Shop,
    assert_check_names_a_change_and_rebuild_mends_it,
    assert_rollups_equal_the_raw_rows,
    open_shop,
    operations,
    step,
)

AUDITOR = Identity(
    user_id="auditor",
    username="auditor",
    display_name="审计",
    department_id=None,
    department_status=DepartmentStatus.approved,
    roles=frozenset({Role.auditor}),
)


@pytest.fixture
async def past_shop(session_factory: Factory) -> Shop:
    return await open_shop(session_factory, months_ago(7))


def months_ago(n: int) -> datetime:
    """01:00 UTC on the first day of the month n months before this one."""
    today = datetime.now(UTC)
    year, month = divmod(today.year * 12 + today.month - 1 - n, 12)
    return datetime(year, month + 1, 1, 1, 0, tzinfo=UTC)


async def fold(session_factory: Factory) -> int:
    async with db.transaction(session_factory) as session:
        return await months.fold_closed(await session.connection())


async def stale_marks(engine: AsyncEngine) -> set[tuple[str, date]]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(months.STALE.c.department_id, months.STALE.c.month))
        return {(dept, month) for dept, month in rows}


async def assert_equal_before_and_after_a_last_fold(
    engine: AsyncEngine, session_factory: Factory
) -> None:
    """The rows in use equal the raw rows; one more fold leaves no month marked stale, and
    they still do."""
    await assert_rollups_equal_the_raw_rows(engine)
    await fold(session_factory)
    assert await stale_marks(engine) == set()
    await assert_rollups_equal_the_raw_rows(engine)


async def report(session_factory: Factory, dept: str, first: date, last: date) -> reports.Report:
    async with db.transaction(session_factory) as session:
        period = reports.Period.of_days(first, last)
        return await reports.department_report(session, AUDITOR, dept, period)


def confirmed(found: reports.Report) -> tuple[int, int]:
    (status,) = [s for s in found.dropoffs_by_status if s.status == "confirmed"]
    return status.count, status.points


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.one_of(
            operations(st.integers(0, 3000)),  # up to two days apart: months go by
            st.tuples(st.just("fold"), st.integers(0, 1), st.integers(0, 3000)),
        ),
        max_size=25,
    )
)
async def test_month_rows_in_use_equal_the_day_rows_after_any_sequence_of_writes_and_folds(
    past_shop: Shop,
    session_factory: Factory,
    engine: AsyncEngine,
    steps: list[tuple],  # type: ignore[type-arg]
) -> None:
    # Examples follow each other in one shop opened seven months ago (the clock only moves
    # forward): confirmations, pickups, cancellations and expiries land in months already
    # folded, and by the last examples writes land in this month.
    shop = past_shop
    for op in steps:
        if op[0] == "fold":
            shop.clock += timedelta(minutes=op[-1])
            await fold(session_factory)
        else:
            await step(shop, session_factory, op)
    await assert_equal_before_and_after_a_last_fold(engine, session_factory)


async def test_a_late_write_is_read_from_day_rows_until_the_sweep_folds_its_month_again(
    session_factory: Factory, engine: AsyncEngine
) -> None:
    shop = await open_shop(session_factory, months_ago(3))
    steward = next(iter(shop.employees))  # drop-offs wait for a steward
    for n in range(4):
        await step(shop, session_factory, ("drop", 0, n, "paper", 1000 * n, False, 60))
    await step(shop, session_factory, ("confirm", 0, 0, 0, 5))
    month = months_ago(3).date()
    last = months.next_month(month) - timedelta(days=1)
    await sweep_once(session_factory)  # the sweep folds every ended month
    async with engine.connect() as conn:
        folded = set((await conn.execute(sa.select(months.FOLDED.c.month))).scalars())
    assert {month, months.next_month(month)} <= folded
    assert await stale_marks(engine) == set()
    before = confirmed(await report(session_factory, steward, month, last))
    assert before[0] == 1

    # A steward confirms a drop-off of that month today: the month is marked, and the report
    # reads it from its day rows.
    shop.clock = datetime.now(UTC)
    await step(shop, session_factory, ("confirm", 0, 1, 0, 0))
    assert await stale_marks(engine) == {(steward, month)}
    await assert_rollups_equal_the_raw_rows(engine)
    after = confirmed(await report(session_factory, steward, month, last))
    assert after[0] == 2 and after[1] > before[1]

    # The next sweep folds it again; the figures stay.
    await sweep_once(session_factory)
    assert await stale_marks(engine) == set()
    await assert_rollups_equal_the_raw_rows(engine)
    assert confirmed(await report(session_factory, steward, month, last)) == after

    # What the report reads for the whole month is the month row: change it and both the
    # report and the check see it.
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(rollups.DROPOFF_DAYS.months)  # type: ignore[arg-type]
            .where(rollups.DROPOFF_DAYS.months.c.department_id == steward)  # type: ignore[union-attr]
            .values(confirmed_count=rollups.DROPOFF_DAYS.months.c.confirmed_count + 5)  # type: ignore[union-attr]
        )
    assert confirmed(await report(session_factory, steward, month, last)) == (7, after[1])
    async with engine.connect() as conn:
        differences = await rollups.check(conn)
    assert {d.rollup for d in differences} == {"report_dropoff_months"}
    # A period of a month less its last day reads day rows only.
    assert confirmed(await report(session_factory, steward, month, last - timedelta(1))) == after


async def test_writers_racing_a_fold_leave_no_folded_month_behind_its_day_rows(
    pg_session_factory: Factory, pg_engine: AsyncEngine
) -> None:
    """On PostgreSQL, confirmations, rejections, pickups and cancellations of an ended
    month's drop-offs and orders commit while the sweep folds that month again and again:
    whatever the interleaving, a folded month that is not marked equals its day rows."""
    shop = await open_shop(pg_session_factory, months_ago(2))
    for n in range(20):
        await step(shop, pg_session_factory, ("drop", 0, n, "paper", 700 * n, False, 30))
        await step(shop, pg_session_factory, ("order", 1, n, n % 2, 1, False, 30))
    await fold(pg_session_factory)
    shop.clock = datetime.now(UTC)
    writes = [("confirm", 0, n, 0, 0) for n in range(0, 20, 2)]
    writes += [("reject", 0, n, 0, 0) for n in range(1, 20, 4)]
    writes += [("pickup", 1, n, 0) for n in range(0, 20, 3)]
    writes += [("cancel", 1, n, 0) for n in range(1, 20, 3)]
    await asyncio.gather(
        *(step(shop, pg_session_factory, op) for op in writes),
        *(fold(pg_session_factory) for _ in range(6)),
    )
    await assert_equal_before_and_after_a_last_fold(pg_engine, pg_session_factory)


async def test_the_sweep_folds_a_month_marked_before_the_first_fold_whole(
    session_factory: Factory, engine: AsyncEngine
) -> None:
    """A write dated before every folded month (nothing folded it) is folded with its whole
    month, for every department."""
    shop = await open_shop(session_factory, months_ago(2))
    await step(shop, session_factory, ("drop", 1, 0, "paper", 900, False, 0))
    await fold(session_factory)
    earlier = months_ago(4)
    dropoffs = Dropoff.__table__
    async with engine.begin() as conn:  # a drop-off moved two months back, as any writer may
        await conn.execute(
            sa.update(dropoffs).values(
                local_day=earlier.date().isoformat(), created_at=earlier, decided_at=earlier
            )
        )
    marks = await stale_marks(engine)
    assert {month for _, month in marks} == {earlier.date(), months_ago(2).date()}
    await fold(session_factory)
    async with engine.connect() as conn:
        folded = set((await conn.execute(sa.select(months.FOLDED.c.month))).scalars())
    assert earlier.date() in folded
    assert await stale_marks(engine) == set()
    await assert_rollups_equal_the_raw_rows(engine)


def test_exchange_reports_check_exits_1_on_a_month_row_and_rebuild_folds_it_again(
    database_url: str, tmp_path: Path
) -> None:
    async def three_drop_offs_folded(factory: Factory) -> None:
        shop = await open_shop(factory, months_ago(2))
        for n in range(3):
            await step(shop, factory, ("drop", 1, n, "ink_cartridge", n, False, 60))
        await fold(factory)

    assert_check_names_a_change_and_rebuild_mends_it(
        database_url, tmp_path / "data", "report_months", three_drop_offs_folded
    )

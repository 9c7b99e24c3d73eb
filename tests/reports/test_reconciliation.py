"""The report, read from drop-offs and orders, agrees with the department's ledger: points
issued, spent, held, expired and outstanding equal sums of ledger entries and balances for
the period, on SQLite and PostgreSQL."""

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

import ledger
from api import db
from exchange import reports
from exchange.expiry import EXPIRY, sweep_expiry
from exchange.models import Campaign
from exchange.points import ISSUANCE, REDEMPTION
from exchange.reports import rollups
from ledger.encoding import Entry
from tests.conftest import World
from tests.reports.seed import at, auditor, seed


async def _entries(session: AsyncSession, department_id: str, **filters: object) -> list[Entry]:
    entries: list[Entry] = []
    after = None
    while True:
        page = await ledger.list_entries(
            session,
            department_id,
            after=after,
            limit=500,
            **filters,  # type: ignore[arg-type]
        )
        entries += page.entries
        if page.next is None:
            return entries
        after = page.next


PERIODS = [
    {"date_from": "2026-06-08", "date_to": "2026-06-10"},
    {"date_from": "2026-06-09", "date_to": "2026-06-09"},
    {"date_from": "2026-06-11", "date_to": "2026-06-30"},
    {"date_from": "2026-05-01", "date_to": "2026-06-04"},
]


async def test_points_issued_spent_held_and_outstanding_equal_the_ledger(
    world: World, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    seeded = await seed(session_factory, world.dept_a, world.dept_b)
    dept = world.dept_a
    async with db.transaction(session_factory) as session:
        periods = [await reports.resolve_period(session, dept, **p) for p in PERIODS]
        periods.append(await reports.resolve_period(session, dept, campaign=seeded.campaign_id))
        for period in periods:
            report = await reports.department_report(session, await auditor(session), dept, period)
            ledger_figures = await _from_the_ledger(session, dept, period)
            assert _figures(report) == ledger_figures, period
    # The seed moved points in every one of these periods but the last date range.
    assert ledger_figures == (262, 130, 30, 132, 0)


def _figures(report: reports.Report) -> tuple[int, int, int, int, int]:
    p = report.points
    return p.issued, p.spent, p.held, p.outstanding, p.expired


async def test_points_expired_by_the_sweep_are_in_the_report_and_equal_the_ledger(
    world: World, session_factory: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    """The campaign's points expire on 06-20: what was left of them moves to the expiry
    account, the reports of the periods around it show it as expired (and no longer
    outstanding), and the rollups still equal their recomputation."""
    seeded = await seed(session_factory, world.dept_a, world.dept_b)
    dept = world.dept_a
    async with db.transaction(session_factory) as session:
        conn = await session.connection()
        await conn.execute(
            update(Campaign.__table__)
            .where(Campaign.__table__.c.id == seeded.campaign_id)
            .values(points_expire_at=at(20, 0))
        )
    swept = await sweep_expiry(session_factory, at(20, 12))
    # emp-a and emp-a2 of department A and emp-b of department B had points of it left.
    assert swept.expired == 3 and swept.points > 0
    async with engine.connect() as conn:
        assert await rollups.check(conn) == []
    async with db.transaction(session_factory) as session:
        periods = {
            p["date_from"]: await reports.resolve_period(session, dept, **p)
            for p in (
                {"date_from": "2026-06-20", "date_to": "2026-06-20"},
                {"date_from": "2026-06-01", "date_to": "2026-06-30"},
                {"date_from": "2026-06-08", "date_to": "2026-06-10"},
            )
        }
        for period in periods.values():
            report = await reports.department_report(session, await auditor(session), dept, period)
            assert _figures(report) == await _from_the_ledger(session, dept, period), period
        on_the_day = await reports.department_report(
            session, await auditor(session), dept, periods["2026-06-20"]
        )
        platform = await reports.platform_report(session, periods["2026-06-20"])
    assert 0 < on_the_day.points.expired < swept.points
    assert platform.totals.points.expired == swept.points
    (row,) = [d for d in platform.departments if d.department_id == dept]
    assert row.points_expired == on_the_day.points.expired

    # `exchange reports check` recomputes the expired points too: a drift is named.
    async with engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE report_days SET points_expired = points_expired + 1")
    async with engine.connect() as conn:
        differences = await rollups.check(conn)
    assert differences and {d.rollup for d in differences} == {"report_days"}
    for difference in differences:  # each differs by the point added, in that column only
        stored, again = difference.stored or {}, difference.recomputed or {}
        assert stored["points_expired"] - again.get("points_expired", 0) == 1, difference
        assert {k: v for k, v in stored.items() if k != "points_expired"} == {
            k: again.get(k, 0) for k in stored if k != "points_expired"
        }, difference
    async with engine.begin() as conn:
        await rollups.rebuild(conn)
    async with engine.connect() as conn:
        assert await rollups.check(conn) == []


async def _from_the_ledger(
    session: AsyncSession, dept: str, period: reports.Period
) -> tuple[int, int, int, int, int]:
    """Issued, spent, held at the end, outstanding at the end and expired, from entries and
    balances."""
    during = await _entries(session, dept, since=period.start, until=period.end)
    issued = sum(
        e.amount
        for e in during
        if e.kind in ("direct", "post")
        and e.debit_account == ISSUANCE
        and e.credit_account.startswith("user:")
    ) - sum(e.amount for e in during if e.kind == "reversal" and e.credit_account == ISSUANCE)
    spent = sum(e.amount for e in during if e.kind == "post" and e.credit_account == REDEMPTION)
    expired = sum(e.amount for e in during if e.credit_account == EXPIRY)
    # Balances right after the last entry before the end of the period.
    last = period.end - timedelta(microseconds=1)
    before_end = await _entries(session, dept, until=period.end)
    if not before_end:
        return issued, spent, 0, 0, expired
    redemption = await ledger.balance(session, dept, REDEMPTION, as_of=last)
    accounts = {
        account
        for e in before_end
        for account in (e.debit_account, e.credit_account)
        if account.startswith("user:")
    }
    outstanding = 0
    for account in accounts:
        outstanding += (await ledger.balance(session, dept, account, as_of=last)).posted
    # Double entry: what employees hold is what left issuance less what reached redemption
    # and what expired.
    issuance = await ledger.balance(session, dept, ISSUANCE, as_of=last)
    gone = sum(e.amount for e in before_end if e.credit_account == EXPIRY)  # only credited
    assert outstanding == -issuance.posted - redemption.posted - gone
    return issued, spent, redemption.credits_pending, outstanding, expired

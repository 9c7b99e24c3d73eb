"""The report, read from drop-offs and orders, agrees with the department's ledger: points
issued, spent, held and outstanding equal sums of ledger entries and balances for the period,
on SQLite and PostgreSQL."""

from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

import ledger
from api import db
from exchange import reports
from exchange.points import ISSUANCE, REDEMPTION
from ledger.encoding import Entry
from tests.conftest import World
from tests.reports.seed import auditor, seed


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
            assert (
                report.points.issued,
                report.points.spent,
                report.points.held,
                report.points.outstanding,
            ) == ledger_figures, period
    # The seed moved points in every one of these periods but the last date range.
    assert ledger_figures == (262, 130, 30, 132)


async def _from_the_ledger(
    session: AsyncSession, dept: str, period: reports.Period
) -> tuple[int, int, int, int]:
    """Issued, spent, held at the end and outstanding at the end, from entries and balances."""
    during = await _entries(session, dept, since=period.start, until=period.end)
    issued = sum(
        e.amount
        for e in during
        if e.kind in ("direct", "post")
        and e.debit_account == ISSUANCE
        and e.credit_account.startswith("user:")
    ) - sum(e.amount for e in during if e.kind == "reversal" and e.credit_account == ISSUANCE)
    spent = sum(e.amount for e in during if e.kind == "post" and e.credit_account == REDEMPTION)
    # Balances right after the last entry before the end of the period.
    last = period.end - timedelta(microseconds=1)
    before_end = await _entries(session, dept, until=period.end)
    if not before_end:
        return issued, spent, 0, 0
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
    # Double entry: what employees hold is what left issuance less what reached redemption.
    issuance = await ledger.balance(session, dept, ISSUANCE, as_of=last)
    assert outstanding == -issuance.posted - redemption.posted
    return issued, spent, redemption.credits_pending, outstanding

"""Every figure of the department and platform reports against the history in seed.py, on
SQLite and PostgreSQL. The expected values were worked out by hand from the seed's table:
they are literals here, not the output of another query."""

from datetime import date

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from exchange import reports
from exchange.errors import InvalidInput, NotFound
from exchange.reports import (
    CategoryRow,
    DayRow,
    Participation,
    PointsSummary,
    ProductRow,
    StationRow,
    StatusCount,
)
from tests.conftest import World
from tests.reports.seed import TEA_NAME, Seeded, auditor, seed


@pytest.fixture
async def seeded(world: World, session_factory: async_sessionmaker[AsyncSession]) -> Seeded:
    return await seed(session_factory, world.dept_a, world.dept_b)


def zero_day(day: int) -> DayRow:
    return DayRow(date(2026, 6, day), 0, 0, 0, 0, 0, 0, 0)


def categories(paper: tuple[int, int, int, int], ink: tuple[int, int, int]) -> tuple:
    """Category rows in the fixed order. Of the default CO2e factors paper has 2,987 g per kg
    and toner cartridges 2,500 g each, but only from campaigns that remanufacture them (none
    here); the rest claim nothing."""
    return (
        CategoryRow("paper", "g", *paper),
        CategoryRow("ink_cartridge", "item", *ink, None),
        CategoryRow("toner_cartridge", "item", 0, 0, 0, 0),
        CategoryRow("phone", "item", 0, 0, 0, None),
        CategoryRow("charger_cable", "item", 0, 0, 0, None),
        CategoryRow("keyboard_mouse", "item", 0, 0, 0, None),
        CategoryRow("other_small_device", "item", 0, 0, 0, None),
    )


async def test_a_department_report_for_three_days_has_every_figure_worked_out_by_hand(
    world: World, seeded: Seeded, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with db.transaction(session_factory) as session:
        period = await reports.resolve_period(
            session, world.dept_a, date_from="2026-06-08", date_to="2026-06-10"
        )
        report = await reports.department_report(
            session, await auditor(session), world.dept_a, period
        )

    assert period.days == (date(2026, 6, 8), date(2026, 6, 9), date(2026, 6, 10))
    # Logged 06-08..06-10: d2 d3 d6 confirmed, d4 rejected, d5 pending.
    assert report.dropoffs_by_status == (
        StatusCount("pending", 1, 60),
        StatusCount("confirmed", 3, 142),
        StatusCount("rejected", 1, 100),
    )
    # paper: d2 re-weighed 1260 g + d6 800 g; ink: d3's 3.
    # CO2e: 2060 g × 2987 g/kg = 6153.2 g, rounded down.
    assert report.categories == categories(paper=(2060, 2, 82, 6153), ink=(3, 1, 60))
    assert report.paper_grams == 2060 and reports.format_kg(report.paper_grams) == "2.1"
    assert report.items == 3
    assert report.stations == (
        StationRow(seeded.station_2, "二楼茶水间", 3, 2, 800, 3, 92),
        StationRow(seeded.station_1, "一楼大厅", 2, 1, 1260, 0, 50),
    )
    assert report.days == (
        # d2 d3 logged; d2 credited; emp-a2's first confirmed drop-off (d3) is logged 06-08.
        DayRow(date(2026, 6, 8), 2, 2, 1260, 3, 50, 0, 1),
        # d4 logged (rejected); d3 credited; o1 picked up.
        DayRow(date(2026, 6, 9), 1, 0, 0, 0, 60, 100, 0),
        # d5 (pending) and d6 logged; d6 is credited on 06-11, after the period.
        DayRow(date(2026, 6, 10), 2, 1, 800, 0, 0, 0, 0),
    )
    assert report.participation == Participation(
        members=3, participants=2, rate_permille=667, ordered=2
    )
    assert reports.format_rate(report.participation.rate_permille) == "66.7%"
    assert report.points == PointsSummary(
        issued=110,  # d2 50 + d3 60
        pending=60,  # d5
        rejected=100,  # d4
        spent=100,  # o1
        held=60,  # o3 (picked up after the end) + o4
        released=60,  # o2
        expired=0,  # the campaign's points never expire
        outstanding=110,  # d1 100 + d2 50 + d3 60 - o1 100
    )
    assert report.orders_by_status == (
        StatusCount("reserved", 1, 30),
        StatusCount("fulfilled", 2, 130),
        StatusCount("cancelled", 1, 60),
        StatusCount("expired", 0, 0),
    )
    assert report.products == (ProductRow(seeded.rice, "石门大米", "5 kg 袋", 1, 1, 100, 3500),)
    assert report.value_fen == 3500
    assert all(type(row.value_fen) is int for row in report.products)  # not a Decimal
    assert report.co2e_grams == 6153


async def test_a_campaign_report_covers_its_whole_window(
    world: World, seeded: Seeded, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with db.transaction(session_factory) as session:
        period = await reports.resolve_period(session, world.dept_a, campaign=seeded.campaign_id)
        report = await reports.department_report(
            session, await auditor(session), world.dept_a, period
        )

    assert (period.first_day, period.last_day) == (date(2026, 6, 1), date(2026, 6, 14))
    assert period.campaign_name == "节能宣传周"
    assert report.dropoffs_by_status == (
        StatusCount("pending", 1, 60),
        StatusCount("confirmed", 5, 262),
        StatusCount("rejected", 1, 100),
    )
    # CO2e: 4560 g × 2987 g/kg = 13620.7 g.
    assert report.categories == categories(paper=(4560, 3, 182, 13620), ink=(4, 2, 80))
    assert reports.format_kg(report.co2e_grams) == "13.6"
    assert report.points == PointsSummary(
        issued=262,
        pending=60,
        rejected=100,
        spent=130,
        held=30,
        released=60,
        expired=0,
        outstanding=132,
    )
    assert report.products == (
        ProductRow(seeded.rice, "石门大米", "5 kg 袋", 1, 1, 100, 3500),
        ProductRow(seeded.tea, TEA_NAME, "罐", 1, 1, 30, 1200),
    )
    assert report.value_fen == 4700
    days = {row.day.day: row for row in report.days}
    assert len(report.days) == 14
    assert days[5] == DayRow(date(2026, 6, 5), 1, 1, 2500, 0, 100, 0, 1)
    assert days[8] == DayRow(date(2026, 6, 8), 2, 2, 1260, 3, 50, 0, 1)
    assert days[11] == DayRow(date(2026, 6, 11), 1, 1, 0, 1, 52, 30, 0)
    assert days[14] == zero_day(14)
    assert sum(row.first_time for row in report.days) == 2

    async with db.transaction(session_factory) as session:
        # The coordinator dashboard's day: d2 and d3 logged, d2 credited, o1 placed; now d5
        # waits for a steward and o4 for its pickup.
        day = await reports.day_totals(
            session, await auditor(session), world.dept_a, date(2026, 6, 8)
        )
        # The employee's own totals, all time: d1 d2 d6 d7; o1 picked up, o4 reserved.
        emp_a = await reports.member_totals(session, world.dept_a, seeded.users["emp-a"])
    assert (day.dropoffs, day.confirmed, day.pending, day.participants) == (2, 2, 0, 2)
    assert [(c.category, c.quantity) for c in day.categories] == [
        ("paper", 1260), ("ink_cartridge", 3),
    ]  # fmt: skip
    assert (day.points_issued, day.orders, day.picked_up, day.points_spent) == (50, 1, 0, 0)
    assert (day.value_fen, day.waiting, day.open_orders) == (0, 1, 1)
    assert emp_a == reports.MemberTotals(
        dropoffs=4, confirmed=4, paper_grams=4560, items=1, points_earned=202, orders=2,
        points_spent=100,
    )  # fmt: skip


async def test_the_platform_report_has_one_row_per_department_and_the_summed_totals(
    world: World, seeded: Seeded, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with db.transaction(session_factory) as session:
        period = await reports.resolve_period(
            session, None, date_from="2026-06-08", date_to="2026-06-10"
        )
        platform = await reports.platform_report(session, period, sort="paper_grams")

    rows = {row.name: row for row in platform.departments}
    a, b, p = rows["部门a"], rows["部门b"], rows["部门p"]
    assert (a.members, a.participants, a.rate_permille, a.paper_grams, a.items) == (
        3, 2, 667, 2060, 3,
    )  # fmt: skip
    assert (a.points_issued, a.points_spent, a.value_fen) == (110, 100, 3500)
    assert (b.members, b.participants, b.rate_permille, b.paper_grams, b.items) == (
        2, 1, 500, 1000, 0,
    )  # fmt: skip
    assert (b.points_issued, b.points_spent, b.value_fen) == (40, 0, 0)
    assert (p.members, p.participants, p.rate_permille, p.paper_grams) == (1, 0, 0, 0)
    assert (a.co2e_grams, b.co2e_grams, p.co2e_grams) == (6153, 2987, 0)
    assert [row.name for row in platform.departments] == ["部门p", "部门b", "部门a"]

    totals = platform.totals
    assert totals.department_id is None and totals.stations == ()
    assert totals.participation == Participation(
        members=6, participants=3, rate_permille=500, ordered=2
    )
    assert totals.points.issued == 150 and totals.points.spent == 100
    assert totals.paper_grams == 3060
    assert [row.first_time for row in totals.days] == [1, 1, 0]  # emp-a2 06-08, emp-b 06-09
    assert totals.dropoffs_by_status[1] == StatusCount("confirmed", 4, 182)

    descending = reports.sort_departments(platform.departments, "points_issued", True)
    assert [row.name for row in descending] == ["部门a", "部门b", "部门p"]
    with pytest.raises(InvalidInput):
        reports.sort_departments(platform.departments, "password")


BAD_PERIODS: list[tuple[dict[str, str], type[Exception]]] = [
    ({}, InvalidInput),
    ({"date_from": "2026-06-08"}, InvalidInput),
    ({"date_from": "2026-06-10", "date_to": "2026-06-08"}, InvalidInput),
    ({"date_from": "2026-6-8", "date_to": "2026-06-10"}, InvalidInput),
    ({"date_from": "2026-06-31", "date_to": "2026-07-01"}, InvalidInput),
    ({"date_from": "２０２６-06-08", "date_to": "2026-06-10"}, InvalidInput),
    ({"date_from": "2024-01-01", "date_to": "2025-01-01"}, InvalidInput),  # 367 days
    ({"campaign": "nope"}, NotFound),
    ({"campaign": "x", "date_from": "2026-06-08", "date_to": "2026-06-10"}, InvalidInput),
]


async def test_a_period_that_is_missing_malformed_reversed_or_too_long_is_refused(
    world: World, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with db.transaction(session_factory) as session:
        for arguments, error in BAD_PERIODS:
            with pytest.raises(error):
                await reports.resolve_period(session, world.dept_a, **arguments)
        longest = await reports.resolve_period(
            session, world.dept_a, date_from="2024-01-01", date_to="2024-12-31"
        )
        assert len(longest.days) == 366


def test_kilograms_and_rates_are_formatted_at_the_edge() -> None:
    assert [reports.format_kg(g) for g in (0, 49, 50, 1234, 1250, 12345)] == [
        "0.0", "0.0", "0.1", "1.2", "1.3", "12.3",
    ]  # fmt: skip
    assert reports.rate_permille(2, 3) == 667 and reports.rate_permille(1, 0) == 0
    assert reports.format_rate(667) == "66.7%" and reports.format_yuan(4705) == "47.05"

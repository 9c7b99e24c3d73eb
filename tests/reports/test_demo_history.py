"""The demo has a campaign behind it: every chart of the coordinator's and the platform's
report has data, the rollups equal the raw rows, the summary is drafted, and a period with
no activity says so instead of drawing empty axes."""

import re

import pytest
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.demo import DEMO_PASSWORD, LAST_WEEK_CAMPAIGN, seed_demo
from api.settings import Settings
from catalog import passwords
from exchange.models import Campaign, Dropoff, Order, Summary
from exchange.reports import rollups
from tests.conftest import login
from tests.exchange.helpers import Client

FIGURE = re.compile(r'<figure class="chart-figure" id="figure-([a-z]+)">(.*?)</figure>', re.S)


def charts_with_data(page: str) -> dict[str, bool]:
    """Each chart of the page, and whether its table of numbers has any that is not zero."""
    found = {}
    for key, body in FIGURE.findall(page):
        cells = re.findall(r'<td class="num">([^<]*)</td>', body)
        found[key] = any(re.sub(r"[^0-9]", "", cell).strip("0") for cell in cells)
    return found


@pytest.fixture
async def demo(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(1, 8, 1))  # cheap, still argon2
    await seed_demo(session_factory, settings)
    await seed_demo(session_factory, settings)  # once: the second run adds nothing
    async with session_factory() as session:
        found = await session.exec(select(Campaign.id).where(Campaign.name == LAST_WEEK_CAMPAIGN))
        return found.one()


async def test_every_chart_of_the_demo_reports_has_data_and_the_rollups_are_exact(
    client: Client,
    demo: str,
    session_factory: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    async with session_factory() as session:
        statuses = {d.status for d in (await session.exec(select(Dropoff))).all()}
        fates = {o.status for o in (await session.exec(select(Order))).all()}
        drafts = (await session.exec(select(Summary))).all()
    assert statuses == {"pending", "confirmed", "rejected"}
    assert {"reserved", "fulfilled", "cancelled"} <= fates
    assert len(drafts) == 2 and all("一、主要成效" in d.text for d in drafts)
    async with engine.connect() as conn:
        assert await rollups.check(conn) == []

    coordinator = await login(client, "coord-a", DEMO_PASSWORD)
    for query in (f"?campaign={demo}", ""):  # last week's, and the current campaign (default)
        page = await client.get(f"/coord/report{query}", headers=coordinator)
        assert page.status_code == 200
        assert charts_with_data(page.text) == {"daily": True, "categories": True, "points": True}
    admin = await login(client, "admin", DEMO_PASSWORD)
    page = await client.get(f"/admin/report?campaign={demo}", headers=admin)
    assert charts_with_data(page.text) == {
        "daily": True, "categories": True, "points": True, "participation": True,
    }  # fmt: skip
    summary = await client.get(f"/coord/summary?campaign={demo}", headers=coordinator)
    assert summary.status_code == 200 and "最后保存" in summary.text


async def test_a_period_without_activity_shows_an_empty_state_not_empty_axes(
    client: Client, demo: str
) -> None:
    coordinator = await login(client, "coord-a", DEMO_PASSWORD)
    page = await client.get("/coord/report?from=2024-01-01&to=2024-01-07", headers=coordinator)
    assert page.status_code == 200
    assert "本期暂无数据" in page.text
    assert charts_with_data(page.text) == {}  # no chart drawn at all

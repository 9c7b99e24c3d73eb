"""The demo data set lets a newcomer walk the exchange at once: stations, an open campaign
with a rate card, and a village catalog per demo department."""

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from api.demo import DEMO_PASSWORD, seed_demo
from catalog.models import Product
from exchange.models import Campaign, CampaignRate, Station
from tests.conftest import login
from tests.exchange.helpers import drop, order


async def test_the_demo_adds_stations_an_open_campaign_and_catalogs_once_and_they_work(
    client: AsyncTestClient[Litestar],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await seed_demo(session_factory)
    await seed_demo(session_factory)
    async with db.transaction(session_factory) as session:
        stations = (await session.exec(select(Station))).all()
        products = (await session.exec(select(Product))).all()
        campaigns = (await session.exec(select(Campaign))).all()
        rates = (await session.exec(select(func.count()).select_from(CampaignRate))).one()
    assert len(stations) == 4 and len({s.department_id for s in stations}) == 2
    per_department = {p.department_id for p in products}
    assert len(per_department) == 2
    for department_id in per_department:
        assert 4 <= sum(p.department_id == department_id for p in products) <= 6
    assert all(p.stock > 0 and p.active for p in products)
    assert len(campaigns) == 1 and campaigns[0].policy == "auto" and rates == 7

    employee = await login(client, "emp-a1", DEMO_PASSWORD)
    me = (await client.get("/api/me", headers=employee)).json()
    station = next(s for s in stations if s.department_id == me["department"]["id"])
    dropped = await drop(client, employee, station.code, "paper", 10_000)
    assert dropped.status_code == 201 and dropped.json()["points"] == 400
    rice = next(p for p in products if p.name == "石门大米")
    ordered = await order(client, employee, rice.id)
    assert ordered.status_code == 201 and ordered.json()["points"] == 300

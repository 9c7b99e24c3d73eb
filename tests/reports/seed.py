"""A small, fixed history whose report figures were worked out by hand (see the test files).

Department A (members with the employee role: coord-a, emp-a, emp-a2), campaign 2026-06-01 to
2026-06-14 (Asia/Shanghai), steward policy; rates paper 40/kg, ink 20, toner 30, phone 100.
Products: rice (100 points, 35.00 yuan), tea (30 points, 12.00 yuan, named like a formula).
Every step runs through the exchange's own functions at the Shanghai time given, in order:

  06-05 10:00 d1 emp-a   S1 paper 2500 g      → confirmed 06-05 12:00           100 pts
  06-08 09:00 d2 emp-a   S1 paper 1234 g (49) → confirmed 06-08 18:00 as 1260 g  50 pts
  06-08 19:00 o1 emp-a   rice × 1 (100)       → picked up 06-09 12:00
  06-08 23:30 d3 emp-a2  S2 ink × 3           → confirmed 06-09 08:00            60 pts
  06-09 09:00 o2 emp-a2  tea × 2 (60)         → cancelled 06-09 10:30
  06-09 10:00 d4 emp-a2  S1 phone × 1         → rejected 06-09 11:00            (100 pts)
  06-09 10:00 e1 emp-b (department B) paper 1000 g → confirmed 06-09 10:00       40 pts
  06-10 07:00 d6 emp-a   S2 paper 800 g       → confirmed 06-11 09:00            32 pts
  06-10 09:00 o3 emp-a2  tea × 1 (30)         → picked up 06-11 10:10
  06-10 10:00 o4 emp-a   tea × 1 (30)         → still reserved
  06-10 20:00 d5 coord-a S2 toner × 2         → still pending                   (60 pts)
  06-11 10:00 d7 emp-a   S1 ink × 1           → confirmed 06-11 10:05            20 pts
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from catalog.identity import Identity, load_identity
from catalog.models import Product, User
from exchange import campaigns, dropoffs, orders, pickup
from exchange.campaigns import SHANGHAI
from exchange.models import Station
from ledger.signing import KeyRing

TEA_NAME = "=SUM(1,2) 绿茶"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in June 2026, Asia/Shanghai."""
    return datetime(2026, 6, day, hour, minute, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class Seeded:
    campaign_id: str
    station_1: str
    station_2: str
    rice: str
    tea: str
    users: dict[str, str]  # username → user id


async def _identity(session: AsyncSession, user_id: str) -> Identity:
    found = await load_identity(session, user_id)
    assert found is not None
    return found


async def auditor(session: AsyncSession) -> Identity:
    """The platform auditor, who may read every department's report."""
    user_id = (await session.exec(select(User.id).where(User.username == "auditor"))).one()
    return await _identity(session, user_id)


async def seed(
    session_factory: async_sessionmaker[AsyncSession], dept_a: str, dept_b: str
) -> Seeded:
    keyring = KeyRing.ephemeral()
    async with db.transaction(session_factory) as session:
        users = {u.username: u.id for u in (await session.exec(select(User))).all()}
        admin = users["admin"]
        campaign = await campaigns.create_campaign(
            session,
            campaigns.NewCampaign(
                name="节能宣传周",
                starts_at=at(1, 0),
                ends_at=at(15, 0),
                policy="steward",
                daily_cap_points=10_000,
            ),
            admin,
        )
        await campaigns.set_rates(
            session,
            campaign.id,
            {"paper": 40, "ink_cartridge": 20, "toner_cartridge": 30, "phone": 100},
            admin,
        )
        stations = {}
        for dept, code, name in (
            (dept_a, "rpts1", "一楼大厅"),
            (dept_a, "rpts2", "二楼茶水间"),
            (dept_b, "rptb1", "B 大厅"),
        ):
            station = Station(
                department_id=dept, code=code, name=name, created_by=admin, updated_by=admin
            )
            session.add(station)
            stations[code] = station
        rice = Product(
            department_id=dept_a, name="石门大米", unit="5 kg 袋", price_points=100,
            value_fen=3500, stock=10, created_by=admin, updated_by=admin,
        )  # fmt: skip
        tea = Product(
            department_id=dept_a, name=TEA_NAME, unit="罐", price_points=30, value_fen=1200,
            stock=10, created_by=admin, updated_by=admin,
        )  # fmt: skip
        session.add_all([rice, tea])
        await session.flush()

    async def step(action):  # type: ignore[no-untyped-def]
        async with db.transaction(session_factory) as session:
            return await action(session)

    def log(user: str, code: str, category: str, quantity: int, when: datetime):  # type: ignore[no-untyped-def]
        async def action(session: AsyncSession) -> str:
            logged = await dropoffs.log_dropoff(
                session,
                await _identity(session, users[user]),
                station_code=code,
                category_code=category,
                quantity=quantity,
                idempotency_key=f"seed-{user}-{when.isoformat()}",
                now=when,
            )
            return logged.dropoff.id

        return step(action)

    def confirm(dept: str, dropoff_id: str, when: datetime, quantity: int | None = None):  # type: ignore[no-untyped-def]
        return step(
            lambda s: dropoffs.confirm_dropoff(
                s, dept, dropoff_id, users["coord-a"], quantity=quantity, now=when
            )
        )

    def place(user: str, product_id: str, quantity: int, when: datetime):  # type: ignore[no-untyped-def]
        async def action(session: AsyncSession):  # type: ignore[no-untyped-def]
            placed = await orders.place_order(
                session,
                await _identity(session, users[user]),
                keyring,
                product_id=product_id,
                quantity=quantity,
                idempotency_key=f"seed-{user}-{when.isoformat()}",
                expiry=timedelta(days=30),
                now=when,
            )
            return placed.order

        return step(action)

    def pick_up(order, when: datetime):  # type: ignore[no-untyped-def]
        return step(
            lambda s: pickup.redeem(
                s,
                keyring,
                pickup.sign(keyring, order),
                coordinator_id=users["coord-a"],
                coordinator_department_id=dept_a,
                now=when,
            )
        )

    d1 = await log("emp-a", "rpts1", "paper", 2500, at(5, 10))
    await confirm(dept_a, d1, at(5, 12))
    d2 = await log("emp-a", "rpts1", "paper", 1234, at(8, 9))
    await confirm(dept_a, d2, at(8, 18), quantity=1260)
    o1 = await place("emp-a", rice.id, 1, at(8, 19))
    d3 = await log("emp-a2", "rpts2", "ink_cartridge", 3, at(8, 23, 30))
    await confirm(dept_a, d3, at(9, 8))
    o2 = await place("emp-a2", tea.id, 2, at(9, 9))
    d4 = await log("emp-a2", "rpts1", "phone", 1, at(9, 10))
    e1 = await log("emp-b", "rptb1", "paper", 1000, at(9, 10))
    await step(lambda s: dropoffs.confirm_dropoff(s, dept_b, e1, users["coord-b"], now=at(9, 10)))
    await step(lambda s: _cancel(s, users["emp-a2"], o2.id, at(9, 10, 30)))
    await step(
        lambda s: dropoffs.reject_dropoff(
            s, dept_a, d4, users["coord-a"], reason="不是旧手机", now=at(9, 11)
        )
    )
    await pick_up(o1, at(9, 12))
    d6 = await log("emp-a", "rpts2", "paper", 800, at(10, 7))
    o3 = await place("emp-a2", tea.id, 1, at(10, 9))
    await place("emp-a", tea.id, 1, at(10, 10))
    await log("coord-a", "rpts2", "toner_cartridge", 2, at(10, 20))
    await confirm(dept_a, d6, at(11, 9))
    d7 = await log("emp-a", "rpts1", "ink_cartridge", 1, at(11, 10))
    await confirm(dept_a, d7, at(11, 10, 5))
    await pick_up(o3, at(11, 10, 10))
    return Seeded(
        campaign_id=campaign.id,
        station_1=stations["rpts1"].id,
        station_2=stations["rpts2"].id,
        rice=rice.id,
        tea=tea.id,
        users=users,
    )


async def _cancel(session: AsyncSession, user_id: str, order_id: str, when: datetime):  # type: ignore[no-untyped-def]
    return await orders.cancel_order(session, await _identity(session, user_id), order_id, when)

"""A week of past activity in the demo's second department, for the report and summary pages.

A department campaign that ended two days ago (so it never takes today's drop-offs from the
demo's own campaign), with drop-offs on each of its days, some orders picked up. Written
through the exchange's own functions, backdated with their `now`, so the ledger holds it
exactly as if it had happened then.
"""

from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from api.demo import DEMO_DEPARTMENTS, DEMO_RATES
from catalog import products
from catalog.identity import load_identity
from catalog.models import Department, User, utcnow
from catalog.paging import MAX_LIMIT
from exchange import dropoffs, orders, pickup
from exchange.campaigns import NewCampaign, create_campaign, set_rates
from exchange.stations import all_stations
from ledger.signing import KeyRing

HISTORY_CAMPAIGN = "节能宣传周（上周）"
# (employee number, category, quantity) per day of the campaign
DAYS = [
    [(1, "paper", 3200), (2, "ink_cartridge", 2), (3, "paper", 1500)],
    [(1, "toner_cartridge", 1), (4, "paper", 5200)],
    [(2, "paper", 2400), (3, "phone", 1), (5, "charger_cable", 3), (1, "paper", 800)],
    [(4, "keyboard_mouse", 2)],
    [(1, "paper", 4100), (2, "ink_cartridge", 4), (3, "paper", 2600), (4, "paper", 1900)],
    [(5, "paper", 3000), (2, "toner_cartridge", 2)],
    [(3, "paper", 6000), (1, "ink_cartridge", 3), (4, "other_small_device", 1)],
]
# (day, employee number, product) — each picked up an hour after it was ordered
ORDERS = [
    (2, 1, "紫云红芯红薯"),
    (4, 4, "高山绿茶"),
    (5, 3, "紫云红芯红薯"),
    (6, 1, "高山绿茶"),
    (6, 2, "紫云红芯红薯"),
]


async def seed_history(session_factory: async_sessionmaker[AsyncSession], keyring: KeyRing) -> str:
    """Seed the week once; returns the campaign's id."""
    async with transaction(session_factory) as session:
        name = DEMO_DEPARTMENTS[1].details.name
        department = (await session.exec(select(Department).where(Department.name == name))).one()
        users = {
            u.username: u.id
            for u in (
                await session.exec(select(User).where(User.department_id == department.id))
            ).all()
        }
        admin = (await session.exec(select(User.id).where(User.username == "admin"))).one()
        # Midnight in Asia/Shanghai (16:00 UTC), so the campaign covers exactly seven days there.
        start = (utcnow() - timedelta(days=9)).replace(hour=16, minute=0, second=0, microsecond=0)
        campaign = await create_campaign(
            session,
            NewCampaign(
                name=HISTORY_CAMPAIGN,
                starts_at=start,
                ends_at=start + timedelta(days=len(DAYS)),
                policy="auto",
                daily_cap_points=1000,
                department_id=department.id,
            ),
            admin,
        )
        await set_rates(session, campaign.id, DEMO_RATES, admin)
        station = (await all_stations(session, department.id))[0]
        # By name: products made in the same millisecond have ids in no particular order.
        catalog = {
            product.name: product.id
            for product in (
                await products.list_products(
                    session, department.id, active_only=True, limit=MAX_LIMIT, after=None
                )
            ).items
        }
        coordinator = users["coord-b"]
        for day, drops in enumerate(DAYS):
            for n, (who, category, quantity) in enumerate(drops):
                caller = await load_identity(session, users[f"emp-b{who}"])
                assert caller is not None
                await dropoffs.log_dropoff(
                    session,
                    caller,
                    station_code=station.code,
                    category_code=category,
                    quantity=quantity,
                    idempotency_key=f"history-{day}-{n}",
                    now=start + timedelta(days=day, hours=1 + n),
                )
        for n, (day, who, product) in enumerate(ORDERS):
            caller = await load_identity(session, users[f"emp-b{who}"])
            assert caller is not None
            at = start + timedelta(days=day, hours=6)
            placed = await orders.place_order(
                session,
                caller,
                keyring,
                product_id=catalog[product],
                quantity=1,
                idempotency_key=f"history-order-{n}",
                expiry=timedelta(days=7),
                now=at,
            )
            await pickup.redeem(
                session,
                keyring,
                pickup.sign(keyring, placed.order),
                coordinator_id=coordinator,
                coordinator_department_id=department.id,
                now=at + timedelta(hours=1),
            )
        return campaign.id

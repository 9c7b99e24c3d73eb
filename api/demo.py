"""The demo data set `exchange demo` creates, idempotently, so a newcomer can walk every journey."""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from catalog.departments import NewDepartment, register_department
from catalog.identity import create_user
from catalog.models import Department, DepartmentStatus, Product, Role, User, utcnow
from catalog.products import ProductDetails, create_product
from exchange.campaigns import NewCampaign, create_campaign, set_rates
from exchange.models import Campaign, Station
from exchange.stations import create_station

DEMO_PASSWORD = "demo-pass"


@dataclass(frozen=True)
class DemoDepartment:
    key: str  # "a" or "b": the suffix of its accounts' usernames
    details: NewDepartment


DEMO_DEPARTMENTS = [
    DemoDepartment(
        "a",
        NewDepartment(
            name="示范机关事务局",
            village_name="石门村",
            village_county="平江县",
            village_province="湖南省",
            contact_name="李协调",
            contact_phone="0731-8000-0001",
            pickup_location="机关大楼一层收发室",
        ),
    ),
    DemoDepartment(
        "b",
        NewDepartment(
            name="示范生态环境厅",
            village_name="坪上村",
            village_county="紫云县",
            village_province="贵州省",
            contact_name="王协调",
            contact_phone="0851-8000-0002",
            pickup_location="办公楼二层工会活动室",
        ),
    ),
]


@dataclass(frozen=True)
class DemoProduct:
    name: str
    unit: str
    price_points: int
    value_fen: int
    stock: int
    description: str


DEMO_STATIONS = [("一楼大厅回收点", "正门进门右手边"), ("三楼打印室回收点", "复印机旁")]

# Points per kg (paper) or per item: a bag of rice is a few weeks of diligent recycling.
DEMO_RATES = {
    "paper": 40,
    "ink_cartridge": 20,
    "toner_cartridge": 40,
    "phone": 150,
    "charger_cable": 15,
    "keyboard_mouse": 30,
    "other_small_device": 50,
}

DEMO_PRODUCTS = {
    "a": [
        DemoProduct("石门大米", "5 kg 袋", 300, 5000, 40, "石门村梯田种植的当季新米。"),
        DemoProduct("平江烟茶", "250 g 罐", 200, 3800, 30, "平江传统烟熏工艺绿茶。"),
        DemoProduct("土蜂蜜", "500 g 瓶", 250, 4500, 25, "山里散养中华蜂的百花蜜。"),
        DemoProduct("香菇干", "250 g 袋", 150, 2800, 30, "椴木栽培、自然晾晒。"),
        DemoProduct("手工酱干", "500 g 袋", 100, 1800, 50, "村办作坊手工制作。"),
    ],
    "b": [
        DemoProduct("紫云红芯红薯", "5 kg 箱", 200, 3500, 40, "紫云县特产红芯红薯。"),
        DemoProduct("高山绿茶", "250 g 罐", 220, 4000, 30, "海拔一千米以上茶园春茶。"),
        DemoProduct("野生蜂蜜", "500 g 瓶", 260, 4800, 20, "坪上村林下养蜂。"),
        DemoProduct("黑木耳", "250 g 袋", 160, 3000, 30, "肉厚无沙，泡发率高。"),
        DemoProduct("压榨菜籽油", "5 L 桶", 350, 6500, 15, "本地油菜籽物理压榨。"),
        DemoProduct("糯玉米", "10 根 箱", 120, 2000, 35, "真空包装，加热即食。"),
    ],
}
DEMO_CAMPAIGN = "节能宣传周（演示）"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    roles: str
    department: str


async def _ensure_user(
    session: AsyncSession,
    username: str,
    display_name: str,
    department_id: str | None,
    roles: list[Role],
) -> None:
    if (await session.exec(select(User.id).where(User.username == username))).first():
        return
    await create_user(
        session,
        username=username,
        display_name=display_name,
        password=DEMO_PASSWORD,
        department_id=department_id,
        roles=roles,
    )


async def seed_demo(session_factory: async_sessionmaker[AsyncSession]) -> list[DemoAccount]:
    """Creates what is missing of the demo data set and returns its accounts."""
    accounts = [DemoAccount("admin", "admin", "-"), DemoAccount("auditor", "auditor", "-")]
    async with transaction(session_factory) as session:
        await _ensure_user(session, "admin", "平台管理员", None, [Role.admin])
        await _ensure_user(session, "auditor", "平台审计", None, [Role.auditor])
        for demo in DEMO_DEPARTMENTS:
            department = (
                await session.exec(select(Department).where(Department.name == demo.details.name))
            ).first()
            if department is None:
                department = await register_department(session, demo.details, actor_id=None)
                department.status = DepartmentStatus.approved
                session.add(department)
                await session.flush()
            coordinator = f"coord-{demo.key}"
            await _ensure_user(
                session,
                coordinator,
                f"协调员{demo.key.upper()}",
                department.id,
                [Role.coordinator, Role.employee],
            )
            accounts.append(DemoAccount(coordinator, "coordinator, employee", department.name))
            for n in range(1, 6):
                username = f"emp-{demo.key}{n}"
                await _ensure_user(
                    session, username, f"职工{demo.key.upper()}{n}", department.id, [Role.employee]
                )
                accounts.append(DemoAccount(username, "employee", department.name))
            await _ensure_exchange(session, department.id, coordinator, demo.key)
        await _ensure_campaign(session)
    return accounts


async def _ensure_exchange(
    session: AsyncSession, department_id: str, coordinator: str, key: str
) -> None:
    """Two collection points and the village catalog of a demo department."""
    actor = (await session.exec(select(User.id).where(User.username == coordinator))).one()
    station_names = set(
        await session.exec(select(Station.name).where(Station.department_id == department_id))
    )
    for name, location in DEMO_STATIONS:
        if name not in station_names:
            await create_station(
                session, department_id, name=name, location=location, actor_id=actor
            )
    product_names = set(
        await session.exec(select(Product.name).where(Product.department_id == department_id))
    )
    for product in DEMO_PRODUCTS[key]:
        if product.name not in product_names:
            await create_product(
                session, department_id, ProductDetails(**product.__dict__), actor_id=actor
            )


async def _ensure_campaign(session: AsyncSession) -> None:
    """A platform-wide campaign open now (the current energy-saving week), crediting at once."""
    admin = (await session.exec(select(User.id).where(User.username == "admin"))).one()
    now = utcnow()
    open_now = await session.exec(
        select(Campaign.id).where(
            col(Campaign.department_id).is_(None),
            col(Campaign.starts_at) <= now,
            col(Campaign.ends_at) > now,
        )
    )
    if open_now.first() is not None:
        return
    campaign = await create_campaign(
        session,
        NewCampaign(
            name=DEMO_CAMPAIGN,
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(days=7),
            policy="auto",
            daily_cap_points=1000,
        ),
        admin,
    )
    await set_rates(session, campaign.id, DEMO_RATES, admin)

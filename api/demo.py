"""The demo data set `exchange demo` creates, idempotently, so a newcomer can walk every journey.

With the service's settings it also writes, once and deterministically (a fixed seed, dates
relative to today), a history behind the reports: last week's finished campaign (confirmed by
a steward: drop-offs confirmed, some re-weighed, rejected or still pending) and the first
days of the current one (credited at once), a few hundred drop-offs across every category,
orders placed, picked up and cancelled, products with pictures the demo draws itself, and a
saved draft of each department's summary. The history goes through the exchange's own entry
points in the order it happened, so the ledger holds it as if it had, and verifies.
"""

import asyncio
import io
import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from PIL import Image, ImageDraw
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from api.settings import Settings
from catalog import photos
from catalog.departments import NewDepartment, register_department
from catalog.identity import Identity, create_user, load_identity
from catalog.models import Department, DepartmentStatus, Product, Role, User, utcnow
from catalog.products import ProductDetails, create_product, set_photo
from exchange import dropoffs, orders, pickup, reports, summaries
from exchange.campaigns import SHANGHAI, NewCampaign, create_campaign, set_rates
from exchange.errors import ExchangeError
from exchange.models import Campaign, Order, Station
from exchange.stations import create_station
from ledger.signing import KeyRing

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
LAST_WEEK_CAMPAIGN = "节能宣传周（上周，演示）"
# The current campaign began this many days before today (Asia/Shanghai), last week's lasted
# the seven days before it.
CURRENT_DAYS_BEHIND = 3


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


async def seed_demo(
    session_factory: async_sessionmaker[AsyncSession], settings: Settings | None = None
) -> list[DemoAccount]:
    """Creates what is missing of the demo data set and returns its accounts. With the
    service's `settings` (its signing keys and data directory), also the history behind the
    reports, once."""
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
    if settings is not None:
        await seed_history(session_factory, settings)
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


def today_midnight() -> datetime:
    """The start of today in Asia/Shanghai, in UTC: what the demo's dates are relative to."""
    today = utcnow().astimezone(SHANGHAI).date()
    return datetime.combine(today, time(), SHANGHAI).astimezone(UTC)


async def _ensure_campaign(session: AsyncSession) -> None:
    """A platform-wide campaign open now (the current energy-saving week, begun a few days
    ago), crediting at once."""
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
            starts_at=today_midnight() - timedelta(days=CURRENT_DAYS_BEHIND),
            ends_at=today_midnight() + timedelta(days=7 - CURRENT_DAYS_BEHIND),
            policy="auto",
            daily_cap_points=1000,
        ),
        admin,
    )
    await set_rates(session, campaign.id, DEMO_RATES, admin)


# --- the history behind the reports -----------------------------------------------------------

# (category, lowest, highest quantity, weight): grams of paper, items of the rest.
HISTORY_DROPS = [
    ("paper", 600, 6000, 40),
    ("ink_cartridge", 1, 4, 15),
    ("toner_cartridge", 1, 2, 10),
    ("phone", 1, 1, 5),
    ("charger_cable", 1, 3, 12),
    ("keyboard_mouse", 1, 2, 8),
    ("other_small_device", 1, 1, 6),
]
PRODUCT_COLOURS = [
    ((246, 239, 222), (188, 143, 72)),
    ((228, 240, 226), (64, 122, 74)),
    ((250, 236, 208), (214, 150, 38)),
    ((236, 230, 224), (120, 86, 62)),
    ((242, 232, 220), (168, 96, 54)),
    ((238, 236, 214), (150, 140, 40)),
]


def product_picture(index: int) -> bytes:
    """A product picture the demo draws itself (a package on a plain ground): no third-party
    images, nothing to license. CPU work: run it off the event loop."""
    ground, ink = PRODUCT_COLOURS[index % len(PRODUCT_COLOURS)]
    image = Image.new("RGB", (480, 360), ground)
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((150, 70, 330, 310), radius=28, fill=ink)
    draw.rounded_rectangle((170, 150, 310, 240), radius=12, fill=ground)
    draw.ellipse((215, 165, 265, 225), fill=(76, 140, 84))
    draw.polygon([(240, 40), (200, 70), (280, 70)], fill=ink)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


@dataclass
class _Writer:
    """Every write of the history, through the exchange's entry points, at its own `now`.
    (One place for these calls: their signatures are the exchange's to change.)"""

    session: AsyncSession
    keyring: KeyRing
    people: dict[str, Identity]

    async def log(
        self, who: str, station: str, category: str, quantity: int, at: datetime
    ) -> str | None:
        try:
            logged = await dropoffs.log_dropoff(
                self.session, self.people[who], station_code=station, category_code=category,
                quantity=quantity, idempotency_key=f"demo-{who}-{at.isoformat()}", now=at,
            )  # fmt: skip
        except ExchangeError:  # over the daily cap: the employee brought too much that day
            return None
        return logged.dropoff.id

    async def confirm(
        self, coordinator: str, dropoff_id: str, quantity: int | None, at: datetime
    ) -> None:
        who = self.people[coordinator]
        await dropoffs.confirm_dropoff(
            self.session, str(who.department_id), dropoff_id, who.user_id, quantity=quantity, now=at
        )

    async def reject(self, coordinator: str, dropoff_id: str, at: datetime) -> None:
        who = self.people[coordinator]
        await dropoffs.reject_dropoff(
            self.session, str(who.department_id), dropoff_id, who.user_id,
            reason="不属于可回收物", now=at,
        )  # fmt: skip

    async def order(self, who: str, product_id: str, at: datetime) -> Order | None:
        try:
            placed = await orders.place_order(
                self.session, self.people[who], self.keyring, product_id=product_id, quantity=1,
                idempotency_key=f"demo-order-{who}-{at.isoformat()}", expiry=timedelta(days=7),
                now=at,
            )  # fmt: skip
        except ExchangeError:  # not enough points yet
            return None
        return placed.order

    async def hand_over(self, coordinator: str, order: Order, at: datetime) -> None:
        who = self.people[coordinator]
        await pickup.redeem(
            self.session, self.keyring, pickup.sign(self.keyring, order),
            coordinator_id=who.user_id, coordinator_department_id=who.department_id, now=at,
        )  # fmt: skip

    async def cancel(self, who: str, order: Order, at: datetime) -> None:
        await orders.cancel_order(self.session, self.people[who], order.id, at)


@dataclass(order=True)
class _Event:
    at: datetime
    n: int  # ties keep the order they were planned in
    kind: str
    args: tuple  # type: ignore[type-arg]


async def seed_history(
    session_factory: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """Last week's campaign and the current one's first days, once (see the module's doc)."""
    async with transaction(session_factory) as session:
        done = await session.exec(select(Campaign.id).where(Campaign.name == LAST_WEEK_CAMPAIGN))
        if done.first() is not None:
            return
        admin = (await session.exec(select(User.id).where(User.username == "admin"))).one()
        current_start = today_midnight() - timedelta(days=CURRENT_DAYS_BEHIND)
        last_week = await create_campaign(
            session,
            NewCampaign(
                name=LAST_WEEK_CAMPAIGN,
                starts_at=current_start - timedelta(days=7),
                ends_at=current_start,
                policy="steward",
                daily_cap_points=1000,
                cartridges_remanufactured=True,
            ),
            admin,
        )
        await set_rates(session, last_week.id, DEMO_RATES, admin)
        people: dict[str, Identity] = {}
        for user in (await session.exec(select(User))).all():
            found = await load_identity(session, user.id)
            if found is not None and found.department_id:
                people[user.username] = found
        writer = _Writer(session, settings.keyring, people)
        pending: dict[str, list[str]] = {}  # drop-offs awaiting the steward, per coordinator
        placed: dict[tuple[str, datetime], Order] = {}
        for event in sorted(await _plan(session, people, current_start)):
            await _apply(writer, event, pending, placed)
    # After the commit: on PostgreSQL the rollups the report reads are kept at commit time.
    await _pictures(session_factory, settings)
    await _summary_drafts(session_factory, last_week.id)


async def _plan(
    session: AsyncSession, people: dict[str, Identity], current_start: datetime
) -> list[_Event]:
    """What happens when, from a fixed seed: drop-offs on each of the ten days; the steward's
    decisions at the end of each day of last week; orders and their fate."""
    rng = random.Random(2026)
    events: list[_Event] = []
    last_hour = utcnow() - timedelta(hours=1)
    for demo in DEMO_DEPARTMENTS:
        department_id = people[f"coord-{demo.key}"].department_id
        codes = [
            s.code for s in (await session.exec(
                select(Station).where(Station.department_id == department_id).order_by(Station.name)
            )).all()
        ]  # fmt: skip
        catalog = (await session.exec(
            select(Product).where(Product.department_id == department_id).order_by(Product.name)
        )).all()  # fmt: skip
        crowd = [f"coord-{demo.key}", *(f"emp-{demo.key}{n}" for n in range(1, 6))]
        for day in range(-7, CURRENT_DAYS_BEHIND):
            morning = current_start + timedelta(days=day, hours=1)  # 09:00 in Shanghai
            for who in crowd:
                for _ in range(rng.choice([0, 1, 2, 2, 3, 3, 4])):
                    category, low, high, _weight = rng.choices(
                        HISTORY_DROPS, [d[3] for d in HISTORY_DROPS]
                    )[0]
                    at = morning + timedelta(minutes=rng.randrange(9 * 60))
                    if at > last_hour:
                        continue
                    quantity = rng.randint(low, high)
                    if category == "paper":
                        quantity = quantity // 10 * 10
                    steward = f"coord-{demo.key}" if day < 0 else None
                    args = (who, rng.choice(codes), category, quantity, steward)
                    events.append(_Event(at, len(events), "log", args))
            if day < 0:  # the steward goes through the day's drop-offs at 18:30
                at = morning + timedelta(hours=9, minutes=30)
                events.append(_Event(at, len(events), "decide", (f"coord-{demo.key}", day)))
            for who in crowd[1:]:
                if rng.random() < 0.35:
                    product = rng.choice(catalog[:4])
                    at = morning + timedelta(hours=8, minutes=rng.randrange(60))
                    if at > last_hour:
                        continue
                    events.append(_Event(at, len(events), "order", (who, product.id)))
                    fate = rng.choices(["hand_over", "cancel", None], [70, 15, 15])[0]
                    later = at + timedelta(minutes=rng.randrange(20, 50))
                    if fate and later < last_hour:
                        args = (who, f"coord-{demo.key}", fate, at)
                        events.append(_Event(later, len(events), "settle", args))
    return events


async def _apply(
    writer: _Writer,
    event: _Event,
    pending: dict[str, list[str]],
    placed: dict[tuple[str, datetime], Order],
) -> None:
    if event.kind == "log":
        who, station, category, quantity, steward = event.args
        dropoff_id = await writer.log(who, station, category, quantity, event.at)
        if dropoff_id and steward:
            pending.setdefault(steward, []).append(dropoff_id)
    elif event.kind == "decide":
        coordinator, day = event.args
        rng = random.Random(f"{coordinator}{day}")
        for n, dropoff_id in enumerate(pending.pop(coordinator, [])):
            at = event.at + timedelta(seconds=30 * n)
            roll = rng.random()
            if day == -1 and roll < 0.4:  # some of the last day's are still waiting
                continue
            if roll < 0.08:
                await writer.reject(coordinator, dropoff_id, at)
            else:
                await writer.confirm(coordinator, dropoff_id, None, at)
    elif event.kind == "order":
        who, product_id = event.args
        order = await writer.order(who, product_id, event.at)
        if order is not None:
            placed[(who, event.at)] = order
    elif event.kind == "settle":
        who, coordinator, fate, ordered_at = event.args
        order = placed.get((who, ordered_at))
        if order is None:
            return
        if fate == "hand_over":
            await writer.hand_over(coordinator, order, event.at)
        else:
            await writer.cancel(who, order, event.at)


async def _pictures(session_factory: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """A drawn picture for every demo product that has none."""
    async with transaction(session_factory) as session:
        found = (await session.exec(select(Product).order_by(Product.name))).all()
        for n, product in enumerate(found):
            if product.photo:
                continue
            picture = await asyncio.to_thread(product_picture, n)
            name = await asyncio.to_thread(photos.store, settings.data_dir, picture)
            await set_photo(session, product.department_id, product.id, name, product.created_by)


async def _summary_drafts(
    session_factory: async_sessionmaker[AsyncSession], campaign_id: str
) -> None:
    """Each department's summary of last week, drafted from its report and saved."""
    async with transaction(session_factory) as session:
        for demo in DEMO_DEPARTMENTS:
            user_id = (
                await session.exec(select(User.id).where(User.username == f"coord-{demo.key}"))
            ).one()
            coordinator = await load_identity(session, user_id)
            assert coordinator is not None and coordinator.department_id is not None
            department = await session.get(Department, coordinator.department_id)
            assert department is not None
            period = await reports.resolve_period(session, department.id, campaign=campaign_id)
            report = await reports.department_report(session, coordinator, department.id, period)
            subject = summaries.Subject(department.name, department.village_name)
            await summaries.save_summary(
                session,
                department.id,
                summaries.period_key(period),
                text=summaries.compose_draft(report, subject, "zh"),
                pictures=[f"chart:{c}" for c in summaries.DEPARTMENT_CHARTS],
                actor_id=coordinator.user_id,
                factor_set=report.factor_set.id,
            )

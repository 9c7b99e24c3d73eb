"""The guarantees under real concurrency, on PostgreSQL: many requests at once, each on its
own connection, racing for the same stock, idempotency key, daily cap or pickup token.

Each race runs twice: as the API runs the writes (a bare connection: one server-side call,
the Python path for what it declines) and as the pages and tools do (the caller's
transaction: the Python path alone)."""

import asyncio
import random
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from catalog.departments import register_department
from catalog.identity import Identity
from catalog.models import DepartmentStatus, Product, Role, User, UserRole, utcnow
from catalog.products import ProductDetails, create_product
from exchange import campaigns, dropoffs, orders, pickup, stations
from exchange.errors import (
    AlreadyPickedUp,
    DailyCapReached,
    InvalidTransition,
    PickupTokenRevoked,
    ShortStock,
)
from exchange.models import Dropoff, Order, OrderStatus
from exchange.points import ISSUANCE, REDEMPTION, user_account
from ledger import queries
from ledger.db import Db
from ledger.signing import KeyRing
from tests.conftest import _department

Factory = async_sessionmaker[AsyncSession]
Job = Callable[[Db], Awaitable[Any]]
CONNECTIONS = 40  # an app instance's pool; leaves room on a PostgreSQL allowing 100 in all
EXPIRY = timedelta(days=7)


@pytest.fixture(params=["one call", "python path"])
def via(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def factory(postgres_url: str) -> AsyncIterator[Factory]:
    engine = db.create_engine(postgres_url, pool_size=CONNECTIONS, max_overflow=0, pool_timeout=120)
    yield db.create_session_factory(engine)
    await engine.dispose()


@dataclass
class Setup:
    department_id: str
    employees: list[Identity]
    coordinators: list[Identity]
    station_code: str
    keyring: KeyRing


def identity(user: User, roles: set[Role]) -> Identity:
    return Identity(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        department_id=user.department_id,
        department_status=DepartmentStatus.approved,
        roles=frozenset(roles),
    )


async def setup(factory: Factory, employees: int, cap: int = 100_000) -> Setup:
    async with db.transaction(factory) as session:
        department = await register_department(session, _department("并发部门"), actor_id=None)
        department.status = DepartmentStatus.approved
        people = []
        for n in range(employees + 2):
            roles = {Role.employee} if n < employees else {Role.coordinator, Role.employee}
            user = User(
                username=f"user{n}",
                display_name=f"用户{n}",
                password_hash="-",
                department_id=department.id,
            )
            session.add(user)
            await session.flush()
            session.add_all(UserRole(user_id=user.id, role=role) for role in roles)
            people.append(identity(user, roles))
        campaign = await campaigns.create_campaign(
            session,
            campaigns.NewCampaign(
                name="节能周",
                starts_at=utcnow() - timedelta(hours=1),
                ends_at=utcnow() + timedelta(days=7),
                policy="auto",
                daily_cap_points=cap,
            ),
            actor_id="admin",
        )
        await campaigns.set_rates(session, campaign.id, {"ink_cartridge": 20}, "admin")
        station = await stations.create_station(
            session, department.id, name="大厅", location="", actor_id=people[-1].user_id
        )
    return Setup(
        department.id, people[:employees], people[employees:], station.code, KeyRing.ephemeral()
    )


async def all_at_once(factory: Factory, work: list[Job], via: str) -> list[Any]:
    """Run each piece of work on its own connection, all started together: outside any
    transaction (`one call`), or in a transaction of its own (`python path`); answers each
    result or the exception it raised."""
    start = asyncio.Event()

    async def one(job: Job) -> Any:
        await start.wait()
        try:
            if via == "python path":
                async with db.transaction(factory) as session:
                    return await job(session)
            async with db.connection(factory.kw["bind"]) as conn:
                result = await job(conn)
                if conn.in_transaction():  # work that has no one-call form (the sweep)
                    await conn.commit()
                return result
        except Exception as error:
            return error

    tasks = [asyncio.create_task(one(job)) for job in work]
    await asyncio.sleep(0)
    start.set()
    return await asyncio.gather(*tasks)


async def give_points(factory: Factory, s: Setup, who: Identity, points: int) -> None:
    async with db.transaction(factory) as session:
        while points > 0:
            count = min(points // 20, 50)
            await dropoffs.log_dropoff(
                session,
                who,
                station_code=s.station_code,
                category_code="ink_cartridge",
                quantity=count,
                idempotency_key=secrets.token_hex(8),
            )
            points -= count * 20


async def test_200_concurrent_orders_for_50_in_stock_reserve_exactly_50(
    factory: Factory,
    via: str,
) -> None:
    s = await setup(factory, employees=20)
    for employee in s.employees:
        await give_points(factory, s, employee, 200)
    async with db.transaction(factory) as session:
        product = await create_product(
            session,
            s.department_id,
            ProductDetails(name="大米", unit="袋", price_points=10, stock=50, value_fen=100),
            s.coordinators[0].user_id,
        )

    def buy(who: Identity) -> Callable[[AsyncSession], Awaitable[Any]]:
        async def job(session: Db) -> Any:
            return await orders.place_order(
                session,
                who,
                s.keyring,
                product_id=product.id,
                quantity=1,
                idempotency_key=secrets.token_hex(8),
                expiry=EXPIRY,
            )

        return job

    results = await all_at_once(factory, [buy(s.employees[n % 20]) for n in range(200)], via)
    outcomes = Counter(type(r).__name__ for r in results)
    assert outcomes == {"Placed": 50, "ShortStock": 150}, outcomes
    assert all(r.stock == 0 for r in results if isinstance(r, ShortStock))

    async with db.transaction(factory) as session:
        stock = (await session.exec(select(Product.stock).where(Product.id == product.id))).one()
        assert stock == 0
        held_by_user = dict(
            (
                await session.exec(
                    select(Order.user_id, func.sum(Order.points))
                    .where(Order.department_id == s.department_id)
                    .group_by(Order.user_id)
                )
            ).all()
        )
        assert sum(held_by_user.values()) == 500
        for employee in s.employees:
            balance = await queries.balance(
                session, s.department_id, user_account(employee.user_id)
            )
            assert balance.held == held_by_user.get(employee.user_id, 0)
            assert balance.available == 200 - balance.held
        redemption = await queries.balance(session, s.department_id, REDEMPTION)
        assert redemption.credits_pending == 500


async def test_50_concurrent_drop_offs_with_one_key_credit_once(factory: Factory, via: str) -> None:
    s = await setup(factory, employees=1)
    employee = s.employees[0]

    async def job(session: Db) -> Any:
        return await dropoffs.log_dropoff(
            session,
            employee,
            station_code=s.station_code,
            category_code="ink_cartridge",
            quantity=5,
            idempotency_key="the-one-key",
        )

    results = await all_at_once(factory, [job] * 50, via)
    assert all(not isinstance(r, Exception) for r in results), [
        r for r in results if isinstance(r, Exception)
    ][:3]
    assert len({r.dropoff.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    async with db.transaction(factory) as session:
        count = (await session.exec(select(func.count()).select_from(Dropoff))).one()
        assert count == 1
        balance = await queries.balance(session, s.department_id, user_account(employee.user_id))
        assert balance.available == 100
        assert await queries.ledger_size(session, s.department_id) == 1


async def test_the_daily_cap_holds_under_concurrent_drop_offs(factory: Factory, via: str) -> None:
    s = await setup(factory, employees=1, cap=1000)
    employee = s.employees[0]

    async def job(session: Db) -> Any:
        return await dropoffs.log_dropoff(
            session,
            employee,
            station_code=s.station_code,
            category_code="ink_cartridge",
            quantity=5,  # 100 points
            idempotency_key=secrets.token_hex(8),
        )

    results = await all_at_once(factory, [job] * 30, via)
    outcomes = Counter(type(r).__name__ for r in results)
    assert outcomes == {"Logged": 10, "DailyCapReached": 20}, outcomes
    assert all(r.remaining == 0 for r in results if isinstance(r, DailyCapReached))
    async with db.transaction(factory) as session:
        balance = await queries.balance(session, s.department_id, user_account(employee.user_id))
        assert balance.available == 1000
        issuance = await queries.balance(session, s.department_id, ISSUANCE)
        assert issuance.posted == -1000


async def test_two_coordinators_scanning_one_token_at_once_fulfil_it_once(
    factory: Factory,
    via: str,
) -> None:
    s = await setup(factory, employees=1)
    employee = s.employees[0]
    await give_points(factory, s, employee, 100)
    async with db.transaction(factory) as session:
        product = await create_product(
            session,
            s.department_id,
            ProductDetails(name="茶叶", unit="罐", price_points=60, stock=5),
            s.coordinators[0].user_id,
        )
        placed = await orders.place_order(
            session,
            employee,
            s.keyring,
            product_id=product.id,
            quantity=1,
            idempotency_key="o",
            expiry=EXPIRY,
        )
    token = pickup.sign(s.keyring, placed.order)

    def scan(coordinator: Identity) -> Callable[[AsyncSession], Awaitable[Any]]:
        async def job(session: Db) -> Any:
            return await pickup.redeem(
                session,
                s.keyring,
                token,
                coordinator_id=coordinator.user_id,
                coordinator_department_id=coordinator.department_id,
            )

        return job

    results = await all_at_once(factory, [scan(c) for c in s.coordinators] * 5, via)
    fulfilled = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, AlreadyPickedUp)]
    assert (len(fulfilled), len(refused)) == (1, 9), results
    winner = fulfilled[0].resolved_by
    assert {r.fulfilled_by for r in refused} == {
        next(c.display_name for c in s.coordinators if c.user_id == winner)
    }
    async with db.transaction(factory) as session:
        order = await session.get(Order, (s.department_id, placed.order.id))
        assert order is not None and order.status == OrderStatus.fulfilled
        balance = await queries.balance(session, s.department_id, user_account(employee.user_id))
        assert (balance.available, balance.held, balance.posted) == (40, 0, 40)
        redemption = await queries.balance(session, s.department_id, REDEMPTION)
        assert redemption.posted == 60
        page = await queries.list_entries(session, s.department_id, kind="post")
        assert len(page.entries) == 1


async def test_concurrent_orders_with_one_key_create_one_order(factory: Factory, via: str) -> None:
    """Orders take no user lock: concurrent same-key requests all pass the key check, and
    the unique index decides (the insert waits for the winner to commit), so every one of
    them answers the winner's order and the stock and points move once."""
    s = await setup(factory, employees=1)
    employee = s.employees[0]

    async def log(session: Db) -> Any:
        return await dropoffs.log_dropoff(
            session,
            employee,
            station_code=s.station_code,
            category_code="ink_cartridge",
            quantity=10,
            idempotency_key="drop",
        )

    assert not isinstance((await all_at_once(factory, [log], via))[0], Exception)
    async with db.transaction(factory) as session:
        product = await create_product(
            session,
            s.department_id,
            ProductDetails(name="蜂蜜", unit="瓶", price_points=50, stock=10),
            s.coordinators[0].user_id,
        )

    async def buy(session: Db) -> Any:
        return await orders.place_order(
            session,
            employee,
            s.keyring,
            product_id=product.id,
            quantity=2,
            idempotency_key="same-order",
            expiry=EXPIRY,
        )

    placed = await all_at_once(factory, [buy] * 20, via)
    assert all(not isinstance(r, Exception) for r in placed), placed
    assert len({r.order.id for r in placed}) == 1
    assert sum(not r.replayed for r in placed) == 1
    async with db.transaction(factory) as session:
        stock = (await session.exec(select(Product.stock).where(Product.id == product.id))).one()
        assert stock == 8
        balance = await queries.balance(session, s.department_id, user_account(employee.user_id))
        assert (balance.available, balance.held) == (100, 100)
        assert await queries.ledger_size(session, s.department_id) == 2


async def test_pickup_racing_cancel_and_expiry_ends_in_exactly_one_outcome(
    factory: Factory,
    via: str,
) -> None:
    """Each order is scanned, cancelled by its owner and swept as expired all at once: one
    of the three wins, the others are refused, and the hold is posted or voided once."""
    s = await setup(factory, employees=1)
    employee, coordinator = s.employees[0], s.coordinators[0]
    await give_points(factory, s, employee, 1000)
    async with db.transaction(factory) as session:
        product = await create_product(
            session,
            s.department_id,
            ProductDetails(name="香菇", unit="袋", price_points=10, stock=20),
            coordinator.user_id,
        )
    placed = []
    for n in range(10):
        async with db.transaction(factory) as session:
            result = await orders.place_order(
                session,
                employee,
                s.keyring,
                product_id=product.id,
                quantity=1,
                idempotency_key=f"o{n}",
                expiry=EXPIRY,
            )
            placed.append(result.order)
    later = utcnow() + EXPIRY + timedelta(minutes=1)

    def scan(order: Order) -> Callable[[AsyncSession], Awaitable[Any]]:
        async def job(session: Db) -> Any:
            return await pickup.redeem(
                session,
                s.keyring,
                pickup.sign(s.keyring, order),
                coordinator_id=coordinator.user_id,
                coordinator_department_id=s.department_id,
            )

        return job

    def cancel(order: Order) -> Callable[[AsyncSession], Awaitable[Any]]:
        async def job(session: Db) -> Any:
            return await orders.cancel_order(session, employee, order.id)

        return job

    def expire(order: Order) -> Callable[[AsyncSession], Awaitable[Any]]:
        async def job(session: Db) -> Any:
            return await orders.expire_due(session, s.department_id, later, limit=1)

        return job

    work = [make(order) for order in placed for make in (scan, cancel, expire)]
    random.Random(7).shuffle(work)  # so that each kind of action wins some races
    results = await all_at_once(factory, work, via)
    unexpected = [
        r
        for r in results
        if isinstance(r, Exception)
        and not isinstance(r, AlreadyPickedUp | PickupTokenRevoked | InvalidTransition)
    ]
    assert unexpected == []

    async with db.transaction(factory) as session:
        final = (
            await session.exec(select(Order).where(Order.department_id == s.department_id))
        ).all()
        assert all(o.status != OrderStatus.reserved for o in final)
        fulfilled = sum(o.status == OrderStatus.fulfilled for o in final)
        stock = (await session.exec(select(Product.stock).where(Product.id == product.id))).one()
        assert stock == 20 - fulfilled
        balance = await queries.balance(session, s.department_id, user_account(employee.user_id))
        assert (balance.held, balance.available) == (0, 1000 - 10 * fulfilled)
        redemption = await queries.balance(session, s.department_id, REDEMPTION)
        assert (redemption.posted, redemption.credits_pending) == (10 * fulfilled, 0)
        resolutions = await queries.list_entries(session, s.department_id, limit=500)
        by_kind = Counter(e.kind for e in resolutions.entries if e.reference.startswith("order:"))
        assert by_kind == +Counter(pending=10, post=fulfilled, void=10 - fulfilled)

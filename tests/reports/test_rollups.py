"""The rollups equal their recomputation from the raw rows after any sequence of real writes:
drop-offs logged (and retried with the same Idempotency-Key), confirmed with the quantity
weighed, rejected; orders placed (and retried), cancelled, picked up, expired. On SQLite and
PostgreSQL, and on PostgreSQL with writers racing in one department."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from api.cli import main
from catalog.departments import register_department
from catalog.errors import CatalogError
from catalog.identity import Identity, load_identity
from catalog.models import DepartmentStatus, Product, Role, User, UserRole
from exchange import dropoffs, orders, pickup
from exchange.campaigns import NewCampaign, create_campaign, set_rates
from exchange.errors import ExchangeError
from exchange.models import Station
from exchange.reports import rollups
from ledger.errors import LedgerError
from ledger.signing import KeyRing
from tests.conftest import _department as department_details

Factory = async_sessionmaker[AsyncSession]
T0 = datetime(2030, 3, 1, 1, 0, tzinfo=UTC)
RATES = {"paper": 40, "ink_cartridge": 20, "toner_cartridge": 30, "phone": 100}
QUANTITIES = {
    "paper": (100, 20_000),
    "ink_cartridge": (1, 5),
    "toner_cartridge": (1, 3),
    "phone": (1, 2),
}
KEYRING = KeyRing.ephemeral()


@dataclass
class Shop:
    """What the writes act on: the two departments' people, collection points and products,
    and the drop-offs and orders made so far."""

    employees: dict[str, list[str]]  # department -> user ids
    coordinators: dict[str, str]
    stations: dict[str, str]  # department -> station code
    products: dict[str, list[str]]
    dropoffs: list[tuple[str, str]] = field(default_factory=list)  # (department, id)
    orders: list[object] = field(default_factory=list)
    clock: datetime = T0


async def open_shop(session_factory: Factory, t0: datetime = T0) -> Shop:
    """Two approved departments, one confirming by steward and one at once, each with four
    employees, a coordinator, a collection point, two products and a year-long campaign from
    `t0` (the shop's clock)."""
    shop = Shop({}, {}, {}, {}, clock=t0)
    async with db.transaction(session_factory) as session:
        for n, policy in enumerate(("steward", "auto")):
            department = await register_department(
                session, department_details(f"汇总{policy}"), actor_id=None
            )
            department.status = DepartmentStatus.approved
            dept = department.id
            people = []
            for m in range(5):
                user = User(
                    username=f"{policy}-{m}", display_name=f"职工{m}", password_hash="-",
                    department_id=dept,
                )  # fmt: skip
                session.add(user)
                await session.flush()
                session.add(UserRole(user_id=user.id, role=Role.employee))
                people.append(user.id)
            shop.employees[dept], shop.coordinators[dept] = people[:4], people[4]
            session.add(UserRole(user_id=people[4], role=Role.coordinator))
            campaign = await create_campaign(
                session,
                NewCampaign(
                    name=f"全年 {policy}",
                    starts_at=t0 - timedelta(days=1),
                    ends_at=t0 + timedelta(days=360),
                    policy=policy,
                    daily_cap_points=1_000_000,
                    department_id=dept,
                ),
                "admin",
            )
            await set_rates(session, campaign.id, RATES, "admin")
            station = Station(
                department_id=dept, code=f"rollup{n}", name="大厅", created_by="admin",
                updated_by="admin",
            )  # fmt: skip
            session.add(station)
            shop.stations[dept] = station.code
            shop.products[dept] = []
            for k, price in enumerate((20, 60)):
                product = Product(
                    department_id=dept, name=f"产品{k}", unit="袋", price_points=price,
                    value_fen=price * 30, stock=10_000, created_by="admin", updated_by="admin",
                )  # fmt: skip
                session.add(product)
                shop.products[dept].append(product.id)
    return shop


async def identity(session: AsyncSession, user_id: str) -> Identity:
    found = await load_identity(session, user_id)
    assert found is not None
    return found


REFUSED = (ExchangeError, CatalogError, LedgerError)


async def write(session_factory: Factory, action) -> object | None:  # type: ignore[no-untyped-def]
    """One write in its own transaction; a refusal writes nothing and is part of the game."""
    try:
        async with db.transaction(session_factory) as session:
            return await action(session)
    except REFUSED:
        return None


async def step(shop: Shop, session_factory: Factory, op: tuple) -> None:  # type: ignore[type-arg]
    kind = op[0]
    shop.clock += timedelta(minutes=op[-1])
    now = shop.clock
    dept = [*shop.employees][op[1] % 2]
    if kind == "drop":
        _, _, who, category, size, retry, _ = op
        user = shop.employees[dept][who % len(shop.employees[dept])]
        low, high = QUANTITIES[category]
        quantity = low + size % (high - low + 1)
        key = f"drop-{now.timestamp()}"

        async def log(session: AsyncSession, q: int = quantity) -> object:
            return await dropoffs.log_dropoff(
                session, await identity(session, user), station_code=shop.stations[dept],
                category_code=category, quantity=q, idempotency_key=key, now=now,
            )  # fmt: skip

        logged = await write(session_factory, log)
        if logged is not None:
            shop.dropoffs.append((dept, logged.dropoff.id))  # type: ignore[attr-defined]
        if retry:  # the same request again, then the same key with another quantity
            await write(session_factory, log)
            await write(session_factory, lambda s: log(s, quantity + 1))
    elif kind in ("confirm", "reject") and shop.dropoffs:
        _, _, index, weighed, _ = op
        dept, dropoff_id = shop.dropoffs[index % len(shop.dropoffs)]
        actor = shop.coordinators[dept]
        if kind == "confirm":
            await write(
                session_factory,
                lambda s: dropoffs.confirm_dropoff(
                    s, dept, dropoff_id, actor, quantity=weighed or None, now=now
                ),
            )
        else:
            await write(
                session_factory,
                lambda s: dropoffs.reject_dropoff(
                    s, dept, dropoff_id, actor, reason="不符", now=now
                ),
            )
    elif kind == "order":
        _, _, who, product, quantity, retry, _ = op
        user = shop.employees[dept][who % len(shop.employees[dept])]
        product_id = shop.products[dept][product % 2]
        key = f"order-{now.timestamp()}"

        async def place(session: AsyncSession) -> object:
            return await orders.place_order(
                session, await identity(session, user), KEYRING, product_id=product_id,
                quantity=quantity, idempotency_key=key, expiry=timedelta(days=2), now=now,
            )  # fmt: skip

        for _ in range(2 if retry else 1):
            placed = await write(session_factory, place)
        if placed is not None and not placed.replayed:  # type: ignore[attr-defined]
            shop.orders.append(placed.order)  # type: ignore[attr-defined]
    elif kind in ("cancel", "pickup") and shop.orders:
        order = shop.orders[op[2] % len(shop.orders)]
        if kind == "cancel":

            async def cancel(session: AsyncSession) -> object:
                owner = await identity(session, order.user_id)  # type: ignore[attr-defined]
                return await orders.cancel_order(session, owner, order.id, now)  # type: ignore[attr-defined]

            await write(session_factory, cancel)
        else:
            await write(
                session_factory,
                lambda s: pickup.redeem(
                    s, KEYRING, pickup.sign(KEYRING, order),  # type: ignore[arg-type]
                    coordinator_id=shop.coordinators[order.department_id],  # type: ignore[attr-defined]
                    coordinator_department_id=order.department_id,  # type: ignore[attr-defined]
                    now=now,
                ),
            )  # fmt: skip
    elif kind == "expire":
        for dept in shop.employees:
            await write(session_factory, lambda s, d=dept: orders.expire_due(s, d, now, 100))


async def assert_rollups_equal_the_raw_rows(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        differences = await rollups.check(conn)
    assert differences == [], "\n".join(map(str, differences))


def operations(tick: st.SearchStrategy[int]) -> st.SearchStrategy[tuple]:  # type: ignore[type-arg]
    """One write of any kind, `tick` minutes after the one before."""
    return st.one_of(
        st.tuples(
            st.just("drop"), st.integers(0, 1), st.integers(0, 5), st.sampled_from(list(RATES)),
            st.integers(0, 50_000), st.booleans(), tick,
        ),
        st.tuples(
            st.sampled_from(["confirm", "reject"]), st.integers(0, 1), st.integers(0, 99),
            st.one_of(st.just(0), st.integers(1, 5), st.integers(100, 20_000)), tick,
        ),
        st.tuples(
            st.just("order"), st.integers(0, 1), st.integers(0, 5), st.integers(0, 1),
            st.integers(1, 3), st.booleans(), tick,
        ),
        st.tuples(
            st.sampled_from(["cancel", "pickup"]), st.integers(0, 1), st.integers(0, 99), tick
        ),
        st.tuples(st.just("expire"), st.integers(0, 1), tick),
    )  # fmt: skip


ops = st.lists(operations(st.integers(0, 600)), max_size=25)  # minutes since the step before


@pytest.fixture
async def shop(session_factory: Factory) -> Shop:
    return await open_shop(session_factory)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=ops)
async def test_rollups_equal_the_raw_rows_after_any_sequence_of_writes(
    shop: Shop,
    session_factory: Factory,
    engine: AsyncEngine,
    steps: list[tuple],  # type: ignore[type-arg]
) -> None:
    # Examples follow each other in one database, so the state only grows more varied; the
    # clock only moves forward, as the ledger's does.
    for op in steps:
        await step(shop, session_factory, op)
    await assert_rollups_equal_the_raw_rows(engine)


async def test_a_rebuild_makes_drifted_rollups_equal_again_and_check_names_the_row(
    shop: Shop, session_factory: Factory, engine: AsyncEngine
) -> None:
    for n in range(6):
        await step(shop, session_factory, ("drop", n, n, "paper", 1000 * n, False, 30))
    await step(shop, session_factory, ("confirm", 0, 0, 0, 5))
    async with engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE report_station_days SET dropoffs = dropoffs + 1")
    async with engine.connect() as conn:
        differences = await rollups.check(conn)
    assert {d.rollup for d in differences} == {"report_station_days"}
    async with engine.begin() as conn:
        await rollups.rebuild(conn)
    await assert_rollups_equal_the_raw_rows(engine)


async def test_any_writer_keeps_them_across_months_and_years_even_taking_a_drop_off_back(
    shop: Shop, session_factory: Factory, engine: AsyncEngine
) -> None:
    """Participants' month and year rows count days and months with activity, so they move
    only when a day turns active or idle: drop-offs and orders across a month's and a year's
    end, then changes no exchange function makes — a confirmed drop-off rejected, moved to
    another day, deleted — written straight into the table, as any writer may."""
    month = 60 * 24 * 31
    for tick in (0, 30, month, 60, 60 * 24 * 280, 60, month):  # into 2031 by the end
        await step(shop, session_factory, ("drop", 1, 0, "paper", 500, False, tick))
        await step(shop, session_factory, ("drop", 1, 1, "ink_cartridge", 1, False, 1))
        await step(shop, session_factory, ("order", 1, 0, 0, 1, False, 1))
    await assert_rollups_equal_the_raw_rows(engine)
    auto = [*shop.employees][1]
    async with engine.connect() as conn:
        logged = (
            await conn.execute(
                sa.text("SELECT id FROM dropoffs WHERE department_id = :dept ORDER BY created_at"),
                {"dept": auto},
            )
        ).scalars()
        earliest, second, third = list(logged)[:3]
        years = await conn.execute(
            sa.text(
                "SELECT DISTINCT start_day FROM report_participants WHERE span = 'year' AND "
                "department_id = :dept AND dropoffs > 0 ORDER BY start_day"
            ),
            {"dept": auto},
        )
        assert [str(day)[:4] for day in years.scalars()] == ["2030", "2031"]
    for change in (
        "UPDATE dropoffs SET status = 'rejected' WHERE id = :id",
        "UPDATE dropoffs SET local_day = '2030-12-31' WHERE id = :id",
        "DELETE FROM dropoffs WHERE id = :id",
    ):
        async with engine.begin() as conn:
            target = {"UPDATE dropoffs SET status": earliest, "UPDATE dropoffs SET local": second}
            await conn.execute(sa.text(change), {"id": target.get(change[:26], third)})
        await assert_rollups_equal_the_raw_rows(engine)


async def test_writers_racing_in_one_department_keep_the_rollups_exact(
    pg_session_factory: Factory, pg_engine: AsyncEngine
) -> None:
    """Dozens of concurrent transactions on PostgreSQL — drop-offs, confirmations on the
    same days and categories, orders, pickups, cancellations and retries of one key at once —
    end with rollups equal to the raw rows, and none of them deadlocks."""
    shop = await open_shop(pg_session_factory)
    rng = random.Random(15)

    async def burst(ops: list[tuple]) -> None:  # type: ignore[type-arg]
        await asyncio.gather(*(step(shop, pg_session_factory, op) for op in ops))

    # Drop-offs first (some retried at once with the same key), then a mix of everything.
    await burst([("drop", 0, n, "paper", rng.randrange(50_000), n % 4 == 0, 0) for n in range(24)])
    await burst([("drop", 0, n, "ink_cartridge", n, False, 0) for n in range(8)] + [
        ("confirm", 0, n, rng.choice([0, 500, 3000]), 0) for n in range(16)
    ] + [("reject", 0, n, 0, 0) for n in range(16, 20)])  # fmt: skip
    await burst([("order", 0, n, n % 2, 1, n % 3 == 0, 0) for n in range(12)])
    await burst(
        [("pickup", 0, n, 0) for n in range(6)] + [("cancel", 0, n, 0) for n in range(6, 9)]
    )
    await assert_rollups_equal_the_raw_rows(pg_engine)


async def test_the_migration_backfills_the_rollups_from_the_rows_already_there(
    shop: Shop, session_factory: Factory, engine: AsyncEngine, database_url: str
) -> None:
    for n in range(4):
        await step(shop, session_factory, ("drop", n, n, "paper", 1000 * n, False, 60))
        await step(shop, session_factory, ("order", n, n, 0, 1, False, 60))
    await step(shop, session_factory, ("confirm", 0, 0, 0, 5))
    await step(shop, session_factory, ("pickup", 1, 1, 5))
    await engine.dispose()  # the migration runs on connections of its own
    config = db.alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, "0008")  # the revision before 0009
    await asyncio.to_thread(command.upgrade, config, "head")
    async with engine.connect() as conn:
        stored = (await conn.exec_driver_sql("SELECT count(*) FROM report_dropoff_days")).scalar()
    assert stored
    await assert_rollups_equal_the_raw_rows(engine)


def assert_check_names_a_change_and_rebuild_mends_it(
    database_url: str,
    data_dir: Path,
    table: str,
    write: Callable[[Factory], Awaitable[None]],
) -> None:
    """`exchange reports check` exits 0 on the rows `write` leaves, 1 naming `table` and the
    column once a row of it is changed behind the triggers' back, and 0 after `rebuild`."""
    env = {"EXCHANGE_DATABASE_URL": database_url, "EXCHANGE_DATA_DIR": str(data_dir)}

    async def write_some(corrupt: bool) -> None:
        engine = db.create_engine(database_url)
        try:
            if corrupt:
                async with engine.begin() as conn:
                    await conn.exec_driver_sql(f"UPDATE {table} SET points_issued = 7")
                return
            await write(db.create_session_factory(engine))
        finally:
            await engine.dispose()

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, ["reports", *args], env=env)

    asyncio.run(write_some(corrupt=False))
    checked = run("check")
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("OK")
    asyncio.run(write_some(corrupt=True))
    checked = run("check")
    assert checked.exit_code == 1
    assert table in checked.output and "points_issued" in checked.output
    assert run("rebuild").exit_code == 0
    assert run("check").exit_code == 0


def test_exchange_reports_check_exits_1_naming_each_difference_and_rebuild_mends_it(
    database_url: str, tmp_path: Path
) -> None:
    async def three_drop_offs(factory: Factory) -> None:
        shop = await open_shop(factory)
        for n in range(3):
            await step(shop, factory, ("drop", 1, n, "ink_cartridge", n, False, 60))

    assert_check_names_a_change_and_rebuild_mends_it(
        database_url, tmp_path / "data", "report_days", three_drop_offs
    )

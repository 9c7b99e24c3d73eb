"""Reports benchmark: a department-year and a whole platform, on PostgreSQL and SQLite.

    uv run python bench/reports.py                      # PostgreSQL (see --postgres) and SQLite
    EXCHANGE_BENCH_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \
        uv run python bench/reports.py --runs 5
    uv run python bench/reports.py --no-postgres --scale 0.1     # quick, SQLite only

It creates (and drops) scratch PostgreSQL databases and temporary SQLite files, migrates them
with the project's Alembic migrations, and bulk-loads them straight into the tables (COPY on
PostgreSQL, executemany on SQLite), not through the app:

- department-year: one department, 2,000 members, 200,000 drop-offs and 50,000 orders over
  the year 2025 (Asia/Shanghai);
- platform: 100 departments, each with 200 members, 20,000 drop-offs and 2,000 orders.

The bulk load bypasses the rollup triggers (COPY with session_replication_role = replica on
PostgreSQL; on SQLite the triggers are dropped for the load and installed again after it),
so the rollups are then rebuilt from the raw rows in one pass
(`exchange.reports.rollups.rebuild`, what `exchange reports rebuild` runs), and checked.

Then it times `exchange.reports.department_report` for the whole year and
`exchange.reports.platform_report` for the whole year, each in its own session as the API
calls them, beside a raw baseline: one plain `SELECT count(*), sum(points)` over the same
drop-offs through the same driver, i.e. the cost of reading the rows once. `--scale 5`
loads five times the drop-offs and orders per department (the same members and days): a
report read from rollups should take the same time at both.

The reports read drop-offs, orders, users and stations, never ledger entries, so no ledger
rows are seeded (the drop-offs' and orders' ledger sequence numbers are placeholders); the
tests check the reports against the ledger (tests/reports/test_reconciliation.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import db
from bench.tables import out, table
from catalog.identity import Identity
from catalog.models import DepartmentStatus, Role
from exchange import reports
from exchange.campaigns import SHANGHAI
from exchange.models import Dropoff
from exchange.reports import rollups

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
YEAR_START = datetime(2025, 1, 1, tzinfo=SHANGHAI).astimezone(UTC)
YEAR_SECONDS = 365 * 86400
CATEGORIES = [  # (code, unit, weight, points per kg or item, max quantity)
    ("paper", "g", 50, 40, 20_000),
    ("ink_cartridge", "item", 15, 20, 5),
    ("toner_cartridge", "item", 10, 30, 3),
    ("phone", "item", 5, 100, 2),
    ("charger_cable", "item", 10, 10, 5),
    ("keyboard_mouse", "item", 5, 15, 2),
    ("other_small_device", "item", 5, 20, 2),
]
DROPOFF_STATUSES = (["confirmed"] * 88) + (["rejected"] * 6) + (["pending"] * 6)
ORDER_STATUSES = (["fulfilled"] * 80) + (["cancelled"] * 8) + (["expired"] * 7) + (["reserved"] * 5)


# --- generated rows --------------------------------------------------------------------------


def _id(n: int) -> str:
    return f"{n:022x}"


class Shape:
    def __init__(
        self, name: str, departments: int, members: int, dropoffs: int, orders: int
    ) -> None:
        self.name = name
        self.departments = departments
        self.members = members  # per department
        self.dropoffs = dropoffs  # per department
        self.orders = orders  # per department


def rows(shape: Shape, seed: int = 7) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, with datetimes as aware UTC values."""
    rnd = random.Random(seed)
    t0 = YEAR_START
    out_rows: dict[str, list[tuple[Any, ...]]] = {
        k: [] for k in ("departments", "users", "user_roles", "stations", "products",
                        "campaigns", "dropoffs", "orders")
    }  # fmt: skip
    campaign = _id(1)
    out_rows["campaigns"].append(
        (campaign, None, "2025 全年", t0, t0 + timedelta(days=365), "steward", 100_000, t0, "bench")
    )
    weights = [c[2] for c in CATEGORIES]
    serial = 10
    for d in range(shape.departments):
        dept = _id(1_000_000 + d)
        out_rows["departments"].append(
            (dept, f"部门{d:03d}", "approved", f"村{d}", "县", "省", "联系人", "0000", "大厅",
             t0, None, t0, None)
        )  # fmt: skip
        users = []
        for m in range(shape.members):
            serial += 1
            user = _id(serial)
            users.append(user)
            out_rows["users"].append((user, f"u{d}x{m}", f"员工{m}", "x", dept, True, None, t0))
            out_rows["user_roles"].append((user, "employee"))
        stations = []
        for s in range(10):
            serial += 1
            stations.append(_id(serial))
            out_rows["stations"].append(
                (dept, stations[-1], f"b{d}s{s}", f"收集点{s}", "", True, t0, "bench", t0, "bench")
            )
        products = []
        for p in range(20):
            serial += 1
            price = 20 + 10 * p
            products.append((_id(serial), f"扶贫产品{p}", "袋", price, price * 30))
            out_rows["products"].append(
                (dept, products[-1][0], products[-1][1], "", "袋", price, price * 30, 1000, None,
                 True, t0, "bench", t0, "bench")
            )  # fmt: skip
        for _ in range(shape.dropoffs):
            serial += 1
            code, unit, _, rate, most = rnd.choices(CATEGORIES, weights)[0]
            quantity = rnd.randint(100, most) if unit == "g" else rnd.randint(1, most)
            points = quantity * rate // 1000 if unit == "g" else quantity * rate
            status = rnd.choice(DROPOFF_STATUSES)
            created = t0 + timedelta(seconds=rnd.randrange(YEAR_SECONDS))
            decided = (
                None if status == "pending" else created + timedelta(minutes=rnd.randrange(2880))
            )
            out_rows["dropoffs"].append(
                (dept, _id(serial), rnd.choice(users), rnd.choice(stations), campaign, code, unit,
                 quantity, quantity if status == "confirmed" else None, rate, points, status,
                 created.astimezone(SHANGHAI).date().isoformat(), serial, None, None, created,
                 decided, None, None, f"k{serial}", "h")
            )  # fmt: skip
        for _ in range(shape.orders):
            serial += 1
            product, name, unit, price, value = rnd.choice(products)
            quantity = rnd.randint(1, 3)
            status = rnd.choice(ORDER_STATUSES)
            created = t0 + timedelta(seconds=rnd.randrange(YEAR_SECONDS))
            resolved = (
                None if status == "reserved" else created + timedelta(hours=rnd.randint(1, 160))
            )
            out_rows["orders"].append(
                (dept, _id(serial), rnd.choice(users), product, name, unit, price, value,
                 quantity, price * quantity, value * quantity, status, serial, None, "j", "k",
                 created, created + timedelta(days=7), resolved, None, f"k{serial}", "h")
            )  # fmt: skip
    return out_rows


COLUMNS = {
    "departments": "id name status village_name village_county village_province contact_name "
    "contact_phone pickup_location created_at created_by status_changed_at status_changed_by",
    "users": "id username display_name password_hash department_id is_active language created_at",
    "user_roles": "user_id role",
    "stations": "department_id id code name location active created_at created_by updated_at "
    "updated_by",
    "products": "department_id id name description unit price_points value_fen stock photo "
    "active created_at created_by updated_at updated_by",
    "campaigns": "id department_id name starts_at ends_at policy daily_cap_points created_at "
    "created_by",
    "dropoffs": "department_id id user_id station_id campaign_id category unit quantity "
    "confirmed_quantity rate_points points status local_day ledger_seq resolution_seq "
    "adjustment_seq created_at decided_at decided_by reject_reason idempotency_key request_hash",
    "orders": "department_id id user_id product_id product_name product_unit unit_price_points "
    "unit_value_fen quantity points value_fen status hold_seq resolution_seq pickup_jti "
    "pickup_kid created_at expires_at resolved_at resolved_by idempotency_key request_hash",
}
ORDER = ["departments", "users", "user_roles", "campaigns", "stations", "products", "dropoffs",
         "orders"]  # fmt: skip


async def load_postgres(dsn: str, data: dict[str, list[tuple[Any, ...]]]) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        # The generated rows are consistent; skipping the foreign-key triggers only saves time.
        await connection.execute("SET session_replication_role = replica")
        for name in ORDER:
            await connection.copy_records_to_table(
                name, records=data[name], columns=COLUMNS[name].split()
            )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def _sqlite_value(value: Any) -> Any:
    # How SQLAlchemy stores a UTC datetime in SQLite: naive ISO text with microseconds.
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def load_sqlite(path: Path, data: dict[str, list[tuple[Any, ...]]]) -> None:
    connection = sqlite3.connect(path)
    try:
        with connection:
            for statement in rollups.uninstall_statements("sqlite"):
                connection.execute(statement)
            for name in ORDER:
                columns = COLUMNS[name].split()
                connection.executemany(
                    f"INSERT INTO {name} ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})",
                    ([_sqlite_value(v) for v in row] for row in data[name]),
                )
            for statement in rollups.install_statements("sqlite"):
                connection.execute(statement)
        connection.execute("ANALYZE")
    finally:
        connection.close()


# --- timing ------------------------------------------------------------------------------------


async def timed(runs: int, action: Callable[[], Awaitable[object]]) -> list[float]:
    await action()  # warm the caches and the connection pool
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await action()
        times.append((time.perf_counter() - started) * 1000)
    return times


def summary(times: list[float]) -> list[str]:
    return [f"{statistics.median(times):,.0f}", f"{min(times):,.0f}", f"{max(times):,.0f}"]


AUDITOR = Identity(
    user_id="bench",
    username="bench",
    display_name="bench",
    department_id=None,
    department_status=DepartmentStatus.approved,
    roles=frozenset({Role.auditor}),
)


async def rebuild_rollups(url: str) -> float:
    """Fill the rollups from the bulk-loaded rows and check them; the seconds it took."""
    engine = db.create_engine(url)
    try:
        started = time.perf_counter()
        async with engine.begin() as conn:
            await rollups.rebuild(conn)
        elapsed = time.perf_counter() - started
        async with engine.connect() as conn:
            differences = await rollups.check(conn)
        assert not differences, differences[:5]
        return elapsed
    finally:
        await engine.dispose()


# The report's queries, in the order `exchange.reports.queries._report` runs them.
QUERIES = ("_dropoffs", "_day_series", "_movements", "_balances_at_end", "_participants",
           "_first_timers", "_products")  # fmt: skip
BREAKDOWN: list[list[Any]] = []  # rows of the per-query table, filled by --queries


async def per_query(
    factory: Any, database: str, label: str, scope: str | None, period: Any, runs: int
) -> None:
    """Each of the report's queries alone, in its own transaction: where a report's time goes."""
    from collections import defaultdict

    from exchange.reports import months, queries

    for name in QUERIES:
        query = getattr(queries, name)

        async def one(q: Any = query, n: str = name) -> None:
            async with db.transaction(factory) as session:
                if n in ("_day_series", "_first_timers"):
                    await q(session, scope, period)
                elif n == "_participants":
                    await q(session, scope, period, defaultdict(queries._Dept))
                else:
                    folds = await months.folds(await session.connection(), scope)
                    await q(session, scope, period, folds, defaultdict(queries._Dept))

        BREAKDOWN.append([database, label, name.lstrip("_"), *summary(await timed(runs, one))])


async def measure(url: str, shape: Shape, runs: int, breakdown: bool = False) -> list[list[Any]]:
    engine = db.create_engine(url)
    factory = db.create_session_factory(engine)
    year = reports.Period.of_days(
        YEAR_START.astimezone(SHANGHAI).date(),
        (YEAR_START + timedelta(days=364)).astimezone(SHANGHAI).date(),
    )
    first_dept = _id(1_000_000)
    results = []
    try:

        async def department() -> None:
            async with db.transaction(factory) as session:
                await reports.department_report(session, AUDITOR, first_dept, year)

        async def whole_platform() -> None:
            async with db.transaction(factory) as session:
                await reports.platform_report(session, year)

        async def raw(scope: str) -> None:
            dropoffs = Dropoff.__table__
            query = select(func.count(), func.sum(dropoffs.c.points)).where(
                dropoffs.c.created_at >= year.start, dropoffs.c.created_at < year.end
            )
            if scope == "dept":
                query = query.where(dropoffs.c.department_id == first_dept)
            async with db.transaction(factory) as session:
                (await session.exec(query)).all()  # type: ignore[call-overload]

        database = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        label = f"{shape.name}: one department ({shape.dropoffs:,} drop-offs)"
        results.append([label, *summary(await timed(runs, department)),
                        *summary(await timed(runs, lambda: raw("dept")))])  # fmt: skip
        if breakdown:
            await per_query(factory, database, label, first_dept, year, runs)
        if shape.departments > 1:
            label = f"{shape.name}: platform ({shape.departments * shape.dropoffs:,} drop-offs)"
            results.append([label, *summary(await timed(runs, whole_platform)),
                            *summary(await timed(runs, lambda: raw("all")))])  # fmt: skip
            if breakdown:
                await per_query(factory, database, label, None, year, runs)
    finally:
        await engine.dispose()
    return results


async def run_postgres(
    base: str, shapes: list[Shape], runs: int, breakdown: bool
) -> list[list[Any]]:
    admin_dsn = base.replace("+asyncpg", "")
    results = []
    for shape in shapes:
        name = f"reports_bench_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f"CREATE DATABASE {name}")
        await admin.close()
        url = f"{base.rsplit('/', 1)[0]}/{name}"
        try:
            await asyncio.to_thread(db.upgrade, url)
            started = time.perf_counter()
            await load_postgres(url.replace("+asyncpg", ""), rows(shape))
            out(f"PostgreSQL {shape.name}: loaded in {time.perf_counter() - started:.0f} s, "
                f"rollups rebuilt in {await rebuild_rollups(url):.1f} s")  # fmt: skip
            results += [["PostgreSQL", *r] for r in await measure(url, shape, runs, breakdown)]
            out(f"  {results[-1]}")
        finally:
            admin = await asyncpg.connect(admin_dsn)
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await admin.close()
    return results


async def run_sqlite(shapes: list[Shape], runs: int, breakdown: bool) -> list[list[Any]]:
    results = []
    for shape in shapes:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "reports.db"
            url = f"sqlite+aiosqlite:///{path}"
            await asyncio.to_thread(db.upgrade, url)
            started = time.perf_counter()
            await asyncio.to_thread(load_sqlite, path, rows(shape))
            out(f"SQLite {shape.name}: loaded in {time.perf_counter() - started:.0f} s, "
                f"rollups rebuilt in {await rebuild_rollups(url):.1f} s")  # fmt: skip
            results += [["SQLite", *r] for r in await measure(url, shape, runs, breakdown)]
            out(f"  {results[-1]}")
    return results


def shapes(scale: float) -> list[Shape]:
    """Above 1, only the drop-offs and orders grow (the same members, days, points and
    products): the growth the rollups must not feel. Below 1, everything shrinks (quick runs)."""

    def n(value: int, grows: bool = True) -> int:
        return max(1, int(value * (scale if grows or scale < 1 else 1)))

    return [
        Shape("department-year", 1, n(2000, False), n(200_000), n(50_000)),
        Shape("platform", 100, n(200, False), n(20_000), n(2_000)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--postgres", default=os.environ.get("EXCHANGE_BENCH_POSTGRES_URL", DEFAULT_PG)
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each report")
    parser.add_argument(
        "--shape", choices=["department-year", "platform"], help="only this data set"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the data sizes")
    parser.add_argument(
        "--queries", action="store_true", help="also time each of the report's queries alone"
    )
    args = parser.parse_args()

    out(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    results: list[list[Any]] = []
    chosen = [s for s in shapes(args.scale) if args.shape in (None, s.name)]
    if not args.no_postgres:
        results += asyncio.run(run_postgres(args.postgres, chosen, args.runs, args.queries))
    if not args.no_sqlite:
        results += asyncio.run(run_sqlite(chosen, args.runs, args.queries))
    table(
        f"Report times over the year, ms ({args.runs} runs after one warm-up, scale {args.scale})",
        ["database", "report", "median", "min", "max", "raw scan median", "min", "max"],
        results,
    )
    if BREAKDOWN:
        table(
            "Each query of the report alone, ms",
            ["database", "report", "query", "median", "min", "max"],
            BREAKDOWN,
        )
    out(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

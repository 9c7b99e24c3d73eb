"""Request deadlines (api/deadlines.py): a request kept waiting by the database answers 503 with
Retry-After when its deadline passes, however it waits, and a retry with the same
Idempotency-Key writes once. The bound with the default settings, against a real server and a
silent PostgreSQL, is asserted in test_crash_recovery.py."""

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlmodel import func, select

from api import db
from api.app import create_app
from api.settings import Settings
from exchange.models import Dropoff
from tests.conftest import World
from tests.exchange.helpers import add_station, drop, open_campaign
from tests.foundation.test_ops import Proxy, free_port
from tests.foundation.test_problems import assert_problem

DEADLINE = 1.0
REPORT_DEADLINE = 2.5
# What the answer may take beyond the deadline on a busy machine: it must not wait for the
# cancelled request to clean up on a database that does not answer.
SLACK = 1.5


@pytest.fixture
def proxy(database_url: str) -> Iterator[Proxy | None]:
    """On PostgreSQL, a proxy the app reaches the database through, which the test freezes."""
    if database_url.startswith("sqlite"):
        yield None
        return
    proxy = Proxy(free_port())
    proxy.start()
    yield proxy
    proxy.thaw()
    proxy.stop()
    proxy.close()


@pytest.fixture
def settings(settings: Settings, proxy: Proxy | None) -> Settings:
    changes: dict[str, object] = {
        "request_deadline_seconds": DEADLINE,
        "report_deadline_seconds": REPORT_DEADLINE,
    }
    if proxy is not None:
        changes["database_url"] = settings.database_url.replace(
            "127.0.0.1:5432", f"127.0.0.1:{proxy.port}"
        )
    return settings.model_copy(update=changes)


@contextlib.contextmanager
def database_silent(database_url: str, proxy: Proxy | None) -> Iterator[None]:
    """PostgreSQL stops answering (its proxy forwards nothing); on SQLite, another process
    holds the write lock, so a write waits (up to the 30 s busy timeout)."""
    if proxy is not None:
        proxy.freeze()
        try:
            yield
        finally:
            proxy.thaw()
        return
    holder = sqlite3.connect(db.sqlite_path(database_url), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_a_write_kept_waiting_answers_503_by_its_deadline_and_a_retry_writes_once(
    client: AsyncTestClient[Litestar],
    world: World,
    database_url: str,
    proxy: Proxy | None,
) -> None:
    await open_campaign(client, world.headers["admin"])
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    employee = world.headers["emp-a"]
    assert (await drop(client, employee, station["code"], "phone", 1)).status_code == 201

    with database_silent(database_url, proxy):
        started = time.monotonic()
        answer = await drop(client, employee, station["code"], "phone", 2, key="in-the-dark")
        took = time.monotonic() - started
        problem = assert_problem(answer, 503)
    assert DEADLINE <= took < DEADLINE + SLACK, took
    assert answer.headers["retry-after"].isdigit()
    assert "same Idempotency-Key" in problem["detail"]

    # The database answers again: the retry with the same key writes the drop-off, once.
    for _ in range(50):
        retried = await drop(client, employee, station["code"], "phone", 2, key="in-the-dark")
        if retried.status_code != 503:
            break
        await asyncio.sleep(0.1)
    assert retried.status_code == 201, retried.text
    again = await drop(client, employee, station["code"], "phone", 2, key="in-the-dark")
    assert again.json()["id"] == retried.json()["id"]
    engine = db.create_engine(database_url)
    try:
        async with db.transaction(db.create_session_factory(engine)) as session:
            count = (await session.exec(select(func.count()).select_from(Dropoff))).one()
    finally:
        await engine.dispose()
    assert count == 2


async def test_a_read_kept_waiting_answers_503_by_its_deadline_too(
    client: AsyncTestClient[Litestar], world: World, database_url: str, proxy: Proxy | None
) -> None:
    if proxy is None:
        pytest.skip("SQLite's readers do not wait for its writer (WAL)")
    with database_silent(database_url, proxy):
        started = time.monotonic()
        # A token not seen before: the caller is loaded from the database.
        answer = await client.get("/api/me", headers=world.headers["emp-b"])
        took = time.monotonic() - started
        assert_problem(answer, 503)
    assert DEADLINE <= took < DEADLINE + SLACK, took


async def test_a_report_has_its_own_longer_deadline(
    client: AsyncTestClient[Litestar], world: World, database_url: str, proxy: Proxy | None
) -> None:
    if proxy is None:
        pytest.skip("SQLite's readers do not wait for its writer (WAL)")
    await open_campaign(client, world.headers["admin"])
    report = f"/api/departments/{world.dept_a}/report?from=2026-01-01&to=2026-01-31"
    assert (await client.get(report, headers=world.headers["coord-a"])).status_code == 200
    with database_silent(database_url, proxy):
        started = time.monotonic()
        answer = await client.get(report, headers=world.headers["coord-a"])
        took = time.monotonic() - started
        assert_problem(answer, 503)
    assert REPORT_DEADLINE <= took < REPORT_DEADLINE + SLACK, took


async def test_a_stopping_server_lets_a_request_past_its_deadline_finish_cleaning_up(
    client: AsyncTestClient[Litestar],
    world: World,
    settings: Settings,
    database_url: str,
    proxy: Proxy | None,
) -> None:
    """The request cut off by its deadline is still waiting for SQLite's write lock when the
    server stops. Shutdown waits for its clean-up instead of cancelling it mid-way, which once
    left the process waiting forever on aiosqlite's close (api/deadlines.py)."""
    if proxy is not None:
        pytest.skip("the double close it guards against is aiosqlite's")
    await open_campaign(client, world.headers["admin"])
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    holder = sqlite3.connect(
        db.sqlite_path(database_url), isolation_level=None, check_same_thread=False
    )

    def release() -> None:
        holder.execute("ROLLBACK")
        holder.close()

    async def stop_while_cleaning_up() -> None:
        # An app of its own (the shared one serves `client`), on a loop of its own.
        async with AsyncTestClient(app=create_app(settings)) as server:
            holder.execute("BEGIN IMMEDIATE")
            answer = await drop(server, world.headers["emp-a"], station["code"], "phone", 1)
            assert_problem(answer, 503)
            threading.Timer(1.0, release).start()  # while the server below is stopping

    stopping = threading.Thread(target=lambda: asyncio.run(stop_while_cleaning_up()), daemon=True)
    stopping.start()
    stopping.join(timeout=60)
    assert not stopping.is_alive(), "the server never finished stopping"

"""Operations: health, OpenAPI, request ids, and a database that goes away and back."""

import asyncio
import contextlib
import re
import socket
import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from api.app import create_app
from api.demo import seed_demo
from api.settings import Settings
from catalog.models import Department, User
from tests.foundation.test_problems import assert_problem


async def test_health_checks_the_database(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_openapi_documents_the_api_and_the_docs_page_loads_nothing_from_a_cdn(
    client: AsyncTestClient[Litestar],
) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/api/auth/token" in schema["paths"]
    assert "/api/departments/{department_id}/members/import" in schema["paths"]
    page = await client.get("/schema")
    assert page.status_code == 200
    assert re.findall(r'src="([^"]+)"', page.text) == [
        "/static/vendor/redoc.standalone.js",
        "/static/js/redoc-start.js",
    ]
    assert "https://" not in page.text.replace("https://github.com", "")
    assert (await client.get("/static/vendor/redoc.standalone.js")).status_code == 200


async def test_every_response_carries_a_request_id(client: AsyncTestClient[Litestar]) -> None:
    fresh = await client.get("/health")
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
    echoed = await client.get("/health", headers={"x-request-id": "trace-42"})
    assert echoed.headers["x-request-id"] == "trace-42"


async def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_full_sync(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    await asyncio.to_thread(db.upgrade, url)
    engine = db.create_engine(url)
    async with engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        # FULL (2): a commit is on disk before it is acknowledged, power loss included.
        assert (await connection.execute(text("PRAGMA synchronous"))).scalar() == 2
    await engine.dispose()


async def test_every_postgresql_session_carries_the_configured_deadlines(
    postgres_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=postgres_url,
        db_statement_timeout_seconds=7,
        db_lock_timeout_seconds=2.5,
        db_idle_in_transaction_timeout_seconds=20,
    )
    engine = db.create_engine(settings.database_url, settings.db_timeouts)
    async with engine.connect() as connection:
        shown = {
            name: (await connection.execute(text(f"SHOW {name}"))).scalar()
            for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
        }
    await engine.dispose()
    assert shown == {
        "statement_timeout": "7s",
        "lock_timeout": "2500ms",
        "idle_in_transaction_session_timeout": "20s",
    }


class Proxy:
    """A TCP proxy in front of PostgreSQL that the test can cut and restore, or freeze: a
    frozen proxy keeps every connection open and accepts new ones but forwards nothing, as a
    network partition looks from the app.

    It runs its own event loop in a thread: the test client runs the app on yet another
    loop and blocks the test's loop while the app starts.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()
        self.flowing = asyncio.Event()
        self.flowing.set()

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=10)

    def freeze(self) -> None:
        self.loop.call_soon_threadsafe(self.flowing.clear)

    def thaw(self) -> None:
        self.loop.call_soon_threadsafe(self.flowing.set)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for pipe in self.pipes:
            pipe.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.flowing.wait()
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", 5432)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    await self.flowing.wait()
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()

        for pipe in (pump(reader, upstream_writer), pump(upstream_reader, writer)):
            task = asyncio.create_task(pipe)
            self.pipes.add(task)
            task.add_done_callback(self.pipes.discard)


def free_port() -> int:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_a_database_outage_answers_503_and_the_service_recovers_by_itself(
    postgres_url: str, tmp_path: Path
) -> None:
    proxy = Proxy(free_port())
    proxy.start()
    proxied = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    settings = Settings(data_dir=tmp_path / "data", database_url=proxied, log_format="json")
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert (await client.get("/health")).status_code == 200

        proxy.stop()
        down = await client.get("/health")
        assert down.status_code == 503
        assert down.json()["database"] == "unreachable"
        login = await client.post("/api/auth/token", json={"username": "x", "password": "y"})
        assert_problem(login, 503)
        assert login.json()["title"] == "Database unavailable"

        proxy.start()
        assert (await client.get("/health")).status_code == 200
        login = await client.post("/api/auth/token", json={"username": "x", "password": "y"})
        assert login.status_code == 401
    proxy.stop()
    proxy.close()


async def test_migrations_create_exactly_the_schema_the_models_declare(engine: AsyncEngine) -> None:
    def diff(connection: Connection) -> list[object]:
        return compare_metadata(MigrationContext.configure(connection), db.metadata())

    async with engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []


async def test_the_demo_data_set_is_created_once(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    first = await seed_demo(session_factory)
    second = await seed_demo(session_factory)
    assert [a.username for a in first] == [a.username for a in second]
    assert {"admin", "auditor", "coord-a", "coord-b", "emp-a1", "emp-b5"} <= {
        a.username for a in first
    }
    async with db.transaction(session_factory) as session:
        assert (await session.exec(select(func.count()).select_from(User))).one() == 14
        assert (await session.exec(select(func.count()).select_from(Department))).one() == 2

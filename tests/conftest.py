"""Shared fixtures: every database test runs on SQLite, and on PostgreSQL when
EXCHANGE_TEST_POSTGRES_URL names a server (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres).

Each test gets a database of its own, copied from one migrated once per run, so tests never
see each other's rows; the PostgreSQL databases this run creates are dropped at its end.
"""

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db

POSTGRES_URL = os.environ.get("EXCHANGE_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
RUN_PREFIX = f"exchange_test_{secrets.token_hex(4)}"


def _with_database(url: str, name: str) -> str:
    return f"{url.rsplit('/', 1)[0]}/{name}"


def _admin(statement: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "exchange.db"
    db.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    name = f"{RUN_PREFIX}_template"
    _admin(f"CREATE DATABASE {name}")
    db.upgrade(_with_database(POSTGRES_URL, name))
    yield name
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated, empty database of the parametrized kind."""
    if request.param == "sqlite":
        path = tmp_path / "exchange.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template = request.getfixturevalue("postgres_template")
    name = f"{RUN_PREFIX}_{secrets.token_hex(4)}"
    _admin(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield _with_database(POSTGRES_URL, name)
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database, for the concurrency guarantees that need a real server."""
    if not POSTGRES_URL:
        pytest.skip("EXCHANGE_TEST_POSTGRES_URL is not set")
    template = request.getfixturevalue("postgres_template")
    name = f"{RUN_PREFIX}_{secrets.token_hex(4)}"
    _admin(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield _with_database(POSTGRES_URL, name)
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def pg_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(postgres_url, pool_size=80, max_overflow=20)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return db.create_session_factory(engine)


@pytest.fixture
def pg_session_factory(pg_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return db.create_session_factory(pg_engine)

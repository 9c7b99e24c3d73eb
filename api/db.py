"""Database engine, sessions and migrations for SQLite (embedded default) and PostgreSQL."""

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, MetaData, event, inspect, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def metadata() -> MetaData:
    """Every table of the service, as the models declare them (for Alembic and schema checks)."""
    import catalog.models  # noqa: F401  # each import registers its tables
    import exchange.models
    import exchange.notify.models  # noqa: F401
    import ledger.models  # noqa: F401

    return SQLModel.metadata


@dataclass(frozen=True)
class Timeouts:
    """How long to wait on PostgreSQL, in seconds. A server that stops answering without
    closing the connection (a network partition) must become a 503 the client can retry,
    never a request that hangs; Settings fills these from EXCHANGE_DB_*_TIMEOUT_SECONDS."""

    # A request has a deadline of its own over all of these (api/deadlines.py); the waits a
    # request meets first end within it, so that their cause is what gets logged.
    connect: float = 3.0
    command: float = 10.0  # client side, any one query: catches a silent server
    statement: float = 8.0  # server side, below `command`: the server gives up first
    lock: float = 5.0
    idle_in_transaction: float = 30.0  # ends the sessions of a frozen or vanished client
    pool: float = 3.0  # waiting for a free connection of the pool


def create_engine(url: str, timeouts: Timeouts | None = None, **kwargs: object) -> AsyncEngine:
    """The service passes its `Settings.db_timeouts`; without them (migrations, benchmarks,
    tests that race on purpose) PostgreSQL waits as long as it takes."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    # Connections are kept, not opened per burst: an overflow connection is closed when it is
    # returned to a full pool, and opening one costs a backend fork and asyncpg's type
    # introspection (bench/http.py showed them churning at 32 concurrent requests).
    kwargs.setdefault("pool_size", 40)
    kwargs.setdefault("max_overflow", 0)
    if timeouts is None:
        return _discarding_dead_connections(create_async_engine(url, **kwargs))
    kwargs.setdefault("pool_timeout", timeouts.pool)
    milliseconds = {
        "statement_timeout": timeouts.statement,
        "lock_timeout": timeouts.lock,
        "idle_in_transaction_session_timeout": timeouts.idle_in_transaction,
    }
    connect_args = {
        "timeout": timeouts.connect,
        "command_timeout": timeouts.command,
        # Set when each session starts, so every transaction of every instance has them.
        "server_settings": {name: str(round(s * 1000)) for name, s in milliseconds.items()},
    }
    return _discarding_dead_connections(
        create_async_engine(url, connect_args=connect_args, **kwargs)
    )


def _discarding_dead_connections(engine: AsyncEngine) -> AsyncEngine:
    """PostgreSQL connections that died are not handed out again, without `pool_pre_ping`,
    which costs a round trip (BEGIN, an empty statement, ROLLBACK on asyncpg) per checkout.

    - At checkout, a connection that asyncpg already knows is closed (the server or the
      network ended it) is replaced by a new one: a local check, no round trip.
    - A statement that found the connection dead or got no answer in time (the command
      timeout: a silent server) discards the connection, and the whole pool with it, rather
      than trying to roll back on it; the request answers 503 (api/problems.py) and the next
      ones get fresh connections. SQLAlchemy sees the first kind itself, not the second.
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(_dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        if record.driver_connection.is_closed():
            raise DisconnectionError("the connection was closed while in the pool")

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        error = context.original_exception
        if isinstance(error, (TimeoutError, OSError)) or isinstance(
            error.__cause__, (TimeoutError, OSError)
        ):
            context.is_disconnect = True

    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not the driver, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # FULL: an acknowledged commit survives a power loss too (NORMAL in WAL mode may
        # roll back the last ones); a ledger must not forget what it acknowledged.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        # Take the write lock up front: a deferred transaction that later upgrades to a
        # writer fails with SQLITE_BUSY instead of waiting, which would lose the request.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends, rolls back when it raises."""
    async with session_factory() as session, session.begin():
        yield session


@asynccontextmanager
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection outside any transaction, for the hot paths that send their few
    statements to the driver directly (`(await conn.get_raw_connection()).driver_connection`).

    SQLAlchemy notices a dead connection only in statements it runs itself, so a connection
    that failed, timed out or was cancelled mid-statement here is invalidated: the pool then
    opens a new one instead of handing the broken one out again.
    """
    from api.problems import is_connection_failure  # api.problems imports the domain errors

    async with engine.connect() as conn:
        try:
            yield conn
        except BaseException as error:
            if isinstance(error, asyncio.CancelledError) or is_connection_failure(error):
                await conn.invalidate()
            raise


def alembic_config(database_url: str) -> "Config":
    from alembic.config import Config  # Alembic only where a migration runs (~0.1 s of import)

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def sqlite_path(database_url: str) -> str:
    return database_url.split(":///", 1)[1]


@functools.cache
def head_revision() -> str:
    """The newest migration this code carries. Each script's file name begins with its revision
    (0016_report_months.py, revision "0016"), so the folder tells without Alembic loading every
    script (a third of a second at each start); tests/foundation/test_cli.py checks the two
    agree."""
    versions = (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
    return max(path.name[:4] for path in versions)


async def at_head(engine: AsyncEngine) -> bool:
    """Whether the database already has every migration: one query, where running Alembic to
    find that out loads every migration script and opens an engine of its own."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database:
        if not await asyncio.to_thread(Path(database).exists):
            return False  # a new file, made by `upgrade` in its folder
    async with engine.connect() as connection:
        current = await connection.run_sync(_current_revision)
    return current == head_revision()


def _current_revision(connection: Connection) -> str | None:
    """The revision Alembic recorded (its one-row version table), read without importing it."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_unless_at_head(database_url: str) -> None:
    """`upgrade`, or one query when there is nothing to do: a service's every start."""

    async def behind() -> bool:
        engine = create_engine(database_url)
        try:
            return not await at_head(engine)
        finally:
            await engine.dispose()

    if asyncio.run(behind()):
        upgrade(database_url)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to run on every start."""
    from alembic import command

    if database_url.startswith("sqlite"):
        path = sqlite_path(database_url)
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


def backup_sqlite(database_url: str, target: Path) -> None:
    """Copy a SQLite database to `target` with SQLite's online backup API, while it serves.

    One step copies every page inside one read transaction: a consistent snapshot, and in WAL
    mode the service's writers go on meanwhile. The copy is written beside `target` and renamed
    only once it is complete and passes SQLite's own check, so `target` is never half a file.
    """
    if target.exists():
        raise FileExistsError(f"{target} exists; name a new file")
    partial = target.with_name(f"{target.name}.partial")
    partial.unlink(missing_ok=True)
    with (
        contextlib.closing(sqlite3.connect(sqlite_path(database_url))) as source,
        contextlib.closing(sqlite3.connect(partial)) as copy,
    ):
        source.execute("PRAGMA busy_timeout=30000")
        source.backup(copy)
        (verdict,) = copy.execute("PRAGMA quick_check").fetchone()
    if verdict != "ok":
        partial.unlink()
        raise RuntimeError(f"the copy failed SQLite's quick_check: {verdict}")
    partial.rename(target)

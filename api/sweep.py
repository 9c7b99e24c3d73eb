"""The periodic sweep: expires overdue orders (voiding their holds, returning their stock),
voids the ledger's own expired pending transfers, deletes old finished jobs and folds the
reports' day rollups of each ended month into month rows (exchange/reports/months.py); and, between
sweeps, the integration of new ledger entries into the Merkle trees, with a signed head for
each tree that grew.

Exactly one process sweeps at a time, however many workers and instances run: the one that
holds the sweep lease — a PostgreSQL session-level advisory lock on a connection it keeps,
or on SQLite an exclusive lock on a file in the data directory. The others try to take the
lease at every interval, so when the sweeper stops, another one takes over. (Two sweepers
would still be safe — each expiry locks its order row and checks the order is still
reserved, and the ledger's sweep locks each ledger's head — but would only wait on each
other.)
"""

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import IO, Protocol

import structlog
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from api.notifications import run_while
from api.problems import is_connection_failure
from catalog.models import utcnow
from exchange.jobs import delete_finished
from exchange.orders import sweep_expired_orders
from exchange.reports import months
from ledger import integration
from ledger.signing import KeyRing
from ledger.transfers import sweep_expired

log = structlog.get_logger()

# pg_advisory_lock key of the sweep lease ("exch" in ASCII); advisory locks are per database.
SWEEP_LOCK_KEY = 0x65786368
SWEEP_LOCK_FILE = "sweep.lock"


async def sweep_once(
    session_factory: async_sessionmaker[AsyncSession], job_retention_days: float = 30
) -> tuple[int, int]:
    orders = await sweep_expired_orders(session_factory)
    async with transaction(session_factory) as session:
        pendings = await sweep_expired(session)
    async with transaction(session_factory) as session:
        jobs = await delete_finished(session, utcnow() - timedelta(days=job_retention_days))
    async with transaction(session_factory) as session:
        folded = await months.fold_closed(await session.connection())
    if orders or pendings or jobs or folded:
        log.info(
            "sweep",
            expired_orders=orders,
            voided_pendings=pendings,
            deleted_jobs=jobs,
            folded_months=folded,
        )
    return orders, pendings


async def integrate_once(
    session_factory: async_sessionmaker[AsyncSession], keyring: KeyRing
) -> int:
    """Integrate every ledger that is behind, each in a transaction of its own; a ledger that
    a request is integrating on demand right now is skipped (it is being done). Returns how
    many ledgers were brought up to date."""
    async with transaction(session_factory) as session:
        behind = await integration.ledgers_behind(session)
    done = 0
    for ledger_id in behind:
        async with transaction(session_factory) as session:
            tree = await integration.integrate(session, ledger_id, keyring, skip_locked=True)
        done += tree is not None
    return done


class Lease(Protocol):
    @property
    def held(self) -> bool:
        """Whether the last `take` found this process holding the lease."""
        ...

    async def take(self) -> bool:
        """Whether this process holds the lease now (taking it if free)."""
        ...

    async def release(self) -> None: ...


class PostgresLease:
    """An advisory lock held by a connection of its own, outside any transaction: it lasts
    as long as the connection, so a sweeper that dies frees it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    async def take(self) -> bool:
        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT 1"))  # still connected, so still held
                await self._conn.commit()
                return True
            except Exception:
                await self.release()
                raise
        conn = await self._engine.connect()
        try:
            query = text("SELECT pg_try_advisory_lock(:key)")
            held = bool((await conn.execute(query, {"key": SWEEP_LOCK_KEY})).scalar_one())
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        if held:
            self._conn = conn
        else:
            await conn.close()
        return held

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SWEEP_LOCK_KEY})
                await conn.commit()
            with contextlib.suppress(Exception):
                await conn.close()


class FileLease:
    """An exclusive flock on a file of the data directory: one process per data directory
    (and so per SQLite file) sweeps; the kernel frees it when the process dies."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    async def take(self) -> bool:
        if self._file is not None:
            return True
        file = self._path.open("a")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        self._file = file
        return True

    async def release(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()  # closing the file drops the lock


async def _run(
    lease: Lease,
    session_factory: async_sessionmaker[AsyncSession],
    keyring: KeyRing,
    interval: float,
    integration_interval: float,
    job_retention_days: float,
) -> None:
    loop = asyncio.get_running_loop()
    sweeper: bool | None = None
    while True:
        try:
            held = await lease.take()
            if held != sweeper:
                sweeper = held
                if held:
                    log.info("this process runs the expiry sweep", pid=os.getpid())
                else:
                    log.info("another process runs the expiry sweep", pid=os.getpid())
        except Exception as error:
            sweeper = None
            _log_failure(error, "sweep lease")
        if not sweeper:
            await asyncio.sleep(interval)
            continue
        # Until the next sweep, integrate every integration_interval.
        next_sweep = loop.time() + interval
        while (left := next_sweep - loop.time()) > 0:
            await asyncio.sleep(min(integration_interval, left))
            try:
                await integrate_once(session_factory, keyring)
            except Exception as error:  # the next round retries what failed
                _log_failure(error, "integration")
        try:
            await sweep_once(session_factory, job_retention_days)
        except Exception as error:  # keep sweeping: the next round retries what failed
            _log_failure(error, "sweep")


def _log_failure(error: Exception, what: str) -> None:
    if is_connection_failure(error):
        log.warning(f"{what} skipped: database unreachable")
    else:
        log.exception(f"{what} failed")


@contextlib.asynccontextmanager
async def periodic_sweep(app: Litestar) -> AsyncIterator[None]:
    settings = app.state.settings
    engine: AsyncEngine = app.state.engine
    lease: Lease = (
        FileLease(settings.data_dir / SWEEP_LOCK_FILE)
        if engine.dialect.name == "sqlite"
        else PostgresLease(engine)
    )
    task = asyncio.create_task(
        _run(
            lease,
            app.state.session_factory,
            settings.keyring,
            settings.sweep_interval_seconds,
            settings.integration_interval_seconds,
            settings.job_retention_days,
        ),
        name="exchange-sweep",
    )
    # Notifications go out from the sweeper only (api/notifications.py).
    notify = asyncio.create_task(
        run_while(lambda: lease.held, app.state.session_factory, settings), name="exchange-notify"
    )
    try:
        yield
    finally:
        for running in (notify, task):
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        await lease.release()

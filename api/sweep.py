"""The periodic sweep: expires overdue orders (voiding their holds, returning their stock) and
voids the ledger's own expired pending transfers.

Every app instance runs it; that is safe because each expiry locks its order row and checks
the order is still reserved, and the ledger's sweep locks each ledger's head.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from litestar import Litestar
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from api.problems import is_connection_failure
from exchange.orders import sweep_expired_orders
from ledger.transfers import sweep_expired

log = structlog.get_logger()


async def sweep_once(session_factory: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    orders = await sweep_expired_orders(session_factory)
    async with transaction(session_factory) as session:
        pendings = await sweep_expired(session)
    if orders or pendings:
        log.info("sweep", expired_orders=orders, voided_pendings=pendings)
    return orders, pendings


async def _run(session_factory: async_sessionmaker[AsyncSession], interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep_once(session_factory)
        except Exception as error:  # keep sweeping: the next round retries what failed
            if is_connection_failure(error):
                log.warning("sweep skipped: database unreachable")
            else:
                log.exception("sweep failed")


@contextlib.asynccontextmanager
async def periodic_sweep(app: Litestar) -> AsyncIterator[None]:
    settings = app.state.settings
    task = asyncio.create_task(
        _run(app.state.session_factory, settings.sweep_interval_seconds), name="exchange-sweep"
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""Background jobs in the service: each process runs `EXCHANGE_JOB_RUNNERS` runners (0: it only
queues jobs, for processes that should serve requests alone), which take up stored jobs of
the kinds below (exchange/jobs.py says how they share them out and survive a restart).

A runner wakes when a request of its own process submits a job, and otherwise looks for work
every `EXCHANGE_JOB_POLL_SECONDS`, which is how jobs submitted to other processes, and those
of a process that died, are found.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from litestar import Litestar
from litestar.connection import ASGIConnection
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.problems import is_connection_failure
from api.settings import Settings
from exchange import member_import
from exchange.jobs import Handler, Runner, RunnerSettings, Sealer

log = structlog.get_logger()

HANDLERS: dict[str, Handler] = {member_import.KIND: member_import.run_import}
WAKE = "job_wake"


def sealer(settings: Settings) -> Sealer:
    return Sealer(settings.jwt_signing_secret)


def create_runner(settings: Settings, session_factory: async_sessionmaker[AsyncSession]) -> Runner:
    return Runner(
        session_factory,
        HANDLERS,
        sealer(settings),
        RunnerSettings(settings.job_lease_seconds, settings.job_max_attempts),
        retryable=is_connection_failure,
    )


def wake_runners(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Tells this process's runners that a job was just submitted (and committed)."""
    wake: asyncio.Event | None = connection.app.state.get(WAKE)
    if wake is not None:
        wake.set()


async def _run(runner: Runner, wake: asyncio.Event, poll: float) -> None:
    while True:
        try:
            while await runner.run_next():
                pass
        except Exception as error:  # keep running: the next round retries
            if is_connection_failure(error):
                log.warning("jobs skipped: database unreachable")
            else:
                log.exception("job runner failed")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(poll):
                await wake.wait()
        wake.clear()


@contextlib.asynccontextmanager
async def job_runners(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    runner = create_runner(settings, app.state.session_factory)
    wake = asyncio.Event()
    app.state[WAKE] = wake
    tasks = [
        asyncio.create_task(_run(runner, wake, settings.job_poll_seconds), name=f"jobs-{n}")
        for n in range(settings.job_runners)
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

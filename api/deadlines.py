"""Request deadlines: every request answers within its deadline, a silent database included.

A database that stops answering without closing its connections (a network partition) can
hold a request in several waits one after another: for a free connection of the pool, for a
new connection, for each statement. Their own timeouts (api/db.py) add up; a deadline on the
whole request does not. When it passes before the answer has begun, the client gets a 503
with Retry-After at once (api/problems.py `deadline_passed`), and the request is cancelled and
cleans up (rolls back, drops its connection) in the background, where a silent server may keep
it a while longer without keeping the client.

The clock runs while the service works, not while it waits for the client's upload: it starts
again when a piece of the request's body arrives. Reports and exports, which read a period's
worth of rows, have a longer deadline of their own (routes with `opt=REPORT_DEADLINE`).
"""

import asyncio
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger()

# Route option of reports and exports: they get `Settings.report_deadline_seconds`.
REPORT_DEADLINE = {"deadline": "report"}


class DeadlinePassed(Exception):
    """The request did not finish within its deadline of `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request did not finish within {seconds:g} s")
        self.seconds = seconds


# Cancelled requests still cleaning up: kept referenced until they end.
_CLEANING_UP: set[asyncio.Task[None]] = set()


class RequestDeadline(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, seconds: float, report_seconds: float) -> None:
        self.seconds = seconds
        self.report_seconds = report_seconds

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        handler: Any = scope.get("route_handler")
        report = handler is not None and handler.opt.get("deadline") == "report"
        seconds = self.report_seconds if report else self.seconds
        loop = asyncio.get_running_loop()
        clock_from = loop.time()
        receiving = answering = late = False

        async def timed_receive() -> Message:
            nonlocal receiving, clock_from
            receiving = True
            try:
                return await receive()
            finally:
                receiving = False
                clock_from = loop.time()

        async def guarded_send(message: Message) -> None:
            nonlocal answering
            if late:
                return  # the client has had its 503
            answering = True
            await send(message)

        task = asyncio.create_task(next_app(scope, timed_receive, guarded_send))  # type: ignore[arg-type]
        try:
            while True:
                remaining = clock_from + seconds - loop.time()
                await asyncio.wait({task}, timeout=max(remaining, 0))
                if task.done():
                    return task.result()
                if answering:
                    return await task  # the answer has begun: it waits on nothing of ours
                if receiving:
                    clock_from = loop.time()  # waiting for the client's upload is not ours
                elif loop.time() - clock_from >= seconds:
                    break
        except asyncio.CancelledError:
            task.cancel()  # the server is stopping or the client went away
            raise
        late = True
        task.cancel()
        _CLEANING_UP.add(task)
        task.add_done_callback(_cleaned_up)
        log.warning("request deadline passed", seconds=seconds, path=scope["path"])
        raise DeadlinePassed(seconds)


async def clean_ups_finished(seconds: float) -> None:
    """Waits, at most `seconds`, for this loop's requests past their deadline to finish cleaning
    up. At shutdown the loop would otherwise cancel them a second time, mid-clean-up: a SQLite
    connection then closed twice at once (SQLAlchemy's graceful close beside its forced one)
    leaves aiosqlite's close waiting forever on its stopped thread, and the process never
    exits."""
    loop = asyncio.get_running_loop()
    mine = [task for task in _CLEANING_UP if task.get_loop() is loop]
    if mine:
        await asyncio.wait(mine, timeout=seconds)


def _cleaned_up(task: asyncio.Task[None]) -> None:
    _CLEANING_UP.discard(task)
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("a request past its deadline ended with an error", error=repr(error))

"""Crash and outage proofs against a real server process: killed with SIGKILL under
concurrent drop-offs and orders, cut off from PostgreSQL, talking to a PostgreSQL gone silent,
blocked by a frozen instance, and stopped with SIGTERM under load.

Each time: nothing acknowledged is lost, a retry with the same Idempotency-Key writes nothing
twice, the books add up and every department's ledger verifies offline. A request that hangs
fails the test at the client timeout (CLIENT_TIMEOUT); a silent database's 503s must come
within 5 s.
"""

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.foundation.serving import (
    CLIENT_TIMEOUT,
    Department,
    Load,
    Server,
    assert_books_add_up,
    assert_every_ledger_verifies,
    assert_retryable,
    dropoff,
    poll,
    populate,
    send,
    settle,
)
from tests.foundation.test_ops import Proxy, free_port


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        yield client


async def serve(server: Server, client: httpx.AsyncClient) -> None:
    await server.start()
    client.base_url = httpx.URL(server.url)


async def test_sigkill_under_load_loses_nothing_acknowledged_and_retries_write_nothing_twice(
    served_database: str, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    server = Server(tmp_path / "data", served_database)
    try:
        await serve(server, client)
        departments = await populate(served_database, client)
        load = Load(client, departments)
        running = load.start()
        await load.until("acknowledged", 30)
        await server.signal(signal.SIGKILL)
        load.stopped.set()
        await running
        assert any(call.first is None for call in load.calls), "no request was cut off"
        await server.start()

        await settle(client, load.calls)
        await assert_books_add_up(served_database, departments, load.calls)
        await assert_every_ledger_verifies(client, departments, tmp_path)
    finally:
        await server.stop()


async def test_a_database_cut_or_gone_silent_answers_503_within_5_s_and_the_service_recovers(
    postgres_url: str, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    # The service's own deadlines: the bound is the one the README promises.
    proxy = Proxy(free_port())
    proxy.start()
    proxied = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    server = Server(tmp_path / "data", proxied)
    try:
        await serve(server, client)
        departments = await populate(postgres_url, client)
        load = Load(client, departments)
        running = load.start()
        await load.until("acknowledged", 20)

        for outage, restore in ((proxy.stop, proxy.start), (proxy.freeze, proxy.thaw)):
            outage()
            # Every employee's task gets its 503s, however its request was waiting: for the
            # pool, a new connection or a statement's answer.
            await load.until("503", 2 * len(load.departments) * len(departments[0].employees))
            restore()
            await load.until("acknowledged", 10)  # recovered by itself
        load.stopped.set()
        await running

        unavailable = [c for c in load.calls if c.first is not None and c.first.status_code == 503]
        for call in unavailable:
            assert_retryable(call.first)  # type: ignore[arg-type]
        slowest = max(call.seconds for call in unavailable)
        assert slowest < 5.0, f"a 503 took {slowest:.2f} s"
        await settle(client, load.calls)
        await assert_books_add_up(postgres_url, departments, load.calls)
        await assert_every_ledger_verifies(client, departments, tmp_path)
    finally:
        await server.stop()
        proxy.stop()
        proxy.close()


async def lock_ledger(
    postgres_url: str, department: Department, idle_timeout_ms: int = 0
) -> asyncpg.Connection:
    """A connection that holds the department's ledger head locked, as an instance frozen
    (SIGSTOP) in the middle of a transfer does; `idle_timeout_ms` is that instance's
    idle_in_transaction_session_timeout, which every session of the app carries."""
    connection = await asyncpg.connect(
        postgres_url.replace("+asyncpg", ""),
        server_settings={"idle_in_transaction_session_timeout": str(idle_timeout_ms)},
    )
    await connection.execute("BEGIN")
    await connection.execute(
        "SELECT * FROM ledger_heads WHERE ledger_id = $1 FOR UPDATE", department.id
    )
    return connection


async def test_a_frozen_instance_blocks_the_others_no_longer_than_the_idle_transaction_timeout(
    postgres_url: str, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    # The lock wait allowed is longer than the idle-in-transaction timeout: the drop-off can
    # only go through because PostgreSQL ends the frozen session.
    server = Server(
        tmp_path / "data",
        postgres_url,
        db_idle_in_transaction_timeout_seconds=1,
        db_lock_timeout_seconds=8,
        db_statement_timeout_seconds=9,
    )
    try:
        await serve(server, client)
        departments = await populate(postgres_url, client)
        department = departments[0]
        first = dropoff(department, department.employees[0])
        assert (await send(client, first)).status_code == 201  # type: ignore[union-attr]

        frozen = await lock_ledger(postgres_url, department, idle_timeout_ms=1000)
        blocked = dropoff(department, department.employees[1])
        answer = await send(client, blocked)
        assert answer is not None and answer.status_code == 201, answer and answer.text
        # Its session was ended: the server's notice of that arrives as one of these.
        ended = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
        with pytest.raises(ended):
            await frozen.execute("SELECT 1")
        await frozen.close()
    finally:
        await server.stop()


async def waiting_on_locks(postgres_url: str, count: int) -> bool:
    """Whether `count` sessions of the database wait for a lock."""
    connection = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        waiting = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return waiting >= count
    finally:
        await connection.close()


async def test_sigterm_under_load_answers_every_request_in_flight_and_logs_to_the_end(
    postgres_url: str, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    server = Server(
        tmp_path / "data",
        postgres_url,
        db_lock_timeout_seconds=60,
        db_statement_timeout_seconds=60,
        db_command_timeout_seconds=60,
        shutdown_timeout_seconds=60,
    )
    try:
        await serve(server, client)
        departments = await populate(postgres_url, client)
        department = departments[0]
        assert (await send(client, dropoff(department, department.employees[0]))).status_code == 201  # type: ignore[union-attr]

        # Hold the ledger so the requests are still in flight when the signal comes.
        holder = await lock_ledger(postgres_url, department)
        calls = [dropoff(department, headers) for headers in department.employees]
        in_flight = asyncio.gather(*(send(client, call) for call in calls))
        await poll(lambda: waiting_on_locks(postgres_url, len(calls)))
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        await poll(lambda: server.logged("Shutting down"))
        await holder.execute("COMMIT")
        await holder.close()

        answers = await in_flight
        assert [a.status_code if a else None for a in answers] == [201] * len(calls)
        assert await server.process.wait() in (0, -signal.SIGTERM)
        last = server.log_path.read_text().splitlines()[-1]
        assert "Finished server process" in last, last
    finally:
        await server.stop()

"""`exchange serve --workers N`: a real multi-process server on PostgreSQL."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx

from api.sweep import SWEEP_LOCK_KEY
from tests.foundation.test_ops import free_port

DEADLINE_SECONDS = 240  # generous: CI machines and this one are often loaded


def wait_for(what: str, condition: Callable[[], bool], log: Path) -> None:
    """Poll `condition` until it holds; the server is a separate process we cannot await."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"{what}; server log:\n{log.read_text()}"
        time.sleep(0.1)


def lease_lines(log: Path) -> list[dict[str, object]]:
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]
    return [e for e in events if str(e.get("event", "")).endswith("runs the expiry sweep")]


def sweep_locks(postgres_url: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
        try:
            return await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND objid = $1 AND database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())",
                SWEEP_LOCK_KEY,
            )
        finally:
            await conn.close()

    return asyncio.run(count())


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_workers_answer_requests_and_exactly_one_runs_the_sweep(
    postgres_url: str, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "EXCHANGE_DATABASE_URL": postgres_url,
        "EXCHANGE_DATA_DIR": str(tmp_path / "data"),
        "EXCHANGE_LOG_FORMAT": "json",
        "EXCHANGE_SWEEP_INTERVAL_SECONDS": "0.2",
    }
    command = [str(Path(sys.executable).parent / "exchange"), "serve", "--workers", "2"]
    with log.open("w") as out:
        server = subprocess.Popen(
            [*command, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for("the server answers", lambda: answers(f"{base}/health"), log)
        wait_for("both workers tried the lease", lambda: len(lease_lines(log)) >= 2, log)
        for _ in range(20):
            assert httpx.get(f"{base}/api/keys", timeout=5).status_code == 200
        events = lease_lines(log)
        assert len({e["pid"] for e in events}) == 2, events
        runners = [e for e in events if e["event"] == "this process runs the expiry sweep"]
        assert len(runners) == 1, events
        assert sweep_locks(postgres_url) == 1
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=DEADLINE_SECONDS) == 0, log.read_text()
    assert sweep_locks(postgres_url) == 0

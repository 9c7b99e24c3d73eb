"""A forked log is caught by the witness and by the employee's browser (issue 16 item 4).

`exchange serve` and `exchange witness run` run as real processes. The witness co-signs the
department's heads, keeps co-signing across the server's restart, and refuses the fork: a
copy of the database, taken while the log had three entries, in which a different fourth
entry was written, so the copy's head of size four has another root than the original's.
The employee's browser, which verified the original's head, warns on its next visit to the
copy. On SQLite and PostgreSQL."""

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from api import db
from api.witness import load_or_create_key, public_key_text
from catalog import identity
from catalog.departments import register_department
from catalog.models import DepartmentStatus
from exchange.points import dropoff_reference, earning
from ledger import transfer
from ledger.signing import b64url_decode
from ledger.witness import register_witness
from tests.browser.conftest import PHONE
from tests.browser.support import sign_in
from tests.conftest import (
    BACKENDS,
    PASSWORD,
    POSTGRES_URL,
    RUN_PREFIX,
    _admin,
    _department,
    _with_database,
    copy_database,
    fast_hash,
)
from tests.foundation.serving import EXCHANGE, JWT_SECRET, runs_on
from tests.foundation.test_ops import free_port


def in_thread(work: Callable[[], Any]) -> Any:
    """Runs `work` on a thread of its own, where it may run an event loop: Playwright's sync
    API holds this thread's."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join()
    assert result, "the work failed (its traceback is above)"
    return result[0]


def until(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Service:
    """`exchange serve` on a fixed port, restartable on another database."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, log_database: str) -> None:
        env = {
            **os.environ,
            "EXCHANGE_DATA_DIR": str(self.data_dir),
            "EXCHANGE_DATABASE_URL": log_database,
            "EXCHANGE_JWT_SECRET": JWT_SECRET,
            "EXCHANGE_LOG_FORMAT": "json",
            "EXCHANGE_SWEEP_INTERVAL_SECONDS": "3600",
            "EXCHANGE_INTEGRATION_INTERVAL_SECONDS": "0.2",
            "EXCHANGE_NOTIFY_INTERVAL_SECONDS": "3600",
        }
        log_path = self.data_dir / "server.log"
        log = log_path.open("ab")
        offset = log.tell()
        self.process = subprocess.Popen(
            [str(EXCHANGE), "serve", "--port", str(self.port), "--workers", "1"],
            env=env,
            stdout=log,
            stderr=log,
        )

        def healthy() -> bool:
            assert self.process is not None and self.process.poll() is None, "server exited"
            if not runs_on(log_path.read_bytes()[offset:], self.url):
                return False
            try:
                return httpx.get(f"{self.url}/health").status_code == 200
            except httpx.TransportError:
                return False

        until(healthy, "the server to start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


async def write(url: str, work: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    engine = db.create_engine(url)
    try:
        async with db.transaction(db.create_session_factory(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def credit(url: str, department_id: str, user_id: str, amount: int, key: str) -> None:
    async def work(session: Any) -> None:
        await transfer(
            session,
            ledger_id=department_id,
            **earning(user_id),
            amount=amount,
            idempotency_key=key,
            actor=user_id,
            reference=dropoff_reference(key),
        )

    in_thread(lambda: asyncio.run(write(url, work)))


def heads(service: Service, department_id: str) -> dict[str, Any] | None:
    found = httpx.get(f"{service.url}/api/witness/heads").json()["items"]
    return next((h for h in found if h["ledger_id"] == department_id), None)


def cosigned(service: Service, department_id: str, size: int, kid: str) -> bool:
    head = heads(service, department_id)
    return (
        head is not None
        and head["tree_size"] == size
        and any(c["key_id"] == kid for c in head["cosignatures"])
    )


@pytest.fixture(params=BACKENDS)
def log_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of each kind, copied from the suite's template, and its fork's."""
    if request.param == "sqlite":
        path = tmp_path / "exchange.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = f"{RUN_PREFIX}_{secrets.token_hex(4)}"
    _admin(f"CREATE DATABASE {name} TEMPLATE {request.getfixturevalue('postgres_template')}")
    yield _with_database(POSTGRES_URL, name)
    for database in (name, f"{name}_fork"):
        _admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    running = Service(tmp_path / "data")
    running.data_dir.mkdir()
    yield running
    running.stop()


def test_the_witness_and_the_browser_catch_a_forked_log(
    log_database: str,
    service: Service,
    browser: Browser,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(identity, "hash_password", fast_hash)
    witness_key = load_or_create_key(tmp_path / "witness" / "key.pem")

    async def setup(session: Any) -> tuple[str, str]:
        department = await register_department(session, _department("见证部门"), actor_id=None)
        department.status = DepartmentStatus.approved
        session.add(department)
        await session.flush()
        user = await identity.create_user(
            session,
            username="emp-w",
            display_name="职工W",
            password=PASSWORD,
            department_id=department.id,
            roles=["employee"],
        )
        await identity.create_user(
            session,
            username="audit-w",
            display_name="审计W",
            password=PASSWORD,
            department_id=department.id,
            roles=["auditor"],
        )
        await register_witness(session, "观察员", b64url_decode(public_key_text(witness_key)))
        return department.id, user.id

    dept, user = in_thread(lambda: asyncio.run(write(log_database, setup)))
    for n in range(3):
        credit(log_database, dept, user, 20, f"w{n}")

    service.start(log_database)
    state = tmp_path / "witness" / "state.json"
    witness_log = (tmp_path / "witness" / "witness.log").open("ab")
    witness = subprocess.Popen(
        [str(EXCHANGE), "witness", "run", "--url", service.url, "--interval", "0.2",
         "--key", str(tmp_path / "witness" / "key.pem"), "--state", str(state)],
        stdout=witness_log,
        stderr=witness_log,
    )  # fmt: skip
    context = browser.new_context(base_url=service.url, viewport=PHONE, locale="zh-CN")
    context.set_default_timeout(10_000)
    try:
        until(lambda: cosigned(service, dept, 3, witness_key.kid), "the witness to co-sign 3")
        phone: Page = context.new_page()
        sign_in(phone, "emp-w", PASSWORD)
        phone.goto("/me/receipts")
        log = phone.locator("#log-check")
        expect(log).to_have_attribute("data-state", "first")  # it keeps the head of size 3

        service.stop()
        fork = copy_database(log_database)

        # The original grows by one entry; the witness co-signs it across the restart, and
        # the browser sees the log only grew.
        credit(log_database, dept, user, 20, "original")
        service.start(log_database)
        until(lambda: cosigned(service, dept, 4, witness_key.kid), "the witness to co-sign 4")
        original_root = heads(service, dept)["root_hash"]  # type: ignore[index]
        phone.reload()
        expect(log).to_have_attribute("data-state", "ok")
        auditor = context.browser.new_context(base_url=service.url, locale="zh-CN")  # type: ignore[union-attr]
        desk = auditor.new_page()
        sign_in(desk, "audit-w", PASSWORD, next="/audit/tree-head")
        expect(desk.locator("#cosigned-by")).to_have_text("观察员")
        expect(desk.locator("#witnessed-heads")).to_contain_text("见证部门")
        auditor.close()

        # The fork: the copy gets another fourth entry; same size, another root.
        service.stop()
        credit(fork, dept, user, 100, "forged")
        service.start(fork)
        until(lambda: (heads(service, dept) or {}).get("tree_size") == 4, "the fork's head")
        forked = heads(service, dept)
        assert forked is not None and forked["root_hash"] != original_root

        def refused() -> bool:
            return state.exists() and dept in json.loads(state.read_text()).get("forks", {})

        until(refused, "the witness to refuse the fork")
        report = json.loads(state.read_text())["forks"][dept]
        assert report["reason"] == "two heads of the same size with different roots"
        assert report["cosigned"]["root_hash"] == original_root
        assert report["shown"]["root_hash"] == forked["root_hash"]
        time.sleep(0.5)  # a few more rounds: still no cosignature of the fork
        assert heads(service, dept)["cosignatures"] == []  # type: ignore[index]
        lines = (tmp_path / "witness" / "witness.log").read_text().splitlines()
        assert any('"fork: refusing to co-sign"' in line for line in lines)
        assert witness.poll() is None  # it ran through both restarts

        phone.reload()
        expect(log).to_have_attribute("data-state", "fork")
        expect(log).to_have_class("notice error")
        expect(log).to_contain_text("警告")
    finally:
        context.close()
        witness.send_signal(signal.SIGTERM)
        witness.wait(timeout=10)
        witness_log.close()
        service.stop()

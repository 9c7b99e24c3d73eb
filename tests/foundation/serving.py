"""A real server process (`exchange serve`) for the crash, outage and backup proofs, the data
it serves, a load of concurrent drop-offs and orders, and the checks that the books add up."""

import asyncio
import json
import os
import secrets
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner
from sqlmodel import select

from api import db
from api.auth import create_auth
from api.cli import main
from catalog.departments import register_department
from catalog.models import DepartmentStatus, Product, Role, User, UserRole
from exchange.models import Dropoff, DropoffStatus, Order, OrderStatus
from ledger.models import LedgerAccount, LedgerEntry
from tests.conftest import _department
from tests.exchange.helpers import add_product, add_station, open_campaign
from tests.foundation.test_ops import free_port

EXCHANGE = Path(sys.executable).with_name("exchange")
JWT_SECRET = secrets.token_urlsafe(48)
# The hang bound: every request must answer before this client timeout, outages included.
CLIENT_TIMEOUT = 10.0
STOCK = 40
PRICE = 20  # points per unit: one ink cartridge (20 points) buys one unit
EMPLOYEES = 4  # per department


async def poll(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait until a condition outside this process holds (another process's state, which
    sends no event): checked every 50 ms."""
    while True:
        if await condition():
            return
        await asyncio.sleep(0.05)


def runs_on(log: bytes, url: str) -> bool:
    """Whether a server process's log says it runs on `url`: until then, an answer there may
    come from another test's server that took the port first."""
    return f"Uvicorn running on {url} ".encode() in log


class PortTaken(Exception):
    """The server could not bind its port: another process took it first."""


class Server:
    """`exchange serve` in a process of its own, on a free port, logging JSON to a file."""

    def __init__(self, data_dir: Path, database_url: str, **settings: object) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        self.log = self.log_path.open("ab")
        self.env = {
            **os.environ,
            "EXCHANGE_DATA_DIR": str(data_dir),
            "EXCHANGE_DATABASE_URL": database_url,
            "EXCHANGE_JWT_SECRET": JWT_SECRET,
            "EXCHANGE_LOG_FORMAT": "json",
            "EXCHANGE_SWEEP_INTERVAL_SECONDS": "3600",
            **{f"EXCHANGE_{name.upper()}": str(value) for name, value in settings.items()},
        }
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        # A port found free may be taken by another test's server before this one binds it
        # (ports are picked at random from one range by every worker): then start again on
        # another port.
        while not await self._started():
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"

    async def _started(self) -> bool:
        offset = self.log_path.stat().st_size
        self.process = await asyncio.create_subprocess_exec(
            str(EXCHANGE),
            "serve",
            "--port",
            str(self.port),
            # One process: a signal sent to it reaches the process that serves.
            "--workers",
            "1",
            env=self.env,
            stdout=self.log,
            stderr=self.log,
        )
        async with httpx.AsyncClient(base_url=self.url, timeout=CLIENT_TIMEOUT) as client:
            try:
                await poll(lambda: self._healthy(client, offset))
            except PortTaken:
                return False
        return True

    async def _healthy(self, client: httpx.AsyncClient, offset: int) -> bool:
        """Whether this process bound its port and answers there."""
        assert self.process is not None
        said = self.log_path.read_bytes()[offset:]
        if self.process.returncode is not None:
            if b"error while attempting to bind" in said:
                raise PortTaken
            raise RuntimeError(f"the server exited:\n{said.decode()[-3000:]}")
        if not runs_on(said, self.url):
            return False
        try:
            return (await client.get("/health")).status_code == 200
        except httpx.TransportError:
            return False

    async def logged(self, event: str) -> bool:
        lines = self.log_path.read_bytes().splitlines()
        return any(json.loads(line).get("event") == event for line in lines if line[:1] == b"{")

    async def signal(self, number: signal.Signals) -> int:
        """Send `number` and wait for the process to end; answers its exit code."""
        assert self.process is not None
        self.process.send_signal(number)
        return await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.signal(signal.SIGKILL)
        self.log.close()


@dataclass
class Department:
    id: str
    employees: list[dict[str, str]]  # their Authorization headers
    coordinator: dict[str, str]
    auditor: dict[str, str]
    station_code: str = ""
    product_id: str = ""


async def populate(database_url: str, client: httpx.AsyncClient) -> list[Department]:
    """Two approved departments with staff (written to the database directly, with bearer
    tokens signed by the server's secret), then a campaign, a collection point and a product
    each, made through the server's API."""
    auth = create_auth(JWT_SECRET, 120, False)

    def bearer(user: User) -> dict[str, str]:
        token = auth.create_token(user.id, token_unique_jwt_id=secrets.token_hex(16))
        return {"Authorization": f"Bearer {token}"}

    engine = db.create_engine(database_url)
    departments = []
    try:
        async with db.transaction(db.create_session_factory(engine)) as session:

            async def user(name: str, department_id: str | None, *roles: Role) -> User:
                person = User(
                    username=name,
                    display_name=name,
                    password_hash="-",  # signs in by bearer token only
                    department_id=department_id,
                )
                session.add(person)
                await session.flush()
                session.add_all(UserRole(user_id=person.id, role=role) for role in roles)
                return person

            admin = bearer(await user("admin", None, Role.admin))
            for key in "ab":
                department = await register_department(
                    session, _department(f"部门{key}"), actor_id=None
                )
                department.status = DepartmentStatus.approved
                await session.flush()
                employees = [
                    bearer(await user(f"emp-{key}{n}", department.id, Role.employee))
                    for n in range(EMPLOYEES)
                ]
                coordinator = await user(f"coord-{key}", department.id, Role.coordinator)
                auditor = await user(f"audit-{key}", department.id, Role.auditor)
                departments.append(
                    Department(department.id, employees, bearer(coordinator), bearer(auditor))
                )
    finally:
        await engine.dispose()
    await open_campaign(client, admin)  # type: ignore[arg-type]  # httpx's client, same calls
    for department in departments:
        station = await add_station(client, department.coordinator, department.id)  # type: ignore[arg-type]
        product = await add_product(
            client,  # type: ignore[arg-type]
            department.coordinator,
            department.id,
            price=PRICE,
            stock=STOCK,
        )
        department.station_code, department.product_id = station["code"], product["id"]
    return departments


@dataclass
class Call:
    """One write request with its own Idempotency-Key, and what its first sending answered."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    first: httpx.Response | None = None  # None: the connection broke before an answer
    final: httpx.Response | None = None  # the answer once retried to the end (settle)
    seconds: float = 0.0  # how long the first sending took

    @property
    def acknowledged(self) -> bool:
        return self.first is not None and self.first.status_code == 201


def dropoff(department: Department, headers: dict[str, str]) -> Call:
    body = {"station_code": department.station_code, "category": "ink_cartridge", "quantity": 1}
    return Call("/api/dropoffs", body, {**headers, "Idempotency-Key": str(uuid.uuid4())})


def order(department: Department, headers: dict[str, str]) -> Call:
    body = {"product_id": department.product_id, "quantity": 1}
    return Call("/api/orders", body, {**headers, "Idempotency-Key": str(uuid.uuid4())})


async def send(client: httpx.AsyncClient, call: Call) -> httpx.Response | None:
    """The answer, or None when the connection broke (the server died). A client timeout
    is not caught: it means a hang, and fails the test."""
    try:
        return await client.post(call.path, json=call.body, headers=call.headers)
    except httpx.TimeoutException:
        raise
    except httpx.TransportError:
        return None


@dataclass
class Load:
    """Employees of both departments dropping off and ordering, one task each, until stopped."""

    client: httpx.AsyncClient
    departments: list[Department]
    calls: list[Call] = field(default_factory=list)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    running: asyncio.Future[list[None]] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _waiters: list[tuple[int, str, asyncio.Event]] = field(default_factory=list)

    def count(self, what: str) -> int:
        if what == "acknowledged":
            return sum(call.acknowledged for call in self.calls)
        return sum(call.first is not None and call.first.status_code == 503 for call in self.calls)

    def acknowledged_in(self, department: Department) -> bool:
        """Whether a write of one of the department's employees was acknowledged."""
        theirs = {headers["Authorization"] for headers in department.employees}
        return any(c.acknowledged and c.headers["Authorization"] in theirs for c in self.calls)

    async def until(self, what: str, more: int) -> None:
        """Wait until `more` further calls have been acknowledged (or answered 503); raises
        what failed the load instead if it failed first (a hang that hit the client timeout,
        a 500)."""
        event = asyncio.Event()
        self._waiters.append((self.count(what) + more, what, event))
        waiting = asyncio.ensure_future(event.wait())
        assert self.running is not None
        await asyncio.wait({waiting, self.running}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.cancel()
            self.stopped.set()
            for task in self.tasks:
                task.cancel()
            self.running.result()  # raises the load's failure
            raise AssertionError(f"the load stopped before {more} more {what}")

    def _answered(self) -> None:
        for waiter in list(self._waiters):
            target, what, event = waiter
            if self.count(what) >= target:
                event.set()
                self._waiters.remove(waiter)

    async def _employee(self, department: Department, headers: dict[str, str]) -> None:
        n = 0
        while not self.stopped.is_set():
            n += 1
            call = dropoff(department, headers) if n % 2 else order(department, headers)
            self.calls.append(call)
            started = time.monotonic()
            call.first = await send(self.client, call)
            call.seconds = time.monotonic() - started
            if call.first is not None:
                # An answer is acknowledged, a domain refusal or a 503 to retry; never a 500.
                assert call.first.status_code in (201, 409, 503), call.first.text
            self._answered()

    def start(self) -> asyncio.Future[list[None]]:
        self.stopped.clear()
        self.tasks = [
            asyncio.create_task(self._employee(department, headers))
            for department in self.departments
            for headers in department.employees
        ]
        self.running = asyncio.gather(*self.tasks)
        return self.running


async def settle(client: httpx.AsyncClient, calls: Iterable[Call]) -> None:
    """Send every call again with its key until it gets an answer that is not a 503, and check
    each acknowledged one answers its original result."""
    limit = asyncio.Semaphore(8)

    async def one(call: Call) -> None:
        async with limit:
            for _ in range(50):
                again = await send(client, call)
                assert again is not None, "the server is up: the connection must hold"
                if again.status_code != 503:
                    break
                assert_retryable(again)
            assert again.status_code in (201, 409), again.text
            call.final = again
            if call.acknowledged:
                assert call.first is not None
                assert again.status_code == 201, again.text
                assert again.json()["id"] == call.first.json()["id"]

    await asyncio.gather(*(one(call) for call in calls))


def assert_retryable(response: httpx.Response) -> None:
    """A 503 problem that tells the client to retry, with the same Idempotency-Key."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"].isdigit()
    problem = response.json()
    assert problem["status"] == 503
    assert "same Idempotency-Key" in problem["detail"]


async def assert_books_add_up(
    database_url: str, departments: list[Department], calls: list[Call]
) -> None:
    """After `settle`: exactly one row per key that was answered 201, stock plus reservations
    equal the starting stock, every ledger account equals its entries, and every employee's
    points equal their drop-offs less their orders."""
    written = [call for call in calls if call.final is not None and call.final.status_code == 201]
    created = {
        path: {call.final.json()["id"] for call in written if call.path == path}  # type: ignore[union-attr]
        for path in ("/api/dropoffs", "/api/orders")
    }
    answered = {
        path: sum(call.path == path for call in written)
        for path in ("/api/dropoffs", "/api/orders")
    }
    engine = db.create_engine(database_url)
    try:
        async with db.transaction(db.create_session_factory(engine)) as session:
            dropoffs = (await session.exec(select(Dropoff))).all()
            orders = (await session.exec(select(Order))).all()
            products = (await session.exec(select(Product))).all()
            accounts = (await session.exec(select(LedgerAccount))).all()
            entries = (await session.exec(select(LedgerEntry).order_by(LedgerEntry.seq))).all()
    finally:
        await engine.dispose()

    # Every acknowledged write is there (settle saw its id again) and no key wrote twice.
    assert {d.id for d in dropoffs} == created["/api/dropoffs"]
    assert {o.id for o in orders} == created["/api/orders"]
    assert len(dropoffs) == answered["/api/dropoffs"]
    assert len(orders) == answered["/api/orders"]

    holding = (OrderStatus.reserved, OrderStatus.fulfilled)
    for product in products:
        taken = sum(
            o.quantity for o in orders if o.product_id == product.id and o.status in holding
        )
        assert product.stock + taken == STOCK

    latest: dict[tuple[str, str], tuple[int, int, int, int]] = {}
    for e in entries:
        latest[(e.ledger_id, e.debit_account)] = (
            e.dr_debits_pending,
            e.dr_debits_posted,
            e.dr_credits_pending,
            e.dr_credits_posted,
        )
        latest[(e.ledger_id, e.credit_account)] = (
            e.cr_debits_pending,
            e.cr_debits_posted,
            e.cr_credits_pending,
            e.cr_credits_posted,
        )
    for a in accounts:
        counters = (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
        assert counters == latest.get((a.ledger_id, a.code), (0, 0, 0, 0)), a.code
        if a.code.startswith("user:"):
            user_id = a.code.removeprefix("user:")
            earned = sum(
                d.points
                for d in dropoffs
                if d.user_id == user_id and d.status == DropoffStatus.confirmed
            )
            held = sum(
                o.points
                for o in orders
                if o.user_id == user_id and o.status == OrderStatus.reserved
            )
            assert a.credits_posted == earned
            assert a.debits_pending == held
            assert a.debits_posted == 0  # nothing was picked up
    assert {d.id for d in departments} <= {a.ledger_id for a in accounts}


async def assert_every_ledger_verifies(
    client: httpx.AsyncClient, departments: list[Department], workdir: Path
) -> None:
    """`exchange ledger verify` accepts each department's export with its signed tree head."""
    keys = workdir / "keys.json"
    keys.write_bytes((await client.get("/api/keys")).content)
    for department in departments:
        base = f"/api/departments/{department.id}/ledger"
        head = await client.get(f"{base}/tree-head", headers=department.auditor)
        assert head.status_code == 200, head.text
        size = head.json()["tree_size"]
        assert size > 0
        export = await client.get(f"{base}/export?tree_size={size}", headers=department.auditor)
        assert export.status_code == 200, export.text
        (workdir / "head.json").write_bytes(head.content)
        (workdir / "export.jsonl").write_bytes(export.content)
        args = ["ledger", "verify", str(workdir / "export.jsonl")]
        args += ["--tree-head", str(workdir / "head.json"), "--keys", str(keys)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"OK: {size} entries"), result.output

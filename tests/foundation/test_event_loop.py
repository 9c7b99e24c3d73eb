"""Password hashing never blocks the event loop, nor holds the database while it runs.

The app runs on the test's own event loop (httpx's ASGI transport; Litestar's test client
would serialize the requests). Each hash waits at a gate that only the test opens, after
/health has answered while the hash was under way. Were the hash on the event loop, /health
could not run until the gate gave up waiting: the gate's answer records which came first.
"""

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from api.app import create_app
from api.settings import Settings
from catalog import passwords
from tests.conftest import PASSWORD, World

RunJobs = Callable[[], Awaitable[int]]
GIVE_UP_SECONDS = 20  # only ever reached when the gate is never opened: the defect itself


class GatedHasher(PasswordHasher):
    """A real (cheap) argon2id hasher whose every hash and verification waits at a gate."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.started = threading.Event()
        self.gate = threading.Event()
        self.opened_by_test: list[bool] = []

    def _wait(self) -> None:
        self.started.set()
        self.opened_by_test.append(self.gate.wait(GIVE_UP_SECONDS))

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._wait()
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self._wait()
        return super().verify(hash, password)


async def member_import(client: httpx.AsyncClient, world: World, run_jobs: RunJobs) -> Any:
    """The request only checks the file; the job it starts hashes the passwords."""
    rows = "".join(f"member-{n},成员{n}\n" for n in range(3))
    submitted = await client.post(
        f"/api/departments/{world.dept_a}/members/import",
        files={"file": ("members.csv", f"username,display_name\n{rows}".encode(), "text/csv")},
        headers=world.headers["coord-a"],
    )
    assert submitted.status_code == 202, submitted.text
    assert await run_jobs() == 1
    return await client.get(submitted.headers["location"], headers=world.headers["coord-a"])


def application(client: httpx.AsyncClient, world: World, run_jobs: RunJobs) -> Awaitable[Any]:
    return client.post(
        "/api/departments",
        json={
            "name": "新部门",
            "village_name": "新村",
            "village_county": "紫云县",
            "village_province": "贵州省",
            "contact_name": "张三",
            "contact_phone": "0851-1234",
            "pickup_location": "一楼大厅",
            "coordinator": {"username": "applicant", "display_name": "申", "password": PASSWORD},
        },
    )


def sign_in(client: httpx.AsyncClient, world: World, run_jobs: RunJobs) -> Awaitable[Any]:
    return client.post("/api/auth/token", json={"username": "emp-a", "password": PASSWORD})


@pytest.fixture
async def concurrent(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Requests served concurrently on this test's event loop."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://exchange.test") as client:
        yield client
    await app.state.engine.dispose()


@pytest.mark.parametrize(
    ("work", "status"), [(member_import, 200), (application, 201), (sign_in, 200)]
)
async def test_the_server_answers_while_passwords_are_hashed(
    concurrent: httpx.AsyncClient,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    run_jobs: RunJobs,
    work: Callable[[httpx.AsyncClient, World, RunJobs], Awaitable[Any]],
    status: int,
) -> None:
    hasher = GatedHasher()
    monkeypatch.setattr(passwords, "_hasher", hasher)
    hashing = asyncio.ensure_future(work(concurrent, world, run_jobs))
    await asyncio.to_thread(hasher.started.wait, GIVE_UP_SECONDS)

    health = await concurrent.get("/health")  # needs the event loop and, on SQLite, the write lock
    hasher.gate.set()
    response = await hashing

    assert health.status_code == 200
    assert response.status_code == status, response.text
    assert hasher.opened_by_test and all(hasher.opened_by_test)

"""The identity cache (api/auth.py): a worker remembers who a token belongs to for a few
seconds; a logout is honoured at once by the worker that served it and by every other
worker once its entry expires (identity_cache_seconds)."""

import time
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.settings import Settings
from tests.conftest import World


@pytest.fixture
async def other_worker(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A second app instance on the same database, as another worker process would be."""
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def test_a_logout_is_honoured_at_once_here_and_within_the_cache_time_elsewhere(
    client: AsyncTestClient[Litestar], other_worker: AsyncTestClient[Litestar], world: World
) -> None:
    headers = world.headers["emp-a"]
    assert (await client.get("/api/me", headers=headers)).status_code == 200
    assert (await other_worker.get("/api/me", headers=headers)).status_code == 200

    assert (await client.post("/api/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/api/me", headers=headers)).status_code == 401

    cache = other_worker.app.state.identity_cache
    # Within the cache time the other worker still knows the token from before the logout...
    assert (await other_worker.get("/api/me", headers=headers)).status_code == 200
    # ... and once its entry expired, it asks the database, where the revocation lives.
    cache.clock = lambda: time.monotonic() + cache.ttl
    assert (await other_worker.get("/api/me", headers=headers)).status_code == 401


async def test_a_department_suspension_takes_effect_at_once_in_the_same_worker(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    headers = world.headers["emp-a"]
    assert (await client.get("/api/me", headers=headers)).status_code == 200
    response = await client.post(
        f"/api/departments/{world.dept_a}/suspend", headers=world.headers["admin"]
    )
    assert response.status_code == 200, response.text
    response = await client.post(
        "/api/dropoffs",
        json={"station_code": "nowhere", "category": "phone", "quantity": 1},
        headers={**headers, "Idempotency-Key": "k-1"},
    )
    assert response.status_code == 403, response.text
    assert "suspended" in response.json()["detail"]

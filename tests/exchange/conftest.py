"""Fixtures of the exchange tests."""

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import World


@pytest.fixture
async def world(world: World, client: AsyncTestClient[Litestar]) -> World:
    """The shared world, with the app's connection pool emptied afterwards: the world was
    written from the test's event loop, and asyncpg connections must not cross into the
    loop the test client runs the app in. Tests read the database through `session_factory`
    (their own engine), never through the app's."""
    await client.app.state.engine.dispose()
    return world

"""The SQL statements each core write issues, pinned so that a later change cannot silently
add round trips (issues 10 and 14). Counted on the app's engine: SQLAlchemy's statements with
a `before_cursor_execute` listener, and on PostgreSQL those sent to the asyncpg connection
directly with asyncpg's query logger; transaction control (BEGIN, COMMIT) is not counted.

Each request is a warm one, as nearly all are in production: the caller has written before
(their ledger accounts exist) and their token was seen in the last few seconds (the
identity cache, api/auth.py). On PostgreSQL every core write is one call of a server-side
function (exchange/one_call.py); SQLite runs the Python path, statement by statement.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from api.settings import Settings
from tests.conftest import World
from tests.exchange.helpers import (
    Client,
    add_product,
    add_station,
    credit,
    drop,
    open_campaign,
    order,
)


@contextmanager
def counting(client: Client) -> Iterator[list[str]]:
    statements: list[str] = []

    def keep(statement: str) -> None:
        if statement.split(None, 1)[0].upper() not in {"BEGIN", "COMMIT", "ROLLBACK"}:
            statements.append(statement)

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        keep(statement)

    def logged(query: Any) -> None:  # asyncpg: statements sent to the driver directly
        keep(query.query)

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(logged)

    def checkin(dbapi_connection: Any, *_: Any) -> None:
        if dbapi_connection is not None:
            dbapi_connection.driver_connection.remove_query_logger(logged)

    engine = client.app.state.engine.sync_engine
    listeners = [(engine, "before_cursor_execute", count)]
    if engine.dialect.name == "postgresql":
        listeners += [(engine.pool, "checkout", checkout), (engine.pool, "checkin", checkin)]
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    try:
        yield statements
    finally:
        for target, name, listener in listeners:
            event.remove(target, name, listener)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No background integration during a count: it would add its statements to the tally."""
    return settings.model_copy(update={"integration_interval_seconds": 60})


def expected(client: Client, *, postgresql: int, sqlite: int) -> int:
    return {"postgresql": postgresql, "sqlite": sqlite}[client.app.state.engine.dialect.name]


@pytest.fixture
async def station(client: Client, world: World) -> dict[str, Any]:
    """An open campaign; emp-a has 300 points and a warm token, and so has coord-a."""
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    await credit(client, world, "emp-a", 300, station["code"])
    return station


@pytest.fixture
async def product(client: Client, world: World, station: dict[str, Any]) -> dict[str, Any]:
    """A product of 100 points, ordered once already: the redemption account exists, as it
    does after a department's first order."""
    product = await add_product(client, world.headers["coord-a"], world.dept_a, price=100)
    assert (await order(client, world.headers["emp-a"], product["id"])).status_code == 201
    return product


async def test_a_dropoff_issues_1_statement_on_postgresql_9_on_sqlite(
    client: Client, world: World, station: dict[str, Any]
) -> None:
    with counting(client) as statements:
        response = await drop(client, world.headers["emp-a"], station["code"], "ink_cartridge", 1)
    assert response.status_code == 201, response.text
    assert len(statements) == expected(client, postgresql=1, sqlite=9), statements


async def test_an_order_issues_1_statement_on_postgresql_9_on_sqlite(
    client: Client, world: World, product: dict[str, Any]
) -> None:
    with counting(client) as statements:
        response = await order(client, world.headers["emp-a"], product["id"])
    assert response.status_code == 201, response.text
    assert len(statements) == expected(client, postgresql=1, sqlite=9), statements


async def test_a_pickup_issues_1_statement_on_postgresql_11_on_sqlite(
    client: Client, world: World, product: dict[str, Any]
) -> None:
    token = (await order(client, world.headers["emp-a"], product["id"])).json()["pickup_token"]
    with counting(client) as statements:
        response = await client.post(
            "/api/pickups", json={"token": token}, headers=world.headers["coord-a"]
        )
    assert response.status_code == 200, response.text
    assert len(statements) == expected(client, postgresql=1, sqlite=11), statements


async def test_a_cancellation_issues_1_statement_on_postgresql_12_on_sqlite(
    client: Client, world: World, product: dict[str, Any]
) -> None:
    order_id = (await order(client, world.headers["emp-a"], product["id"])).json()["id"]
    with counting(client) as statements:
        response = await client.post(
            f"/api/orders/{order_id}/cancel", headers=world.headers["emp-a"]
        )
    assert response.status_code == 200, response.text
    assert len(statements) == expected(client, postgresql=1, sqlite=12), statements


async def test_a_confirmation_issues_1_statement_on_postgresql_11_on_sqlite(
    client: Client, world: World, station: dict[str, Any]
) -> None:
    await open_campaign(
        client, world.headers["admin"], policy="steward", department_id=world.dept_a, name="核实"
    )
    pending = await drop(client, world.headers["emp-a"], station["code"], "ink_cartridge", 1)
    assert pending.json()["status"] == "pending", pending.text
    with counting(client) as statements:
        response = await client.post(
            f"/api/dropoffs/{pending.json()['id']}/confirm", headers=world.headers["coord-a"]
        )
    assert response.status_code == 200, response.text
    assert len(statements) == expected(client, postgresql=1, sqlite=11), statements


async def test_a_first_dropoff_opens_the_accounts_in_its_own_statements(
    client: Client, world: World
) -> None:
    """Accounts are opened by the write that finds them missing, once: inside the one call on
    PostgreSQL, with statements of their own on SQLite."""
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    assert (await client.get("/api/me", headers=world.headers["emp-a2"])).status_code == 200
    with counting(client) as first:
        response = await drop(client, world.headers["emp-a2"], station["code"], "phone", 1)
    assert response.status_code == 201, response.text
    with counting(client) as second:
        response = await drop(client, world.headers["emp-a2"], station["code"], "phone", 1)
    assert response.status_code == 201, response.text
    assert not any("ledger_accounts (" in s for s in second)
    if client.app.state.engine.dialect.name == "postgresql":
        assert len(first) == len(second) == 1, (first, second)
    else:
        assert any("INSERT INTO ledger_accounts" in s for s in first)
        assert len(second) < len(first)

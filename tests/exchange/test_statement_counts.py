"""The SQL statements each core write issues, pinned so that a later change cannot silently
add round trips (issue 10). Counted on the app's engine with a `before_cursor_execute`
listener; transaction control (BEGIN, COMMIT) is not counted.

Each request is a warm one, as nearly all are in production: the caller has written before
(their ledger accounts exist) and their token was seen in the last few seconds (the
identity cache, api/auth.py). SQLite counts more because the ledger writes an entry in
several statements there and in one on PostgreSQL.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

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

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.split(None, 1)[0].upper() not in {"BEGIN", "COMMIT", "ROLLBACK"}:
            statements.append(statement)

    engine = client.app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


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
    return await add_product(client, world.headers["coord-a"], world.dept_a, price=100)


async def test_a_dropoff_issues_4_statements_on_postgresql_9_on_sqlite(
    client: Client, world: World, station: dict[str, Any]
) -> None:
    with counting(client) as statements:
        response = await drop(client, world.headers["emp-a"], station["code"], "ink_cartridge", 1)
    assert response.status_code == 201, response.text
    assert len(statements) == expected(client, postgresql=4, sqlite=9), statements


async def test_an_order_issues_4_statements_on_postgresql_10_on_sqlite(
    client: Client, world: World, product: dict[str, Any]
) -> None:
    with counting(client) as statements:
        response = await order(client, world.headers["emp-a"], product["id"])
    assert response.status_code == 201, response.text
    assert len(statements) == expected(client, postgresql=4, sqlite=10), statements


async def test_a_pickup_issues_3_statements_on_postgresql_12_on_sqlite(
    client: Client, world: World, product: dict[str, Any]
) -> None:
    token = (await order(client, world.headers["emp-a"], product["id"])).json()["pickup_token"]
    with counting(client) as statements:
        response = await client.post(
            "/api/pickups", json={"token": token}, headers=world.headers["coord-a"]
        )
    assert response.status_code == 200, response.text
    assert len(statements) == expected(client, postgresql=3, sqlite=12), statements


async def test_a_cancellation_issues_4_statements_on_postgresql_13_on_sqlite(
    client: Client, world: World, product: dict[str, Any]
) -> None:
    order_id = (await order(client, world.headers["emp-a"], product["id"])).json()["id"]
    with counting(client) as statements:
        response = await client.post(
            f"/api/orders/{order_id}/cancel", headers=world.headers["emp-a"]
        )
    assert response.status_code == 200, response.text
    assert len(statements) == expected(client, postgresql=4, sqlite=13), statements


async def test_a_confirmation_issues_3_statements_on_postgresql_12_on_sqlite(
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
    assert len(statements) == expected(client, postgresql=3, sqlite=12), statements


async def test_a_first_dropoff_opens_the_accounts_and_a_second_does_not(
    client: Client, world: World
) -> None:
    """Accounts are opened by the write that finds them missing, once."""
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    with counting(client) as first:
        response = await drop(client, world.headers["emp-a2"], station["code"], "phone", 1)
    assert response.status_code == 201, response.text
    assert any("INSERT INTO ledger_accounts" in s for s in first)
    with counting(client) as second:
        response = await drop(client, world.headers["emp-a2"], station["code"], "phone", 1)
    assert response.status_code == 201, response.text
    assert not any("ledger_accounts (" in s for s in second)
    assert len(second) < len(first)

"""Orders: stock and points are taken together or not at all; cancel and expiry give back."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from catalog.models import utcnow
from exchange.orders import sweep_expired_orders
from ledger import queries
from tests.conftest import World
from tests.exchange.helpers import (
    Client,
    add_product,
    add_station,
    credit,
    me,
    open_campaign,
    order,
)


@pytest.fixture
async def rice(client: Client, world: World) -> dict:
    """Rice at 100 points, 5 in stock; emp-a has 300 points."""
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    await credit(client, world, "emp-a", 300, station["code"])
    return await add_product(client, world.headers["coord-a"], world.dept_a, price=100, stock=5)


async def stock_of(client: Client, world: World, product_id: str) -> int:
    response = await client.get(f"/api/products/{product_id}", headers=world.headers["coord-a"])
    return response.json()["stock"]


async def ledger_size(session_factory: async_sessionmaker[AsyncSession], world: World) -> int:
    async with db.transaction(session_factory) as session:
        return await queries.ledger_size(session, world.dept_a)


async def test_an_order_holds_the_points_and_takes_the_stock(
    client: Client, world: World, rice: dict
) -> None:
    response = await order(client, world.headers["emp-a"], rice["id"], 2)
    assert response.status_code == 201
    placed = response.json()
    assert placed["status"] == "reserved" and placed["points"] == 200
    assert placed["pickup_token"] and placed["expires_at"]
    assert await me(client, world.headers["emp-a"]) == {
        "available": 100,
        "pending_credit": 0,
        "held": 200,
    }
    assert await stock_of(client, world, rice["id"]) == 3


async def test_an_order_without_an_idempotency_key_is_refused(
    client: Client, world: World, rice: dict
) -> None:
    response = await client.post(
        "/api/orders", json={"product_id": rice["id"]}, headers=world.headers["emp-a"]
    )
    assert response.status_code == 400
    assert response.json()["title"] == "Idempotency-Key header required"


async def test_a_retried_order_returns_the_original_and_reserves_once(
    client: Client, world: World, rice: dict
) -> None:
    first = await order(client, world.headers["emp-a"], rice["id"], 1, key="o-1")
    second = await order(client, world.headers["emp-a"], rice["id"], 1, key="o-1")
    assert second.status_code == 201 and second.json()["id"] == first.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await stock_of(client, world, rice["id"]) == 4
    assert (await me(client, world.headers["emp-a"]))["held"] == 100


async def test_an_order_key_reused_for_another_order_is_a_conflict(
    client: Client, world: World, rice: dict
) -> None:
    await order(client, world.headers["emp-a"], rice["id"], 1, key="o-1")
    response = await order(client, world.headers["emp-a"], rice["id"], 2, key="o-1")
    assert response.status_code == 409
    assert response.json()["idempotency_key"] == "o-1"


async def test_short_stock_is_a_clear_conflict_and_writes_nothing(
    client: Client,
    world: World,
    rice: dict,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await client.patch(
        f"/api/products/{rice['id']}", json={"stock": 1}, headers=world.headers["coord-a"]
    )
    size = await ledger_size(session_factory, world)
    response = await order(client, world.headers["emp-a"], rice["id"], 2)
    assert response.status_code == 409
    assert response.json()["title"] == "Not enough stock"
    assert (response.json()["stock"], response.json()["requested"]) == (1, 2)
    assert await stock_of(client, world, rice["id"]) == 1
    assert (await me(client, world.headers["emp-a"]))["available"] == 300
    assert await ledger_size(session_factory, world) == size


async def test_short_points_are_a_clear_conflict_and_return_the_stock(
    client: Client,
    world: World,
    rice: dict,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    size = await ledger_size(session_factory, world)
    response = await order(client, world.headers["emp-a"], rice["id"], 4)
    assert response.status_code == 409
    assert response.json()["title"] == "Not enough points"
    assert (response.json()["available"], response.json()["needed"]) == (300, 400)
    assert await stock_of(client, world, rice["id"]) == 5
    assert await ledger_size(session_factory, world) == size
    listed = await client.get("/api/orders", headers=world.headers["emp-a"])
    assert listed.json()["items"] == []


async def test_pending_credits_cannot_be_spent(client: Client, world: World) -> None:
    await open_campaign(client, world.headers["admin"], policy="steward")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    product = await add_product(client, world.headers["coord-a"], world.dept_a, price=100)
    await credit(client, world, "emp-a", 200, station["code"])
    response = await order(client, world.headers["emp-a"], product["id"])
    assert response.status_code == 409 and response.json()["available"] == 0


async def test_an_order_quantity_out_of_range_is_refused(
    client: Client, world: World, rice: dict
) -> None:
    for quantity in (0, -1, 101):
        response = await order(client, world.headers["emp-a"], rice["id"], quantity)
        assert response.status_code == 422, quantity
        assert response.json()["errors"][0]["field"] == "quantity"
    assert await stock_of(client, world, rice["id"]) == 5


async def test_an_inactive_product_cannot_be_ordered(
    client: Client, world: World, rice: dict
) -> None:
    await client.patch(
        f"/api/products/{rice['id']}", json={"active": False}, headers=world.headers["coord-a"]
    )
    response = await order(client, world.headers["emp-a"], rice["id"])
    assert response.status_code == 409
    assert response.json()["title"] == "Product not available"


async def test_another_departments_product_cannot_be_ordered(
    client: Client, world: World, rice: dict
) -> None:
    response = await order(client, world.headers["emp-b"], rice["id"])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "product_id"
    assert await stock_of(client, world, rice["id"]) == 5


async def test_the_owner_cancelling_releases_the_hold_and_the_stock_once(
    client: Client, world: World, rice: dict
) -> None:
    placed = (await order(client, world.headers["emp-a"], rice["id"], 2)).json()
    url = f"/api/orders/{placed['id']}/cancel"
    cancelled = await client.post(url, headers=world.headers["emp-a"])
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["pickup_token"] is None
    assert await me(client, world.headers["emp-a"]) == {
        "available": 300,
        "pending_credit": 0,
        "held": 0,
    }
    assert await stock_of(client, world, rice["id"]) == 5
    again = await client.post(url, headers=world.headers["emp-a"])
    assert again.status_code == 409 and again.json()["current_status"] == "cancelled"
    assert await stock_of(client, world, rice["id"]) == 5


async def test_a_coordinator_may_cancel_an_order_but_another_employee_may_not(
    client: Client, world: World, rice: dict
) -> None:
    placed = (await order(client, world.headers["emp-a"], rice["id"])).json()
    url = f"/api/orders/{placed['id']}/cancel"
    assert (await client.post(url, headers=world.headers["emp-a2"])).status_code == 404
    assert (await client.post(url, headers=world.headers["coord-b"])).status_code == 404
    response = await client.post(url, headers=world.headers["coord-a"])
    assert response.status_code == 200 and response.json()["resolved_by"] is not None


async def test_only_the_owner_and_coordinators_see_an_order_and_only_the_owner_its_token(
    client: Client, world: World, rice: dict
) -> None:
    placed = (await order(client, world.headers["emp-a"], rice["id"])).json()
    url = f"/api/orders/{placed['id']}"
    assert (await client.get(url, headers=world.headers["emp-a"])).json()["pickup_token"]
    seen = await client.get(url, headers=world.headers["coord-a"])
    assert seen.status_code == 200 and seen.json()["pickup_token"] is None
    assert (await client.get(url, headers=world.headers["emp-a2"])).status_code == 404
    assert (await client.get(f"{url}/qr.png", headers=world.headers["coord-a"])).status_code == 404
    everyone = await client.get("/api/orders?all=true", headers=world.headers["coord-a"])
    assert [o["id"] for o in everyone.json()["items"]] == [placed["id"]]


async def test_a_price_change_never_alters_an_existing_order(
    client: Client, world: World, rice: dict
) -> None:
    placed = (await order(client, world.headers["emp-a"], rice["id"])).json()
    changed = await client.patch(
        f"/api/products/{rice['id']}", json={"price_points": 150}, headers=world.headers["coord-a"]
    )
    assert changed.json()["price_points"] == 150
    kept = await client.get(f"/api/orders/{placed['id']}", headers=world.headers["emp-a"])
    assert kept.json()["points"] == 100 and kept.json()["unit_price_points"] == 100
    picked = await client.post(
        "/api/pickups", json={"token": placed["pickup_token"]}, headers=world.headers["coord-a"]
    )
    assert picked.json()["points"] == 100
    assert (await me(client, world.headers["emp-a"]))["available"] == 200


async def test_the_sweep_expires_overdue_orders_returning_hold_and_stock(
    client: Client,
    world: World,
    rice: dict,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    placed = (await order(client, world.headers["emp-a"], rice["id"], 2)).json()
    # The default expiry is 7 days: nothing is due now, everything a week and a day later.
    assert await sweep_expired_orders(session_factory) == 0
    later = utcnow() + timedelta(days=8)
    assert await sweep_expired_orders(session_factory, now=later) == 1
    assert await sweep_expired_orders(session_factory, now=later) == 0
    expired = await client.get(f"/api/orders/{placed['id']}", headers=world.headers["emp-a"])
    assert expired.json()["status"] == "expired" and expired.json()["resolved_by"] is None
    assert await me(client, world.headers["emp-a"]) == {
        "available": 300,
        "pending_credit": 0,
        "held": 0,
    }
    assert await stock_of(client, world, rice["id"]) == 5
    # Its token is revoked even before it would expire by itself.
    response = await client.post(
        "/api/pickups", json={"token": placed["pickup_token"]}, headers=world.headers["coord-a"]
    )
    assert response.status_code == 410 and response.json()["title"] == "Pickup token revoked"


async def test_orders_expire_after_the_configured_time(
    client: Client, world: World, rice: dict
) -> None:
    placed = (await order(client, world.headers["emp-a"], rice["id"])).json()
    hours = client.app.state.settings.order_expiry_hours
    expires_at = placed["expires_at"]
    created_at = placed["created_at"]
    delta = datetime.fromisoformat(expires_at) - datetime.fromisoformat(created_at)
    assert abs(delta - timedelta(hours=hours)) < timedelta(seconds=1)

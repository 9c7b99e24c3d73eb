"""Every event worth telling someone writes one message, in the event's own transaction: a
refused or rolled-back event leaves none. On SQLite and PostgreSQL (database triggers)."""

from datetime import datetime, time, timedelta

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from catalog.models import utcnow
from exchange.dropoffs import confirm_dropoff
from exchange.notify.models import Message
from exchange.notify.outbox import post_daily_figures, remind_orders, sweep_events
from exchange.orders import sweep_expired_orders
from tests.conftest import World, _department
from tests.exchange.helpers import (
    Client,
    add_product,
    add_station,
    credit,
    drop,
    open_campaign,
    order,
)

Factory = async_sessionmaker[AsyncSession]


async def messages(session_factory: Factory) -> list[Message]:
    async with db.transaction(session_factory) as session:
        found = await session.exec(
            select(Message).order_by(col(Message.created_at), col(Message.id))
        )
        return list(found.all())


async def kinds(
    session_factory: Factory, *, applications: bool = False
) -> list[tuple[str, str | None, str]]:
    """The messages, less (by default) the applications of the world's own departments."""
    return [
        (m.kind, m.recipient_id, m.reference)
        for m in await messages(session_factory)
        if applications or m.kind != "department_applied"
    ]


async def user_id(client: Client, world: World, username: str) -> str:
    response = await client.get("/api/me", headers=world.headers[username])
    return response.json()["id"]


@pytest.fixture
async def steward(client: Client, world: World) -> dict:
    await open_campaign(client, world.headers["admin"], policy="steward")
    return await add_station(client, world.headers["coord-a"], world.dept_a)


async def test_a_coordinators_decisions_write_one_message_each_to_the_employee(
    client: Client, world: World, steward: dict, session_factory: Factory
) -> None:
    emp = await user_id(client, world, "emp-a")
    first = (await drop(client, world.headers["emp-a"], steward["code"], "phone", 1)).json()
    second = (await drop(client, world.headers["emp-a"], steward["code"], "phone", 2)).json()
    assert await kinds(session_factory) == [], "a drop-off logged, not decided, tells nobody"
    coordinator = world.headers["coord-a"]
    assert (
        await client.post(f"/api/dropoffs/{first['id']}/confirm", headers=coordinator)
    ).is_success
    rejected = await client.post(
        f"/api/dropoffs/{second['id']}/reject", json={"reason": "不是手机"}, headers=coordinator
    )
    assert rejected.is_success
    assert await kinds(session_factory) == [
        ("dropoff_confirmed", emp, first["id"]),
        ("dropoff_rejected", emp, second["id"]),
    ]
    [confirmed, _] = [m for m in await messages(session_factory) if m.recipient_id == emp]
    assert confirmed.department_id == world.dept_a
    assert confirmed.dedupe_key == f"dropoff:{first['id']}:decided"


async def test_an_auto_confirmed_drop_off_is_the_employees_own_act_and_tells_nobody(
    client: Client, world: World, session_factory: Factory
) -> None:
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    assert (
        await drop(client, world.headers["emp-a"], station["code"], "phone", 1)
    ).status_code == 201
    assert await kinds(session_factory) == []


async def test_a_decision_rolled_back_leaves_no_message(
    client: Client, world: World, steward: dict, session_factory: Factory
) -> None:
    logged = (await drop(client, world.headers["emp-a"], steward["code"], "phone", 1)).json()
    coordinator = await user_id(client, world, "coord-a")
    with pytest.raises(RuntimeError):
        async with db.transaction(session_factory) as session:
            await confirm_dropoff(session, world.dept_a, logged["id"], coordinator)
            found = (await session.exec(select(Message.kind))).all()
            assert "dropoff_confirmed" in found  # written with the decision
            raise RuntimeError("the request failed after the decision")
    assert await kinds(session_factory) == []


async def test_orders_tell_the_employee_when_placed_and_when_released_by_anyone_else(
    client: Client, world: World, session_factory: Factory
) -> None:
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    product = await add_product(client, world.headers["coord-a"], world.dept_a, price=20)
    await credit(client, world, "emp-a", 200, station["code"])
    emp, headers = await user_id(client, world, "emp-a"), world.headers["emp-a"]
    own = (await order(client, headers, product["id"])).json()
    by_desk = (await order(client, headers, product["id"])).json()
    expiring = (await order(client, headers, product["id"])).json()
    assert (await client.post(f"/api/orders/{own['id']}/cancel", headers=headers)).is_success
    cancelled = await client.post(
        f"/api/orders/{by_desk['id']}/cancel", headers=world.headers["coord-a"]
    )
    assert cancelled.is_success
    later = datetime.fromisoformat(expiring["expires_at"]) + timedelta(seconds=1)
    assert await sweep_expired_orders(session_factory, now=later) == 1
    assert await kinds(session_factory) == [
        ("order_ready", emp, own["id"]),
        ("order_ready", emp, by_desk["id"]),
        ("order_ready", emp, expiring["id"]),
        # the employee's own cancellation: they know
        ("order_released", emp, by_desk["id"]),
        ("order_released", emp, expiring["id"]),
    ]


async def test_a_refused_order_leaves_no_message(
    client: Client, world: World, session_factory: Factory
) -> None:
    product = await add_product(client, world.headers["coord-a"], world.dept_a, price=20)
    response = await order(client, world.headers["emp-a"], product["id"])
    assert response.status_code == 409  # no points: the order's row was written, then rolled back
    assert await kinds(session_factory) == []


async def test_a_department_application_tells_the_admins_and_an_admins_registration_does_not(
    client: Client, world: World, session_factory: Factory
) -> None:
    before = await kinds(session_factory, applications=True)  # the world's own departments
    applied = await client.post(
        "/api/departments",
        json={
            **_department("申请部门").__dict__,
            "coordinator": {
                "username": "new-coord",
                "display_name": "新",
                "password": "pass-1234-x",
            },
        },
    )
    assert applied.status_code == 201, applied.text
    registered = await client.post(
        "/api/departments", json=_department("登记部门").__dict__, headers=world.headers["admin"]
    )
    assert registered.status_code == 201
    new = [k for k in await kinds(session_factory, applications=True) if k not in before]
    assert new == [("department_applied", None, applied.json()["id"])]


async def test_the_sweeper_reminds_of_an_order_due_tomorrow_once(
    client: Client, world: World, session_factory: Factory
) -> None:
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    product = await add_product(client, world.headers["coord-a"], world.dept_a, price=20)
    await credit(client, world, "emp-a", 20, station["code"])
    placed = (await order(client, world.headers["emp-a"], product["id"])).json()
    due = datetime.fromisoformat(placed["expires_at"])
    async with db.transaction(session_factory) as session:
        assert await remind_orders(session, world.dept_a, due - timedelta(days=2)) == 0
    for hours_before in (23, 20):
        await sweep_events(session_factory, due - timedelta(hours=hours_before), time(23, 59))
    reminders = [k for k in await kinds(session_factory) if k[0] == "order_expiring"]
    assert reminders == [("order_expiring", await user_id(client, world, "emp-a"), placed["id"])]


async def test_the_daily_figures_are_written_once_a_day_after_the_set_time_where_a_robot_is_on(
    client: Client, world: World, session_factory: Factory, robots
) -> None:
    put = await client.put(
        f"/api/departments/{world.dept_a}/channels",
        json={"wecom": {"webhook_url": robots.url("wecom", "wecom-token-1")}},
        headers=world.headers["coord-a"],
    )
    assert put.status_code == 200, put.text
    # 17:59 and 18:00 Asia/Shanghai are 09:59 and 10:00 UTC.
    day = datetime(2026, 6, 10, 9, 59, tzinfo=utcnow().tzinfo)
    async with db.transaction(session_factory) as session:
        assert await post_daily_figures(session, day, time(18, 0)) == 0
        assert await post_daily_figures(session, day + timedelta(minutes=1), time(18, 0)) == 1
        assert await post_daily_figures(session, day + timedelta(hours=5), time(18, 0)) == 0
        tomorrow = day + timedelta(days=1, minutes=1)
        assert await post_daily_figures(session, tomorrow, time(18, 0)) == 1
    figures = [k for k in await kinds(session_factory) if k[0] == "daily_figures"]
    assert figures == [
        ("daily_figures", None, "2026-06-10"),
        ("daily_figures", None, "2026-06-11"),
    ]

"""The delivery worker against stand-ins of WeCom, DingTalk, Feishu and an SMTP server: the
platforms check each signature, answer their errors and rate limits; the worker retries with
exponential back-off, dead-letters after the last try or at once when retrying cannot help,
and a resend goes out again under the same delivery id."""

from datetime import time, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from catalog.models import utcnow
from exchange.notify.models import Delivery
from exchange.notify.outbox import post_daily_figures
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
from tests.notify.conftest import Deliver
from tests.notify.fakes import Mailbox, Robots

Factory = async_sessionmaker[AsyncSession]
SECRETS = {"dingtalk": "SEC0f1e2d3c4b5a69788796a5b4c3d2e1f0", "feishu": "UHbDROdFyUZyvTyvwafeQ"}


async def deliveries(session_factory: Factory) -> list[Delivery]:
    async with db.transaction(session_factory) as session:
        return list((await session.exec(select(Delivery).order_by(col(Delivery.channel)))).all())


async def set_robots(client: Client, world: World, robots: Robots, **kinds: str | None) -> None:
    """Set up the department's robots; each kind given its signing secret or None."""
    body: dict[str, Any] = {}
    for kind, secret in kinds.items():
        token = f"{kind}-token-a"
        robots.secrets[token] = secret
        body[kind] = {"webhook_url": robots.url(kind, token)}
        if secret:
            body[kind]["secret"] = secret
    response = await client.put(
        f"/api/departments/{world.dept_a}/channels", json=body, headers=world.headers["coord-a"]
    )
    assert response.status_code == 200, response.text


async def figures_due(session_factory: Factory) -> None:
    async with db.transaction(session_factory) as session:
        assert await post_daily_figures(session, utcnow(), time(0, 0)) >= 1


async def test_each_robot_receives_the_daily_figures_signed_as_its_platform_checks(
    client: Client, world: World, robots: Robots, deliver: Deliver, session_factory: Factory
) -> None:
    await set_robots(client, world, robots, wecom=None, **SECRETS)
    await figures_due(session_factory)
    result = await deliver()
    assert (result.sent, result.dead) == (3, 0)
    assert robots.refused == []
    assert sorted(r.kind for r in robots.received) == ["dingtalk", "feishu", "wecom"]
    sent = {d.channel: d for d in await deliveries(session_factory)}
    for received in robots.received:
        assert "部门a" in received.text and "投放" in received.text  # Chinese, the figures
        assert "http://exchange.test/coord/report" in received.text
        # The delivery's id ends the text, so a copy shows as the same message.
        assert received.delivery_id == sent[received.kind].id
        assert sent[received.kind].state == "sent" and sent[received.kind].attempts == 1


async def test_a_wrong_signing_secret_is_refused_and_dead_lettered_at_once_with_the_reason(
    client: Client, world: World, robots: Robots, deliver: Deliver, session_factory: Factory
) -> None:
    await set_robots(client, world, robots, **SECRETS)
    robots.secrets["dingtalk-token-a"] = "SECthe-robot-was-given-another-secret"
    robots.secrets["feishu-token-a"] = "another-feishu-secret"
    await figures_due(session_factory)
    result = await deliver()
    assert (result.sent, result.dead) == (0, 2)
    assert sorted(robots.refused) == [("dingtalk", 310000), ("feishu", 19021)]
    dead = {d.channel: d for d in await deliveries(session_factory)}
    assert dead["dingtalk"].state == "dead" and "310000" in (dead["dingtalk"].last_error or "")
    assert dead["feishu"].state == "dead" and "19021" in (dead["feishu"].last_error or "")


async def test_rate_limits_are_retried_with_exponential_back_off_until_sent(
    client: Client, world: World, robots: Robots, deliver: Deliver, session_factory: Factory
) -> None:
    await set_robots(client, world, robots, wecom=None)
    robots.script("wecom", (200, {"errcode": 45009, "errmsg": "api freq out of limit"}))
    robots.script("wecom", (200, {"errcode": 45009, "errmsg": "api freq out of limit"}))
    await figures_due(session_factory)
    start = utcnow()
    assert (await deliver(start)).retried == 1
    [waiting] = await deliveries(session_factory)
    # retry_base 60 s (tests/notify/conftest.py): 60 s after the first failure, then 120 s.
    assert waiting.next_attempt_at == start + timedelta(seconds=60)
    assert "45009" in (waiting.last_error or "")
    assert (await deliver(start + timedelta(seconds=59))).retried == 0  # not due yet
    assert (await deliver(start + timedelta(seconds=60))).retried == 1
    [waiting] = await deliveries(session_factory)
    assert waiting.next_attempt_at == start + timedelta(seconds=60 + 120)
    assert (await deliver(start + timedelta(seconds=180))).sent == 1
    [sent] = await deliveries(session_factory)
    assert (sent.state, sent.attempts, sent.last_error) == ("sent", 3, None)
    assert len(robots.received) == 1


async def test_after_the_last_attempt_a_delivery_is_dead_and_a_resend_delivers_it_under_its_id(
    client: Client, world: World, robots: Robots, deliver: Deliver, session_factory: Factory
) -> None:
    await set_robots(client, world, robots, feishu=SECRETS["feishu"])
    robots.script(
        "feishu", *[(429, {"code": 99991400, "msg": "request trigger frequency limit"})] * 3
    )
    await figures_due(session_factory)
    now = utcnow()
    for step in range(3):  # notify_max_attempts=3
        await deliver(now + timedelta(hours=step))
    [dead] = await deliveries(session_factory)
    assert (dead.state, dead.attempts) == ("dead", 3)
    assert "HTTP 429" in (dead.last_error or "")
    assert robots.received == []

    listed = await client.get(
        f"/api/departments/{world.dept_a}/messages?state=dead", headers=world.headers["coord-a"]
    )
    assert listed.status_code == 200
    [message] = listed.json()["items"]
    assert message["kind"] == "daily_figures"
    assert message["deliveries"][0]["state"] == "dead"
    resent = await client.post(
        f"/api/departments/{world.dept_a}/messages/{message['id']}/resend",
        headers=world.headers["coord-a"],
    )
    assert resent.status_code == 200, resent.text
    assert resent.json()["deliveries"][0]["state"] == "queued"
    assert (await deliver()).sent == 1
    [received] = robots.received
    assert received.delivery_id == dead.id  # the same delivery, under the same id
    [sent] = await deliveries(session_factory)
    assert sent.state == "sent" and sent.resent_by is not None


async def give_address(
    client: Client, world: World, username: str, email: str, **extra: Any
) -> None:
    response = await client.put(
        "/api/me/notifications", json={"email": email, **extra}, headers=world.headers[username]
    )
    assert response.status_code == 200, response.text


async def test_employees_with_an_address_get_their_messages_by_mail_in_their_language(
    client: Client,
    world: World,
    mailbox: Mailbox,
    deliver: Deliver,
    session_factory: Factory,
) -> None:
    await give_address(client, world, "emp-a", "emp-a@example.cn")
    await give_address(client, world, "emp-a2", "emp-a2@example.cn", language="en")
    await give_address(client, world, "coord-a", "coord-a@example.cn", email_opt_out=True)
    await open_campaign(client, world.headers["admin"], policy="steward")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    for username in ("emp-a", "emp-a2", "coord-a"):
        logged = await drop(client, world.headers[username], station["code"], "paper", 2500)
        confirmed = await client.post(
            f"/api/dropoffs/{logged.json()['id']}/confirm", headers=world.headers["coord-a"]
        )
        assert confirmed.status_code == 200
    result = await deliver()
    assert result.sent == 2  # the coordinator opted out: no delivery was made for them
    by_address = {mail.to[0]: mail for mail in mailbox.received}
    assert set(by_address) == {"emp-a@example.cn", "emp-a2@example.cn"}
    assert mailbox.logins == ["exchange", "exchange"]  # signed in with the configured account
    chinese, english = by_address["emp-a@example.cn"], by_address["emp-a2@example.cn"]
    assert chinese.message["Subject"] == "投放已确认：100 积分"
    assert "报纸及废纸 2.5 kg" in chinese.text and "http://exchange.test/home" in chinese.text
    assert english.message["Subject"] == "Drop-off confirmed: 100 points"
    assert "newspapers and paper 2.5 kg" in english.text
    sent = {d.target: d for d in await deliveries(session_factory)}
    assert {mail.message_id for mail in mailbox.received} == {d.id for d in sent.values()}
    assert chinese.message["From"] == "云兑换 <noreply@exchange.test>"


async def test_an_order_ready_mail_links_to_its_pickup_code(
    client: Client, world: World, mailbox: Mailbox, deliver: Deliver
) -> None:
    await give_address(client, world, "emp-a", "emp-a@example.cn")
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    product = await add_product(client, world.headers["coord-a"], world.dept_a, price=20)
    await credit(client, world, "emp-a", 20, station["code"])
    placed = (await order(client, world.headers["emp-a"], product["id"])).json()
    assert (await deliver()).sent == 1
    [mail] = mailbox.received
    assert mail.message["Subject"] == "可以取货：石门大米"
    assert f"http://exchange.test/orders/{placed['id']}" in mail.text
    assert "一楼收发室" in mail.text  # where to pick it up


async def test_the_mail_server_busy_is_retried_and_a_refused_address_is_dead_at_once(
    client: Client, world: World, mailbox: Mailbox, deliver: Deliver, session_factory: Factory
) -> None:
    await give_address(client, world, "emp-a", "emp-a@example.cn")
    await open_campaign(client, world.headers["admin"], policy="steward")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    logged = await drop(client, world.headers["emp-a"], station["code"], "phone", 1)
    await client.post(
        f"/api/dropoffs/{logged.json()['id']}/reject",
        json={"reason": "没有收到"},
        headers=world.headers["coord-a"],
    )
    mailbox.scripted = ["451 4.3.0 Try again later", "550 5.1.1 No such mailbox"]
    now = utcnow()
    assert (await deliver(now)).retried == 1
    assert (await deliver(now + timedelta(minutes=1))).dead == 1
    [dead] = await deliveries(session_factory)
    assert dead.state == "dead" and "550" in (dead.last_error or "")
    assert mailbox.received == []


async def test_a_department_application_is_mailed_to_the_platform_admins(
    client: Client, world: World, mailbox: Mailbox, deliver: Deliver
) -> None:
    await give_address(client, world, "admin", "admin@example.cn")
    # The world's three departments were applications (no admin registered them).
    assert (await deliver()).sent == 3
    assert sorted(mail.message["Subject"] for mail in mailbox.received) == [
        "新的单位备案申请：部门a",
        "新的单位备案申请：部门b",
        "新的单位备案申请：部门p",
    ]
    assert "http://exchange.test/admin/departments" in mailbox.received[0].text
    mailbox.received.clear()
    details = {
        "name": "农业局",
        "village_name": "石门村",
        "village_county": "平江县",
        "village_province": "湖南省",
        "contact_name": "王五",
        "contact_phone": "0731-1234",
        "pickup_location": "二楼",
    }
    registered = await client.post("/api/departments", json=details, headers=world.headers["admin"])
    assert registered.status_code == 201  # an admin's own registration: nobody is told
    assert (await deliver()).fanned_out == 0 and mailbox.received == []


@pytest.mark.parametrize("kind", ["wecom", "dingtalk", "feishu"])
async def test_the_test_button_posts_to_the_robot_and_says_what_the_platform_answered(
    client: Client, world: World, robots: Robots, kind: str
) -> None:
    await set_robots(client, world, robots, **{kind: SECRETS.get(kind)})
    url = f"/api/departments/{world.dept_a}/channels/{kind}/test"
    tested = await client.post(url, headers=world.headers["coord-a"])
    assert tested.status_code == 200, tested.text
    assert tested.json() == {"sent": True, "error": None}
    assert robots.received[-1].text.startswith("云兑换测试消息")
    del robots.secrets[f"{kind}-token-a"]  # the robot was deleted on the platform
    tested = await client.post(url, headers=world.headers["coord-a"])
    assert tested.json()["sent"] is False
    assert tested.json()["error"].split(" error ")[1].split(":")[0] in {"93000", "300001", "19001"}

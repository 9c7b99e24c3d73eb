"""The delivery worker killed mid-delivery and started again (a real `exchange serve`, SIGKILL):
every message is delivered, and no recipient gets one twice — a delivery caught in flight is
sent again under the same id, which the receiver recognises (the e-mail's Message-ID, the
robot message's last line). On SQLite and PostgreSQL."""

import asyncio
import signal
from collections import Counter
from pathlib import Path

import httpx
from sqlmodel import select

from api import db
from catalog.models import utcnow
from exchange.notify.models import Delivery, Kind
from exchange.notify.outbox import write_message
from tests.foundation.serving import CLIENT_TIMEOUT, Server, poll, populate
from tests.notify.fakes import Mailbox, Robots
from tests.notify.test_delivery import SECRETS


async def _deliveries(database_url: str) -> list[Delivery]:
    engine = db.create_engine(database_url)
    try:
        async with db.transaction(db.create_session_factory(engine)) as session:
            return list((await session.exec(select(Delivery))).all())
    finally:
        await engine.dispose()


async def test_a_worker_killed_mid_delivery_loses_nothing_and_sends_nothing_twice(
    database_url: str, tmp_path: Path, robots: Robots, mailbox: Mailbox
) -> None:
    robots.hold = True  # the robots' first requests wait: the worker is killed during them
    server = Server(
        tmp_path / "data",
        database_url,
        notify_interval_seconds=0.05,
        notify_send_timeout_seconds=1,  # a claimed delivery is due again 3 s later
        notify_webhook_hosts=robots.netloc,
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        smtp_security="none",
        smtp_username=mailbox.username,
        smtp_password=mailbox.password,
        smtp_from="noreply@exchange.test",
    )
    try:
        await server.start()
        async with httpx.AsyncClient(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
            departments = await populate(database_url, client)
            robot_kinds = [("wecom", "dingtalk"), ("feishu",)]
            for department, kinds in zip(departments, robot_kinds, strict=True):
                body = {}
                for kind in kinds:
                    token = f"{kind}-{department.id}"
                    robots.secrets[token] = SECRETS.get(kind)
                    body[kind] = {"webhook_url": robots.url(kind, token)}
                    if kind in SECRETS:
                        body[kind]["secret"] = SECRETS[kind]
                url = f"/api/departments/{department.id}/channels"
                put = await client.put(url, json=body, headers=department.coordinator)
                assert put.status_code == 200, put.text
                for n, employee in enumerate(department.employees):
                    address = {"email": f"{department.id}-{n}@example.cn"}
                    given = await client.put(
                        "/api/me/notifications", json=address, headers=employee
                    )
                    assert given.status_code == 200
                    dropped = await client.post(
                        "/api/dropoffs",
                        json={"station_code": department.station_code, "category": "ink_cartridge",
                              "quantity": 1},
                        headers={**employee, "Idempotency-Key": f"drop-{department.id}-{n}"},
                    )  # fmt: skip
                    assert dropped.status_code == 201
                    ordered = await client.post(
                        "/api/orders",
                        json={"product_id": department.product_id, "quantity": 1},
                        headers={**employee, "Idempotency-Key": f"order-{department.id}-{n}"},
                    )
                    assert ordered.status_code == 201, ordered.text  # tells the employee by mail
        # The day's figures, as the sweeper writes them: a post to each robot.
        engine = db.create_engine(database_url)
        try:
            async with db.transaction(db.create_session_factory(engine)) as session:
                for department in departments:
                    await write_message(
                        session,
                        department_id=department.id,
                        kind=Kind.daily_figures,
                        reference=utcnow().date().isoformat(),
                        dedupe_key="figures:today",
                        now=utcnow(),
                    )
        finally:
            await engine.dispose()
        assert await asyncio.to_thread(robots.arrived.wait, 60), "no robot was posted to"
        assert await server.signal(signal.SIGKILL) == -signal.SIGKILL
        # The platform answers the requests in flight: it got them, the worker never knew.
        robots.hold = False
        robots.release.set()

        await server.start()

        async def all_sent() -> bool:
            found = await _deliveries(database_url)
            return len(found) == 11 and all(d.state == "sent" for d in found)

        async with asyncio.timeout(120):
            await poll(all_sent)
    finally:
        await server.stop()

    deliveries = {d.id: d for d in await _deliveries(database_url)}
    by_target: dict[str, list[str]] = {}
    for delivery in deliveries.values():
        by_target.setdefault(delivery.target, []).append(delivery.message_id)
    # One delivery per message and recipient, ever: 8 mails and 3 robot posts.
    assert all(len(messages) == len(set(messages)) for messages in by_target.values())
    mails = [mail.message_id for mail in mailbox.received]
    posts = [post.delivery_id for post in robots.received]
    # Every delivery reached its recipient...
    assert set(mails) | set(posts) == set(deliveries)
    assert {mail.to[0] for mail in mailbox.received} == {
        f"{department.id}-{n}@example.cn" for department in departments for n in range(4)
    }
    # ... and what came twice came under one id, and only what was in flight at the kill.
    again = {id_ for id_, count in Counter(mails + posts).items() if count > 1}
    assert again <= {id_ for id_, delivery in deliveries.items() if delivery.attempts > 1}
    assert {p for p in posts if p in again}, "the posts held at the kill came again"
    # Nothing secret reached the server's log.
    log = server.log_path.read_text()
    assert "notifications delivered" in log
    for secret in [*SECRETS.values(), *robots.secrets]:
        assert secret not in log

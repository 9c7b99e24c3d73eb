"""The notification pages in a real browser: a coordinator's group robots (shown masked) and
the messages sent, with what failed and why; an employee's e-mail settings on a phone.

Nothing here makes the server post to a platform: the worker does not run in the browser
tests' server (notify_interval_seconds), and no test button is pressed."""

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import select

from api import db
from api.settings import Settings
from catalog.models import Department, User, utcnow
from exchange.notify import channels
from exchange.notify.channels import RobotChange
from exchange.notify.models import Delivery, Kind, Message
from tests.browser.support import check_page, sign_in

WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-71b4-4bc4-97a0-0ec2b1fa5a3d"
DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=98975521a1b23c02cdd1a9e4f7c1"


def mail(user: User, state: str) -> dict[str, Any]:
    return {"channel": "email", "target": f"user:{user.id}", "state": state}


@pytest.fixture(scope="module")
def sent(browser_settings: Settings, server: str) -> None:
    """Department A's robots and a day of messages: sent, failed, waiting, undeliverable."""

    async def seed() -> None:
        engine = db.create_engine(browser_settings.database_url)
        factory = db.create_session_factory(engine)
        try:
            async with db.transaction(factory) as session:
                department = (
                    await session.exec(
                        select(Department).where(Department.name == "示范机关事务局")
                    )
                ).one()
                users = {
                    u.username: u
                    for u in (
                        await session.exec(select(User).where(User.department_id == department.id))
                    ).all()
                }
                coordinator = users["coord-a"].id
                await channels.set_channels(
                    session,
                    department.id,
                    {
                        "wecom": RobotChange(webhook_url=WECOM),
                        "dingtalk": RobotChange(webhook_url=DINGTALK, secret="SEC8d0e3f1a9c"),
                    },
                    coordinator,
                    browser_settings.secret_box,
                    frozenset(),
                )
                now = utcnow().replace(microsecond=0)
                rows: list[tuple[Kind, str | None, str, list[dict[str, Any]]]] = [
                    (Kind.daily_figures, None, now.date().isoformat(), [
                        {"channel": "wecom", "target": "wecom", "state": "sent"},
                        {"channel": "dingtalk", "target": "dingtalk", "state": "dead",
                         "last_error": "DingTalk error 310000: sign not match"},
                    ]),
                    (Kind.dropoff_confirmed, users["emp-a1"].id, "01a23b9f1c2d3e4f5a6b7c", [
                        mail(users["emp-a1"], "sent"),
                    ]),
                    (Kind.order_ready, users["emp-a2"].id, "01a23ba01d2e3f4a5b6c7d", [
                        {**mail(users["emp-a2"], "queued"), "attempts": 2,
                         "last_error": "SMTP 451: 4.3.0 Try again later"},
                    ]),
                    (Kind.points_expiring, users["emp-a3"].id, "01a23ba11e2f3a4b5c6d7e", [
                        mail(users["emp-a3"], "sent"),
                    ]),
                    (Kind.order_released, users["emp-a4"].id, "01a23ba21f3a4b5c6d7e8f", []),
                ]  # fmt: skip
                for n, (kind, recipient, reference, deliveries) in enumerate(rows):
                    at = now - timedelta(minutes=10 * (len(rows) - n))
                    message = Message(
                        department_id=department.id,
                        # ids in the order of their times, as the triggers make them
                        id=f"{int(at.timestamp() * 1000):012x}{n:010x}",
                        kind=kind,
                        recipient_id=recipient,
                        reference=reference,
                        dedupe_key=f"browser:{n}",
                        created_at=at,
                        fanned_out=True,
                    )
                    session.add(message)
                    for fields in deliveries:
                        session.add(
                            Delivery(
                                department_id=department.id,
                                message_id=message.id,
                                attempts=fields.pop("attempts", 1),
                                last_attempt_at=at,
                                sent_at=at if fields["state"] == "sent" else None,
                                next_attempt_at=at + timedelta(minutes=4),
                                created_at=at,
                                **fields,
                            )
                        )
        finally:
            await engine.dispose()

    # Playwright's sync API runs an event loop in this thread; the seeding needs its own.
    thread = threading.Thread(target=lambda: asyncio.run(seed()))
    thread.start()
    thread.join()


def test_a_coordinator_sees_the_robots_masked_and_what_was_sent(desktop: Page, sent: None) -> None:
    sign_in(desktop, "coord-a", next="/coord/channels")
    expect(desktop.get_by_role("heading", name="企业微信")).to_be_visible()
    page = desktop.content()
    assert "…5a3d" in page and "…f7c1" in page
    assert "693a91f6" not in page and "SEC8d0e3f1a9c" not in page  # never shown again
    expect(desktop.get_by_text("已保存（不显示）")).to_be_visible()
    check_page(desktop, "notify-channels")

    desktop.get_by_role("link", name="已发送的消息").click()
    expect(desktop.get_by_role("heading", name="消息记录")).to_be_visible()
    expect(desktop.get_by_text("DingTalk error 310000: sign not match")).to_be_visible()
    expect(desktop.get_by_text("SMTP 451: 4.3.0 Try again later")).to_be_visible()
    expect(desktop.get_by_role("table").get_by_text("没有可发送的对象")).to_be_visible()
    check_page(desktop, "notify-messages")

    desktop.get_by_role("link", name="发送失败").click()
    expect(desktop.locator("tbody tr")).to_have_count(1)


def test_an_employee_gives_an_address_on_a_phone(phone: Page, sent: None) -> None:
    sign_in(phone, "emp-a5", next="/me/notifications")
    phone.get_by_label("电子邮箱").fill("emp-a5@example.cn")
    phone.get_by_role("button", name="保存").click()
    expect(phone.get_by_text("已保存。")).to_be_visible()
    expect(phone.get_by_label("电子邮箱")).to_have_value("emp-a5@example.cn")
    check_page(phone, "notify-employee")

"""The notification pages through the browser's own requests (forms with their CSRF token):
robots set, tested and removed with their secrets never shown, failed messages resent, an
employee's address saved; odd input never a server error."""

import re
from urllib.parse import quote

import pytest

from tests.conftest import PASSWORD, World
from tests.exchange.helpers import Client
from tests.notify.conftest import Deliver
from tests.notify.fakes import Robots
from tests.notify.test_delivery import SECRETS, figures_due


async def sign_in(client: Client, username: str) -> str:
    """Signs in through the page (cookie) and answers the CSRF token for forms."""
    client.cookies.clear()
    page = await client.get("/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    answer = await client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "_csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return token.group(1)


async def test_a_coordinator_sets_tests_and_removes_a_robot_and_never_sees_its_secret_again(
    client: Client, world: World, robots: Robots
) -> None:
    csrf = await sign_in(client, "coord-a")
    token, secret = "dingtalk-page-token", SECRETS["dingtalk"]
    robots.secrets[token] = secret
    bad = await client.post(
        "/coord/channels/dingtalk",
        data={
            "_csrf_token": csrf,
            "dingtalk-webhook_url": "https://example.cn/r",
            "enabled": "yes",
        },
    )
    assert bad.status_code == 422
    assert "请粘贴平台给出的机器人 Webhook 地址" in bad.text
    saved = await client.post(
        "/coord/channels/dingtalk",
        data={"_csrf_token": csrf, "dingtalk-webhook_url": robots.url("dingtalk", token),
              "dingtalk-secret": secret, "enabled": "yes"},
    )  # fmt: skip
    assert saved.status_code == 200 and str(saved.url).endswith("/coord/channels")
    assert "…oken" in saved.text and "已保存（不显示）" in saved.text
    assert token not in saved.text and secret not in saved.text
    tested = await client.post("/coord/channels/dingtalk/test", data={"_csrf_token": csrf})
    assert "测试消息已发到钉钉群" in tested.text
    assert robots.received[-1].text.startswith("云兑换测试消息")
    # Saving again without the address or the secret keeps both; switched off.
    kept = await client.post("/coord/channels/dingtalk", data={"_csrf_token": csrf})
    assert "…oken" in kept.text and "已关闭" in kept.text and "已保存（不显示）" in kept.text
    removed = await client.post("/coord/channels/dingtalk/remove", data={"_csrf_token": csrf})
    assert "…oken" not in removed.text


async def test_a_failed_message_is_shown_with_its_reason_and_sent_again_from_the_page(
    client: Client, world: World, robots: Robots, deliver: Deliver, session_factory
) -> None:
    csrf = await sign_in(client, "coord-a")
    robots.secrets["wecom-page"] = None
    await client.post(
        "/coord/channels/wecom",
        data={"_csrf_token": csrf, "wecom-webhook_url": robots.url("wecom", "wecom-page"),
              "enabled": "yes"},
    )  # fmt: skip
    robots.script("wecom", *[(200, {"errcode": 45009, "errmsg": "api freq out of limit"})] * 3)
    await figures_due(session_factory)
    await deliver()
    listing = await client.get("/coord/messages")
    assert "当天数据" in listing.text and "等待发送" in listing.text and "45009" in listing.text
    failed = await client.get("/coord/messages?state=queued")
    message_id = re.search(r'action="/coord/messages/([0-9a-f]+)/resend"', failed.text)
    assert message_id is not None
    robots.scripted.clear()
    resent = await client.post(
        f"/coord/messages/{message_id.group(1)}/resend", data={"_csrf_token": csrf}
    )
    assert resent.status_code == 200
    assert (await deliver()).sent == 1
    assert "已发送" in (await client.get("/coord/messages?state=sent")).text
    # Another department's coordinator cannot resend it.
    csrf_b = await sign_in(client, "coord-b")
    other = await client.post(
        f"/coord/messages/{message_id.group(1)}/resend", data={"_csrf_token": csrf_b}
    )
    assert other.status_code == 404


async def test_an_employee_saves_an_address_and_a_language_for_messages(
    client: Client, world: World
) -> None:
    csrf = await sign_in(client, "emp-a")
    page = await client.get("/me/notifications")
    assert page.status_code == 200 and "电子邮箱" in page.text
    bad = await client.post("/me/notifications", data={"_csrf_token": csrf, "email": "nope"})
    assert bad.status_code == 422 and "请填写电子邮箱" in bad.text
    saved = await client.post(
        "/me/notifications",
        data={"_csrf_token": csrf, "email": "emp-a@example.cn", "language": "en"},
    )
    assert saved.status_code == 200 and 'value="emp-a@example.cn"' in saved.text
    got = await client.get("/api/me/notifications", headers=world.headers["emp-a"])
    assert got.json() == {"email": "emp-a@example.cn", "email_opt_out": False, "language": "en"}


@pytest.mark.parametrize("odd", ["", "²", "x" * 3000, "<script>alert(1)</script>", "\x00", "-1"])
async def test_odd_input_to_the_notification_pages_never_gets_a_server_error(
    client: Client, world: World, odd: str
) -> None:
    url = quote(odd, safe="") or "x"
    for username, requests in (
        ("coord-a", [
            ("POST", "/coord/channels/wecom", ["wecom-webhook_url", "enabled"]),
            ("POST", "/coord/channels/feishu", ["feishu-webhook_url", "feishu-secret"]),
            ("POST", f"/coord/channels/{url}", ["webhook_url"]),
            ("POST", f"/coord/channels/{url}/test", []),
            ("POST", "/coord/channels/wecom/test", []),
            ("POST", f"/coord/messages/{url}/resend", []),
            ("GET", f"/coord/messages?state={url}&after={url}", []),
        ]),
        ("emp-a", [("POST", "/me/notifications", ["email", "email_opt_out", "language"])]),
        ("admin", [
            ("GET", f"/admin/messages?state={url}&after={url}", []),
            ("POST", f"/admin/messages/{url}/{url}/resend", []),
        ]),
    ):  # fmt: skip
        csrf = await sign_in(client, username)
        for method, path, fields in requests:
            data = {"_csrf_token": csrf, **dict.fromkeys(fields, odd)}
            answer = await client.request(
                method, path, data=data if method == "POST" else None, follow_redirects=False
            )
            assert answer.status_code < 500, (method, path, answer.text[:300])


async def test_an_admin_sets_when_a_campaigns_points_expire_on_the_campaign_pages(
    client: Client, world: World
) -> None:
    csrf = await sign_in(client, "admin")
    form = {
        "_csrf_token": csrf,
        "name": "节能周",
        "first_day": "2026-06-08",
        "last_day": "2026-06-14",
        "policy": "auto",
        "daily_cap_points": "500",
        "department_id": "",
    }
    refused = await client.post("/admin/campaigns", data={**form, "points_expire_days": "x"})
    assert refused.status_code == 422 and "0 到 3,650" in refused.text
    created = await client.post("/admin/campaigns", data={**form, "points_expire_days": "30"})
    assert created.status_code == 200
    campaign_id = str(created.url).rsplit("/", 1)[1]
    api = await client.get(f"/api/campaigns/{campaign_id}", headers=world.headers["admin"])
    assert api.json()["points_expire_days"] == 30
    assert api.json()["points_expire"].startswith("2026-07-14T16:00:00")  # UTC
    listing = await client.get("/admin/campaigns")
    assert "2026-07-15 00:00" in listing.text  # 30 days after the end, China time
    settings = {
        "_csrf_token": csrf,
        "last_day": "2026-06-14",
        "policy": "auto",
        "daily_cap_points": "500",
    }
    never = await client.post(
        f"/admin/campaigns/{campaign_id}/settings", data={**settings, "points_expire_days": ""}
    )
    assert never.status_code == 200
    api = await client.get(f"/api/campaigns/{campaign_id}", headers=world.headers["admin"])
    assert api.json()["points_expire"] is None

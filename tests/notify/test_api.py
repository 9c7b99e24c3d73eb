"""The channels and messages API: a coordinator sees and sets only their own department's,
stored secrets never come back (not in answers, not in logs), and bad input is a 4xx problem
on both databases."""

import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from exchange.notify.models import RobotChannel
from tests.conftest import World
from tests.exchange.helpers import Client
from tests.notify.conftest import Deliver
from tests.notify.fakes import Robots
from tests.notify.test_delivery import SECRETS, figures_due

TOKENS = {kind: f"{kind}-9f8e7d6c5b4a" for kind in ("wecom", "dingtalk", "feishu")}


def channels_url(world: World) -> str:
    return f"/api/departments/{world.dept_a}/channels"


def full_setup(robots: Robots) -> dict[str, Any]:
    for kind, token in TOKENS.items():
        robots.secrets[token] = SECRETS.get(kind)
    body: dict[str, Any] = {}
    for kind, token in TOKENS.items():
        body[kind] = {"webhook_url": robots.url(kind, token)}
        if kind in SECRETS:
            body[kind]["secret"] = SECRETS[kind]
    return body


def assert_no_secret(text: str) -> None:
    for secret in [*SECRETS.values(), *TOKENS.values()]:
        assert secret not in text


@pytest.fixture
def logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], str]]:
    """What was logged so far: structlog's events and the standard library's records
    (uvicorn, httpx, ...) at every level.

    The project's module-level loggers are cached on first use (api/logging.py), and the app
    is shared by the tests of a worker, so each is swapped for a fresh one that structlog's
    capture sees."""
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        for name, module in list(sys.modules.items()):
            if name.split(".")[0] in ("api", "exchange") and isinstance(
                getattr(module, "log", None), type(structlog.get_logger())
            ):
                monkeypatch.setattr(module, "log", structlog.get_logger())
        yield lambda: "\n".join(
            [repr(event) for event in events]
            + [f"{r.name} {r.levelname} {r.getMessage()}" for r in caplog.records]
        )


async def test_stored_robots_are_shown_masked_and_their_secrets_never_again(
    client: Client, world: World, robots: Robots, logged: Callable[[], str]
) -> None:
    coordinator = world.headers["coord-a"]
    put = await client.put(channels_url(world), json=full_setup(robots), headers=coordinator)
    assert put.status_code == 200, put.text
    got = await client.get(channels_url(world), headers=coordinator)
    for answer in (put, got):
        assert_no_secret(answer.text)
        shown = {c["kind"]: c for c in answer.json()["channels"]}
        assert (
            shown["wecom"]["webhook_url"]
            == f"http://{robots.netloc}/cgi-bin/webhook/send?key=…5b4a"
        )
        assert (
            shown["feishu"]["webhook_url"] == f"http://{robots.netloc}/open-apis/bot/v2/hook/…5b4a"
        )
        assert [shown[k]["has_secret"] for k in ("wecom", "dingtalk", "feishu")] == [
            False,
            True,
            True,
        ]
        assert all(c["configured"] and c["enabled"] for c in shown.values())
        assert answer.json()["email"] is True
    # Switching one off keeps its address and secret.
    off = await client.put(
        channels_url(world), json={"dingtalk": {"enabled": False}}, headers=coordinator
    )
    dingtalk = next(c for c in off.json()["channels"] if c["kind"] == "dingtalk")
    assert dingtalk == {**dingtalk, "configured": True, "enabled": False, "has_secret": True}
    tested = await client.post(f"{channels_url(world)}/feishu/test", headers=coordinator)
    assert tested.json()["sent"] is True
    assert_no_secret(tested.text)
    # the requests were logged (api/logging.py's line per request), without the secrets
    assert "'route': '/api/departments/{department_id}/channels'" in logged()
    assert_no_secret(logged())


async def test_secrets_are_sealed_in_the_database_and_absent_from_the_worker_logs(
    client: Client,
    world: World,
    robots: Robots,
    deliver: Deliver,
    session_factory: async_sessionmaker[AsyncSession],
    logged: Callable[[], str],
) -> None:
    await client.put(channels_url(world), json=full_setup(robots), headers=world.headers["coord-a"])
    async with db.transaction(session_factory) as session:
        for row in (await session.exec(select(RobotChannel))).all():
            assert_no_secret(f"{row.webhook_url} {row.secret}")
    robots.secrets[TOKENS["dingtalk"]] = "SECa-changed-secret-on-the-platform"
    await figures_due(session_factory)
    result = await deliver()
    assert (result.sent, result.dead) == (2, 1)  # the failure is logged, without secrets
    assert "notification not delivered" in logged()
    assert_no_secret(logged())


async def test_a_coordinator_sees_and_sets_only_their_own_departments_channels_and_messages(
    client: Client, world: World, robots: Robots
) -> None:
    await client.put(channels_url(world), json=full_setup(robots), headers=world.headers["coord-a"])
    other = world.headers["coord-b"]
    for method, path in (
        ("GET", channels_url(world)),
        ("PUT", channels_url(world)),
        ("POST", f"{channels_url(world)}/wecom/test"),
        ("GET", f"/api/departments/{world.dept_a}/messages"),
        ("POST", f"/api/departments/{world.dept_a}/messages/01a0000000000000000000/resend"),
    ):
        response = await client.request(
            method, path, json={} if method == "PUT" else None, headers=other
        )
        assert response.status_code == 404, (method, path, response.text)
    for username, status in (("emp-a", 403), ("audit-a", 403)):
        response = await client.get(channels_url(world), headers=world.headers[username])
        assert response.status_code == status
    assert (
        await client.get(channels_url(world), headers=world.headers["admin"])
    ).status_code == 200
    assert (await client.get("/api/messages", headers=world.headers["coord-a"])).status_code == 403
    everything = await client.get("/api/messages", headers=world.headers["admin"])
    assert everything.status_code == 200
    assert {m["department_id"] for m in everything.json()["items"]} >= {world.dept_a, world.dept_b}


WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abcdefgh12"
DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=abcdefgh12"
FEISHU = "https://open.feishu.cn/open-apis/bot/v2/hook/abcdefgh12"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"wecom": {"webhook_url": WECOM.replace("qyapi.weixin.qq.com", "evil.example")}}, "wecom"),
        ({"wecom": {"webhook_url": WECOM.replace("https:", "http:")}}, "wecom"),
        ({"wecom": {"webhook_url": WECOM.replace("key=", "token=")}}, "wecom"),
        ({"wecom": {"webhook_url": WECOM + ":443"}}, "wecom"),
        ({"wecom": {"webhook_url": WECOM.replace("//", "//user:pw@")}}, "wecom"),
        ({"dingtalk": {"webhook_url": DINGTALK.split("?")[0]}}, "dingtalk"),
        ({"feishu": {"webhook_url": FEISHU.replace("abcdefgh12", "../x?y=1")}}, "feishu"),
        ({"feishu": {"webhook_url": FEISHU.replace(".cn/", ".cn.evil.example/")}}, "feishu"),
        ({"feishu": {"enabled": True}}, "feishu"),
        ({"wecom": {"webhook_url": WECOM, "secret": "SECsomething"}}, "wecom.secret"),
        ({"dingtalk": {"webhook_url": DINGTALK, "secret": "has space in it"}}, "dingtalk.secret"),
        ({"dingtalk": {"webhook_url": DINGTALK, "secret": "短"}}, "dingtalk.secret"),
    ],
)  # fmt: skip
async def test_an_address_not_the_platforms_own_or_a_bad_secret_is_refused_naming_the_field(
    client: Client, world: World, body: dict[str, Any], field: str
) -> None:
    response = await client.put(channels_url(world), json=body, headers=world.headers["coord-a"])
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    expected = field if field.endswith(".secret") else f"{field}.webhook_url"
    assert response.json()["errors"][0]["field"] == expected
    got = await client.get(channels_url(world), headers=world.headers["coord-a"])
    assert not any(c["configured"] for c in got.json()["channels"])  # nothing was stored


async def test_the_platforms_own_addresses_are_accepted_as_they_give_them(
    client: Client, world: World
) -> None:
    wecom = (
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7aaa-4bc4-97a0-0ec2b1fa5aaa"
    )
    dingtalk = "https://oapi.dingtalk.com/robot/send?access_token=98975521a1b23c02cdd1a9"
    feishu = "https://open.feishu.cn/open-apis/bot/v2/hook/954e40d7-0000-4111-0000-649b5e0ba5f9"
    body = {
        "wecom": {"webhook_url": wecom},
        "dingtalk": {"webhook_url": dingtalk, "secret": "SEC19dd84be8c7f3cf71761974f1ed3ef7"},
        "feishu": {"webhook_url": feishu, "secret": "UHbDROd0000UZyvTyvwafe"},
    }
    response = await client.put(channels_url(world), json=body, headers=world.headers["coord-a"])
    assert response.status_code == 200, response.text
    assert [c["webhook_url"] for c in response.json()["channels"]] == [
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…5aaa",
        "https://oapi.dingtalk.com/robot/send?access_token=…d1a9",
        "https://open.feishu.cn/open-apis/bot/v2/hook/…a5f9",
    ]
    removed = await client.put(
        channels_url(world), json={"wecom": None}, headers=world.headers["coord-a"]
    )
    assert [c["configured"] for c in removed.json()["channels"]] == [False, True, True]


@pytest.mark.parametrize(
    "body",
    [
        {"wecom": {"webhook_url": 7}},
        {"telegram": {"webhook_url": "https://t.me/x"}},
        {"wecom": {"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abcdefgh12"}},
        {"feishu": {"secret": "x" * 201}},
        [],
    ],
)
async def test_a_malformed_channels_body_is_a_400_problem(
    client: Client, world: World, body: Any
) -> None:
    response = await client.put(channels_url(world), json=body, headers=world.headers["coord-a"])
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_an_unknown_robot_kind_or_message_is_not_found(client: Client, world: World) -> None:
    coordinator = world.headers["coord-a"]
    for path in (
        f"{channels_url(world)}/telegram/test",
        f"{channels_url(world)}/wecom/test",  # not set up
        f"/api/departments/{world.dept_a}/messages/nope/resend",
    ):
        response = await client.post(path, headers=coordinator)
        assert response.status_code in (400, 404), (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    listed = await client.get(
        f"/api/departments/{world.dept_a}/messages?state=lost", headers=coordinator
    )
    assert listed.status_code == 400


async def test_an_employee_gives_an_address_and_a_language_or_opts_out(
    client: Client, world: World
) -> None:
    emp = world.headers["emp-a"]
    assert (await client.get("/api/me/notifications", headers=emp)).json() == {
        "email": None,
        "email_opt_out": False,
        "language": None,
    }
    for bad in ("not-an-address", "a b@example.cn", "x@localhost", "名字@例子"):
        refused = await client.put("/api/me/notifications", json={"email": bad}, headers=emp)
        assert refused.status_code == 422, bad
        assert refused.json()["errors"][0]["field"] == "email"
    given = await client.put(
        "/api/me/notifications",
        json={"email": " emp-a@example.cn ", "email_opt_out": True, "language": "en"},
        headers=emp,
    )
    assert given.json() == {"email": "emp-a@example.cn", "email_opt_out": True, "language": "en"}
    assert (await client.get("/api/me", headers=emp)).json()["language"] == "en"
    cleared = await client.put("/api/me/notifications", json={"email": None}, headers=emp)
    assert cleared.json() == {"email": None, "email_opt_out": False, "language": None}

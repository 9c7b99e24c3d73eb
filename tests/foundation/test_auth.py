"""Sign-in, tokens, cookies, revocation and the rate limit."""

from datetime import UTC, datetime, timedelta

import jwt
import pytest
import structlog
from litestar import Litestar
from litestar.testing import AsyncTestClient
from structlog.testing import CapturingLogger

from api.app import create_app
from api.auth import COOKIE_NAME
from api.controllers import auth as auth_controller
from api.settings import Settings
from catalog import passwords
from tests.conftest import PASSWORD, World, login


async def test_a_member_signs_in_and_me_answers_who_they_are(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    response = await client.post(
        "/api/auth/token", json={"username": "coord-a", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60
    assert COOKIE_NAME in response.cookies

    me = await client.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "coord-a"
    assert me.json()["roles"] == ["coordinator", "employee"]
    assert me.json()["department"]["id"] == world.dept_a


@pytest.mark.parametrize(
    ("username", "password"), [("coord-a", "wrong-password"), ("nobody", PASSWORD)]
)
async def test_a_failed_sign_in_never_says_which_part_was_wrong_and_is_logged(
    client: AsyncTestClient[Litestar],
    world: World,
    username: str,
    password: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    captured = CapturingLogger()
    monkeypatch.setattr(auth_controller, "log", structlog.wrap_logger(captured, processors=[]))
    response = await client.post(
        "/api/auth/token", json={"username": username, "password": password}
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] == "Wrong username or password"
    assert response.json()["detail"] == "The username or password is not correct."
    failures = [call.kwargs for call in captured.calls if call.method_name == "warning"]
    assert failures == [
        {
            "event": "login failed",
            "username": username,
            "client": "testclient",
            "known_device": False,
            "path": "/api/auth/token",
        }
    ]


async def test_logout_revokes_the_token(client: AsyncTestClient[Litestar], world: World) -> None:
    headers = await login(client, "emp-a")
    logout = await client.post("/api/auth/logout", headers=headers)
    assert logout.status_code == 204 and logout.content == b""
    ended = [c for c in logout.headers.get_list("set-cookie") if c.startswith("exchange_token=")]
    assert ended and "Max-Age=0" in ended[0]  # the page session ends too
    response = await client.get("/api/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["title"] == "Not signed in"


async def test_an_expired_or_foreign_token_is_refused(
    client: AsyncTestClient[Litestar], settings: Settings, world: World
) -> None:
    me = await client.get("/api/me", headers=world.headers["emp-a"])
    claims = {
        "sub": me.json()["id"],
        "jti": "x" * 32,
        "iat": datetime.now(UTC) - timedelta(hours=2),
    }
    expired = jwt.encode(
        {**claims, "exp": datetime.now(UTC) - timedelta(hours=1)}, settings.jwt_signing_secret
    )
    forged = jwt.encode(
        {**claims, "exp": datetime.now(UTC) + timedelta(hours=1)},
        "another service's secret, long enough for HS256",
    )
    for token in (expired, forged, "not-a-jwt"):
        response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token


async def test_the_page_cookie_reads_the_api_but_never_writes_to_it(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    await client.post("/api/auth/token", json={"username": "coord-a", "password": PASSWORD})
    assert (await client.get("/api/me")).status_code == 200
    response = await client.post(
        f"/api/departments/{world.dept_a}/members",
        json={"username": "sneaky", "display_name": "Sneaky"},
    )
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]


async def test_sign_in_is_rate_limited_per_client(
    database_url: str, tmp_path, world: World
) -> None:
    settings = Settings(
        data_dir=tmp_path / "limited", database_url=database_url, login_attempts_per_minute=3
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        for _ in range(4):  # showing the sign-in page is not an attempt
            assert (await client.get("/login")).status_code == 200
        statuses = [
            (
                await client.post(
                    "/api/auth/token", json={"username": "emp-a", "password": "nope-nope"}
                )
            ).status_code
            for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        assert (await client.get("/health")).status_code == 200  # other routes are not limited
        # Every 429 says when to come back: the API's problem and the sign-in page alike.
        api = await client.post("/api/auth/token", json={"username": "emp-a", "password": "x"})
        await client.get("/login")  # sets the CSRF cookie the form needs
        csrf = {"x-csrftoken": client.cookies.get("exchange_csrf") or ""}
        form = await client.post(
            "/login", data={"username": "emp-a", "password": "x"}, headers=csrf
        )
        for refused in (api, form):
            assert refused.status_code == 429
            assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_no_token_means_401_problem(client: AsyncTestClient[Litestar], world: World) -> None:
    response = await client.get("/api/me")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_passwords_are_hashed_with_argon2id_at_its_standard_cost(
    production_password_hashing: None,
) -> None:
    hashed = await passwords.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # RFC 9106's second choice
    assert await passwords.verify_password(hashed, PASSWORD)
    assert not await passwords.verify_password(hashed, "wrong-password")
    assert not await passwords.verify_password(None, PASSWORD)  # an unknown user

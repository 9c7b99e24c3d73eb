"""What a request costs between the socket and the domain call (issue 14): nothing is sent to
a thread, a bearer token is verified once and then remembered (never past its expiry), the
caller is loaded in one statement on PostgreSQL, a JSON body is decoded once, every request
gets one log line and an id, and the CSRF middleware runs for the pages alone."""

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
import httpx
import litestar.connection.request as request_module
import msgspec
import pytest
import structlog
from litestar import Litestar
from litestar.security.jwt import Token
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

import api.logging
from api import db
from api.app import create_app
from api.auth import TokenVerifier
from api.settings import Settings
from catalog.identity import Caller, load_caller, load_identity, revoke_token
from catalog.models import User, utcnow
from tests.conftest import World
from tests.exchange.helpers import add_station, drop, open_campaign


@pytest.fixture
async def on_this_loop(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app served on this test's own event loop (Litestar's test client would run it on
    a loop of its own, out of the test's reach)."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://exchange.test") as client:
        yield client
    await app.state.engine.dispose()


async def test_a_dropoff_sends_nothing_to_a_thread(
    on_this_loop: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain `def` guard, hook or dependency would be run by Litestar on a worker thread
    (loop.run_in_executor), and so would any blocking call handed to anyio: neither may
    happen on a drop-off, neither for the token's first request nor for a later one."""
    client: Any = on_this_loop
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)

    submitted: list[str] = []
    loop = asyncio.get_running_loop()
    run_in_executor = loop.run_in_executor
    run_sync = anyio.to_thread.run_sync

    def recording_executor(executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        submitted.append(repr(func))
        return run_in_executor(executor, func, *args)

    async def recording_run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        submitted.append(repr(func))
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(loop, "run_in_executor", recording_executor)
    monkeypatch.setattr(anyio.to_thread, "run_sync", recording_run_sync)
    # emp-a's token is new to this app: verified, and its caller loaded, on the first one.
    for _ in range(2):
        response = await drop(client, world.headers["emp-a"], station["code"], "ink_cartridge", 1)
        assert response.status_code == 201, response.text
    assert submitted == []


async def test_a_token_is_verified_once_then_remembered_but_never_past_its_expiry(
    client: AsyncTestClient[Litestar], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    decode = Token.decode

    def counting_decode(encoded_token: str, *args: Any, **kwargs: Any) -> Token:
        decoded.append(encoded_token)
        return decode(encoded_token, *args, **kwargs)

    monkeypatch.setattr(Token, "decode", counting_decode)
    headers = world.headers["emp-a"]
    for _ in range(3):
        assert (await client.get("/api/me", headers=headers)).status_code == 200
    assert len(decoded) == 1

    verifier: TokenVerifier = client.app.state.token_verifier
    token = verifier(headers["Authorization"].removeprefix("Bearer "))
    # The remembered token stops working the moment it expires, without being decoded again.
    # (monkeypatched: the app, its verifier with it, serves this worker's later tests too)
    monkeypatch.setattr(verifier, "clock", lambda: token.exp.timestamp())
    response = await client.get("/api/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["title"] == "Not signed in"
    assert len(decoded) == 1


async def test_a_revoked_token_is_refused_though_its_verification_is_remembered(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    headers = world.headers["emp-a"]
    assert (await client.get("/api/me", headers=headers)).status_code == 200
    assert (await client.post("/api/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/api/me", headers=headers)).status_code == 401


def test_the_token_verifier_keeps_a_bounded_number_of_tokens() -> None:
    secret = secrets.token_urlsafe(48)
    verifier = TokenVerifier(secret, "HS256", limit=2)
    tokens = [
        Token(sub=f"user-{n}", exp=utcnow().replace(year=2100), jti=str(n)).encode(secret, "HS256")
        for n in range(3)
    ]
    for encoded in tokens:
        assert verifier(encoded).sub == f"user-{tokens.index(encoded)}"
    assert verifier._verified.cache_info().currsize == 2


async def test_the_caller_is_loaded_alike_on_both_databases_in_one_statement_on_postgresql(
    world: World, database_url: str, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with db.transaction(session_factory) as session:
        users = {u.username: u for u in (await session.exec(select(User))).all()}
        coordinator = await load_identity(session, users["coord-a"].id)
        admin = await load_identity(session, users["admin"].id)
        users["emp-a2"].is_active = False
        session.add(users["emp-a2"])
        await revoke_token(session, "revoked-jti", utcnow().replace(year=2100))

    # One connection, so that every load below runs on the one whose statements are counted.
    engine = db.create_engine(database_url, pool_size=1, max_overflow=0)
    statements: list[str] = []

    async def load(jti: str, user_id: str) -> Caller:
        async with db.connection(engine) as conn:
            return await load_caller(conn, jti, user_id)

    try:
        await load("warm-up", users["coord-a"].id)  # asyncpg looks up its types once
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                driver.add_query_logger(lambda record: statements.append(record.query))
        assert coordinator is not None and coordinator.department_id == world.dept_a
        assert await load(secrets.token_hex(16), users["coord-a"].id) == Caller(False, coordinator)
        assert await load(secrets.token_hex(16), users["admin"].id) == Caller(False, admin)
        assert await load("revoked-jti", users["coord-a"].id) == Caller(True, None)
        assert await load(secrets.token_hex(16), users["emp-a2"].id) == Caller(False, None)
        assert await load(secrets.token_hex(16), "no-such-user") == Caller(False, None)
    finally:
        await engine.dispose()
    if engine.dialect.name == "postgresql":
        assert len(statements) == 5, statements  # one per load, nothing else on the wire


async def test_a_json_body_is_decoded_once(
    client: AsyncTestClient[Litestar], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    body = msgspec.json.encode(
        {"station_code": station["code"], "category": "ink_cartridge", "quantity": 2}
    )
    decoded: list[bytes] = []
    decode = msgspec.json.decode

    def counting_decode(data: Any, *args: Any, **kwargs: Any) -> Any:
        if data == body:
            decoded.append(data)
        return decode(data, *args, **kwargs)

    monkeypatch.setattr(msgspec.json, "decode", counting_decode)
    # Litestar's own decoder (Request.json), which would decode the body a second time.
    monkeypatch.setattr(request_module, "decode_json", lambda *_, **__: decoded.append(b"again"))
    headers = {
        **world.headers["emp-a"],
        "Content-Type": "application/json",
        "Idempotency-Key": secrets.token_hex(8),
    }
    response = await client.post("/api/dropoffs", content=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["quantity"] == 2 and response.json()["points"] == 40
    assert len(decoded) == 1


async def test_every_request_gets_one_log_line_and_its_id_even_when_refused_before_a_route(
    client: AsyncTestClient[Litestar], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured = structlog.testing.CapturingLogger()
    logger = structlog.wrap_logger(captured, processors=[structlog.contextvars.merge_contextvars])
    monkeypatch.setattr(api.logging, "log", logger)
    asked = [
        ("GET", "/api/me", world.headers["emp-a"], 200),
        ("GET", "/api/departments/x/report", world.headers["emp-a"], 403),
        ("GET", "/api/me", {}, 401),
        ("GET", "/no/such/address", {}, 404),
        ("DELETE", "/api/me", world.headers["emp-a"], 405),
    ]
    ids = []
    for method, path, headers, status in asked:
        response = await client.request(method, path, headers=headers)
        assert response.status_code == status, (path, response.text)
        ids.append(response.headers["x-request-id"])
    traced = await client.get("/health", headers={"x-request-id": "trace-42"})
    assert traced.headers["x-request-id"] == "trace-42"

    lines = [call.kwargs for call in captured.calls if call.kwargs.get("event") == "request"]
    assert [(line["method"], line["status"]) for line in lines] == [
        *((method, status) for method, _, _, status in asked),
        ("GET", 200),
    ]
    assert [line["request_id"] for line in lines] == [*ids, "trace-42"]
    assert lines[0]["route"] == "/api/me"
    assert lines[1]["route"] == "/api/departments/{department_id}/report"
    assert lines[3]["route"] == "/no/such/address"
    assert all(isinstance(line["duration_ms"], float) for line in lines)


async def test_the_csrf_cookie_comes_with_the_pages_and_never_with_the_api(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    for path in ("/api/me", "/api/keys", "/health"):
        response = await client.get(path, headers=world.headers["emp-a"])
        assert response.status_code == 200, path
        assert "exchange_csrf" not in response.headers.get("set-cookie", ""), path
    page = await client.get("/login")
    assert page.status_code == 200
    assert "exchange_csrf=" in page.headers["set-cookie"]

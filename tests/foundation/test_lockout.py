"""Per-account lockout: repeated wrong passwords lock the account whatever address they come
from; a locked account answers exactly like a wrong password; time or a coordinator unlock it."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api import db
from api.app import create_app
from api.settings import Settings
from catalog.models import LoginLockout, User, utcnow
from tests.conftest import PASSWORD, World


@pytest.fixture
async def proxied(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """The app behind a trusted proxy, so each request can come from an address of its own."""
    app = ProxyHeadersMiddleware(create_app(settings), trusted_hosts="*")
    async with AsyncTestClient(app=app) as client:  # type: ignore[arg-type]
        yield client


async def attempt(client: AsyncTestClient, password: str, address: str = "10.0.0.1"):  # type: ignore[no-untyped-def,type-arg]
    return await client.post(
        "/api/auth/token",
        json={"username": "emp-a", "password": password},
        headers={"X-Forwarded-For": address},
    )


async def lockout_of(factory: async_sessionmaker[AsyncSession]) -> LoginLockout | None:
    async with db.transaction(factory) as session:
        user = (await session.exec(select(User).where(User.username == "emp-a"))).one()
        return await session.get(LoginLockout, user.id)


async def test_thirty_wrong_passwords_from_thirty_addresses_lock_the_account(
    proxied: AsyncTestClient,
    world: World,
    session_factory: async_sessionmaker[AsyncSession],  # type: ignore[type-arg]
) -> None:
    wrong = [await attempt(proxied, "wrong-password", f"10.0.{n}.7") for n in range(30)]
    assert {response.status_code for response in wrong} == {401}  # no address hit its limit

    right = await attempt(proxied, PASSWORD, "10.9.9.9")
    assert right.status_code == 401
    assert right.json() == wrong[-1].json()  # indistinguishable from a wrong password
    assert right.headers["content-type"] == wrong[-1].headers["content-type"]
    assert "retry-after" not in right.headers

    row = await lockout_of(session_factory)
    assert row is not None and row.failures == 30 and row.locked_until is not None


async def test_the_lock_ends_with_time_and_comes_back_longer(
    proxied: AsyncTestClient,
    world: World,
    session_factory: async_sessionmaker[AsyncSession],  # type: ignore[type-arg]
) -> None:
    for _ in range(5):  # the default threshold
        assert (await attempt(proxied, "wrong-password")).status_code == 401
    first = await lockout_of(session_factory)
    assert first is not None and first.locked_until is not None
    first_lock = first.locked_until - first.last_failure_at
    assert (await attempt(proxied, PASSWORD)).status_code == 401

    async def let_the_lock_expire() -> None:
        async with db.transaction(session_factory) as session:
            row = await session.get(LoginLockout, first.user_id)
            assert row is not None and row.locked_until is not None
            row.locked_until = utcnow() - timedelta(seconds=1)
            session.add(row)

    await let_the_lock_expire()
    assert (await attempt(proxied, "wrong-password")).status_code == 401  # a sixth failure
    again = await lockout_of(session_factory)
    assert again is not None and again.locked_until is not None
    assert again.locked_until - again.last_failure_at == 2 * first_lock  # back-off

    await let_the_lock_expire()
    assert (await attempt(proxied, PASSWORD)).status_code == 200
    assert await lockout_of(session_factory) is None  # a success forgets the failures


async def test_a_coordinator_unlocks_a_member_of_their_department_only(
    proxied: AsyncTestClient,
    world: World,
    session_factory: async_sessionmaker[AsyncSession],  # type: ignore[type-arg]
) -> None:
    for _ in range(6):
        await attempt(proxied, "wrong-password")
    assert (await attempt(proxied, PASSWORD)).status_code == 401
    row = await lockout_of(session_factory)
    assert row is not None
    member = f"/api/departments/{world.dept_a}/members/{row.user_id}/unlock"
    foreign = f"/api/departments/{world.dept_b}/members/{row.user_id}/unlock"

    assert (await proxied.post(foreign, headers=world.headers["coord-b"])).status_code == 404
    assert (await proxied.post(member, headers=world.headers["coord-b"])).status_code == 404
    assert (await proxied.post(member, headers=world.headers["emp-a2"])).status_code == 403
    assert (await attempt(proxied, PASSWORD)).status_code == 401  # still locked

    listing = await proxied.get(
        f"/api/departments/{world.dept_a}/members", headers=world.headers["coord-a"]
    )
    assert {m["username"] for m in listing.json()["items"] if m["locked"]} == {"emp-a"}

    assert (await proxied.post(member, headers=world.headers["coord-a"])).status_code == 204
    assert (await attempt(proxied, PASSWORD)).status_code == 200


async def test_the_members_page_shows_a_lock_and_lifts_it(
    proxied: AsyncTestClient,
    world: World,
    session_factory: async_sessionmaker[AsyncSession],  # type: ignore[type-arg]
) -> None:
    for _ in range(5):
        await attempt(proxied, "wrong-password")
    row = await lockout_of(session_factory)
    assert row is not None
    proxied.cookies.clear()
    await proxied.post("/api/auth/token", json={"username": "coord-a", "password": PASSWORD})
    page = await proxied.get("/coord/members")
    form = f'action="/coord/members/{row.user_id}/unlock"'
    assert form in page.text
    token = page.cookies.get("exchange_csrf") or proxied.cookies.get("exchange_csrf")
    unlocked = await proxied.post(
        f"/coord/members/{row.user_id}/unlock", headers={"x-csrftoken": token or ""}
    )
    assert unlocked.status_code == 200, unlocked.text
    assert "emp-a" in unlocked.text and form not in unlocked.text
    assert await lockout_of(session_factory) is None


async def test_the_sign_in_page_answers_a_locked_account_like_a_wrong_password(
    proxied: AsyncTestClient,
    world: World,  # type: ignore[type-arg]
) -> None:
    def form(password: str) -> dict[str, str]:
        return {"username": "emp-a", "password": password}

    page = await proxied.get("/login")
    token = page.cookies.get("exchange_csrf")
    headers = {"x-csrftoken": token or ""}
    wrong = await proxied.post("/login", data=form("wrong-password"), headers=headers)
    for _ in range(10):
        await proxied.post("/login", data=form("wrong-password"), headers=headers)
    right = await proxied.post("/login", data=form(PASSWORD), headers=headers)
    assert wrong.status_code == right.status_code == 401
    assert "locked" not in right.text.lower()
    assert wrong.text.count("field-error") == right.text.count("field-error")

"""Sign-in lockout per account and client: wrong passwords from one address or one device lock
that client out of that account, and no other; a device that signed in before (its signed
device cookie) is never locked out by failures elsewhere, even from its own network; many
addresses guessing at one account are slowed by the account's soft limit, never locked. A
locked client answers exactly like a wrong password; time or a coordinator unlock it."""

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api import db
from api.devices import DEVICE_COOKIE
from api.settings import Settings
from catalog.models import LoginLockout, RateLimitHit, User, utcnow
from tests.conftest import PASSWORD, World, app_for

OFFICE = "10.0.0.1"  # the owner's network, which a colleague playing a prank shares


@pytest.fixture
async def proxied(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """The app behind a trusted proxy, so each request can come from an address of its own.
    An app of its own: the `client` of the world fixture runs the shared one meanwhile."""
    app = ProxyHeadersMiddleware(app_for(settings, spare=True), trusted_hosts="*")
    async with AsyncTestClient(app=app) as client:  # type: ignore[arg-type]
        yield client


async def attempt(
    client: AsyncTestClient,  # type: ignore[type-arg]
    password: str,
    address: str = OFFICE,
    device: str | None = None,
    username: str = "emp-a",
) -> httpx.Response:
    """One sign-in from `address`, carrying the device cookie `device` (or none)."""
    client.cookies.clear()
    headers = {"X-Forwarded-For": address}
    if device is not None:
        headers["Cookie"] = f"{DEVICE_COOKIE}={device}"
    return await client.post(
        "/api/auth/token", json={"username": username, "password": password}, headers=headers
    )


async def owners_device(client: AsyncTestClient, address: str = OFFICE) -> str:  # type: ignore[type-arg]
    """The device cookie of a browser on which emp-a signed in."""
    signed_in = await attempt(client, PASSWORD, address)
    assert signed_in.status_code == 200, signed_in.text
    return signed_in.cookies[DEVICE_COOKIE]


async def locks(factory: async_sessionmaker[AsyncSession]) -> dict[str, LoginLockout]:
    async with db.transaction(factory) as session:
        user = (await session.exec(select(User).where(User.username == "emp-a"))).one()
        rows = await session.exec(select(LoginLockout).where(LoginLockout.user_id == user.id))
        return {row.client: row for row in rows}


async def let_locks_expire(factory: async_sessionmaker[AsyncSession]) -> None:
    async with db.transaction(factory) as session:
        await session.exec(  # type: ignore[call-overload]
            update(LoginLockout).values(locked_until=utcnow() - timedelta(seconds=1))
        )


async def let_the_minute_pass(factory: async_sessionmaker[AsyncSession]) -> None:
    async with db.transaction(factory) as session:
        await session.exec(  # type: ignore[call-overload]
            update(RateLimitHit).values(window_start=RateLimitHit.window_start - 60)
        )


async def test_wrong_passwords_from_one_address_lock_out_that_address_only(
    proxied: AsyncTestClient,  # type: ignore[type-arg]
    world: World,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    wrong = [await attempt(proxied, "wrong-password") for _ in range(5)]
    assert {response.status_code for response in wrong} == {401}

    locked = await attempt(proxied, PASSWORD)
    assert locked.status_code == 401
    assert locked.json() == wrong[-1].json()  # indistinguishable from a wrong password
    assert "retry-after" not in locked.headers
    assert set(await locks(session_factory)) == {f"address:{OFFICE}"}

    assert (await attempt(proxied, PASSWORD, "10.0.0.2")).status_code == 200


async def test_a_strangers_wrong_passwords_never_lock_the_owners_device_even_from_its_network(
    proxied: AsyncTestClient,  # type: ignore[type-arg]
    world: World,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    device = await owners_device(proxied)
    for _ in range(30):  # a prank from the same office: locked, then slowed
        assert (await attempt(proxied, "wrong-password")).status_code in (401, 429)
    assert (await attempt(proxied, PASSWORD)).status_code in (401, 429)  # the office is locked

    owner = await attempt(proxied, PASSWORD, device=device)
    assert owner.status_code == 200, owner.text
    assert set(await locks(session_factory)) == {f"address:{OFFICE}"}
    assert owner.cookies[DEVICE_COOKIE]  # the device stays known, for another year


async def test_many_addresses_guessing_at_one_account_are_slowed_never_locked(
    proxied: AsyncTestClient,  # type: ignore[type-arg]
    world: World,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    device = await owners_device(proxied)
    answers = [await attempt(proxied, "wrong-password", f"10.0.{n}.7") for n in range(30)]
    assert [a.status_code for a in answers] == [401] * 10 + [429] * 20  # the default limit: 10
    slowed = answers[-1]
    assert slowed.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(slowed.headers["retry-after"]) <= 60
    counted = await locks(session_factory)
    assert len(counted) == 10  # one failure each, and no address failed often enough to lock
    assert all(row.locked_until is None for row in counted.values())

    # The owner's known device is never held back; an unknown one waits for the next minute.
    assert (await attempt(proxied, PASSWORD, "10.9.9.9", device)).status_code == 200
    assert (await attempt(proxied, PASSWORD, "10.9.9.9")).status_code == 429
    await let_the_minute_pass(session_factory)
    assert (await attempt(proxied, PASSWORD, "10.9.9.9")).status_code == 200


async def test_the_soft_limit_counts_guesses_not_the_owners_sign_ins(
    proxied: AsyncTestClient,  # type: ignore[type-arg]
    world: World,
) -> None:
    for n in range(15):  # no known device: each counted, then given back when it is right
        assert (await attempt(proxied, PASSWORD, f"10.1.{n}.1")).status_code == 200


async def test_a_device_cookie_of_another_account_or_forged_counts_as_a_stranger(
    proxied: AsyncTestClient,  # type: ignore[type-arg]
    world: World,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    device = await owners_device(proxied)
    colleague = await attempt(proxied, PASSWORD, username="emp-a2")
    theirs = colleague.cookies[DEVICE_COOKIE]
    header, payload, signature = device.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    for cookie in (theirs, forged, theirs, forged, theirs):
        assert (await attempt(proxied, "wrong-password", device=cookie)).status_code == 401
    assert set(await locks(session_factory)) == {f"address:{OFFICE}"}
    assert (await attempt(proxied, PASSWORD, device=forged)).status_code == 401
    assert (await attempt(proxied, PASSWORD, device=device)).status_code == 200


async def test_a_devices_own_wrong_passwords_lock_out_that_device(
    proxied: AsyncTestClient,  # type: ignore[type-arg]
    world: World,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    device = await owners_device(proxied)
    for _ in range(5):  # e.g. someone at the owner's unlocked computer
        assert (await attempt(proxied, "wrong-password", device=device)).status_code == 401
    assert (await attempt(proxied, PASSWORD, device=device)).status_code == 401
    (client,) = await locks(session_factory)
    assert client.startswith("device:")
    assert (await attempt(proxied, PASSWORD)).status_code == 200  # the address is not locked


async def test_a_lock_ends_with_time_and_comes_back_longer(
    proxied: AsyncTestClient,  # type: ignore[type-arg]
    world: World,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    for _ in range(5):  # the default threshold
        assert (await attempt(proxied, "wrong-password")).status_code == 401
    first = (await locks(session_factory))[f"address:{OFFICE}"]
    assert first.locked_until is not None
    first_lock = first.locked_until - first.last_failure_at
    assert (await attempt(proxied, PASSWORD)).status_code == 401

    await let_locks_expire(session_factory)
    assert (await attempt(proxied, "wrong-password")).status_code == 401  # a sixth failure
    again = (await locks(session_factory))[f"address:{OFFICE}"]
    assert again.locked_until is not None
    assert again.locked_until - again.last_failure_at == 2 * first_lock  # back-off

    await let_locks_expire(session_factory)
    assert (await attempt(proxied, PASSWORD)).status_code == 200
    assert await locks(session_factory) == {}  # a success forgets that client's failures


async def test_a_coordinator_unlocks_a_member_of_their_department_only(
    proxied: AsyncTestClient,  # type: ignore[type-arg]
    world: World,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    for _ in range(6):
        await attempt(proxied, "wrong-password")
    assert (await attempt(proxied, PASSWORD)).status_code == 401
    user_id = (await locks(session_factory))[f"address:{OFFICE}"].user_id
    member = f"/api/departments/{world.dept_a}/members/{user_id}/unlock"
    foreign = f"/api/departments/{world.dept_b}/members/{user_id}/unlock"

    assert (await proxied.post(foreign, headers=world.headers["coord-b"])).status_code == 404
    assert (await proxied.post(member, headers=world.headers["coord-b"])).status_code == 404
    assert (await proxied.post(member, headers=world.headers["emp-a2"])).status_code == 403
    assert (await attempt(proxied, PASSWORD)).status_code == 401  # still locked

    listing = await proxied.get(
        f"/api/departments/{world.dept_a}/members", headers=world.headers["coord-a"]
    )
    (locked,) = [m for m in listing.json()["items"] if m["locked"]]
    assert locked["username"] == "emp-a"
    assert [(lock["kind"], lock["address"], lock["failures"]) for lock in locked["locks"]] == [
        ("address", OFFICE, 6)
    ]

    assert (await proxied.post(member, headers=world.headers["coord-a"])).status_code == 204
    assert (await attempt(proxied, PASSWORD)).status_code == 200


async def test_the_members_page_shows_each_lock_and_lifts_them(
    proxied: AsyncTestClient,  # type: ignore[type-arg]
    world: World,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    device = await owners_device(proxied)
    for _ in range(5):
        await attempt(proxied, "wrong-password", "10.0.0.9")
        await attempt(proxied, "wrong-password", device=device)
    user_id = (await locks(session_factory))["address:10.0.0.9"].user_id
    proxied.cookies.clear()
    await proxied.post("/api/auth/token", json={"username": "coord-a", "password": PASSWORD})
    page = await proxied.get("/coord/members")
    form = f'action="/coord/members/{user_id}/unlock"'
    assert form in page.text
    assert "10.0.0.9" in page.text and "本人的设备" in page.text
    token = page.cookies.get("exchange_csrf") or proxied.cookies.get("exchange_csrf")
    unlocked = await proxied.post(
        f"/coord/members/{user_id}/unlock", headers={"x-csrftoken": token or ""}
    )
    assert unlocked.status_code == 200, unlocked.text
    assert "emp-a" in unlocked.text and form not in unlocked.text
    assert await locks(session_factory) == {}


async def test_the_sign_in_page_answers_a_locked_client_like_a_wrong_password(
    proxied: AsyncTestClient,  # type: ignore[type-arg]
    world: World,
) -> None:
    def form(password: str) -> dict[str, str]:
        return {"username": "emp-a", "password": password}

    page = await proxied.get("/login")
    token = page.cookies.get("exchange_csrf")
    headers = {"x-csrftoken": token or "", "X-Forwarded-For": OFFICE}
    wrong = await proxied.post("/login", data=form("wrong-password"), headers=headers)
    for _ in range(4):
        await proxied.post("/login", data=form("wrong-password"), headers=headers)
    right = await proxied.post("/login", data=form(PASSWORD), headers=headers)
    assert wrong.status_code == right.status_code == 401
    assert "locked" not in right.text.lower()
    assert wrong.text.count("field-error") == right.text.count("field-error")


async def test_the_sign_in_page_remembers_the_device_and_says_when_to_try_again(
    proxied: AsyncTestClient,  # type: ignore[type-arg]
    world: World,
) -> None:
    page = await proxied.get("/login")
    headers = {"x-csrftoken": page.cookies.get("exchange_csrf") or ""}
    signed_in = await proxied.post(
        "/login",
        data={"username": "emp-a", "password": PASSWORD},
        headers={**headers, "X-Forwarded-For": "10.3.0.1"},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    device = signed_in.cookies[DEVICE_COOKIE]
    set_cookie = [v for v in signed_in.headers.get_list("set-cookie") if DEVICE_COOKIE in v]
    assert "HttpOnly" in set_cookie[0] and "SameSite=strict" in set_cookie[0]

    for n in range(10):
        await attempt(proxied, "wrong-password", f"10.2.{n}.1")
    proxied.cookies.set("exchange_csrf", page.cookies.get("exchange_csrf") or "")
    slowed = await proxied.post(
        "/login",
        data={"username": "emp-a", "password": PASSWORD},
        headers={**headers, "X-Forwarded-For": "10.3.0.2"},
    )
    assert slowed.status_code == 429
    assert slowed.headers["retry-after"].isdigit()
    assert "秒后再试" in slowed.text
    known = await attempt(proxied, PASSWORD, "10.3.0.2", device)
    assert known.status_code == 200

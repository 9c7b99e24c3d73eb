"""Adding members one by one and by CSV import: checked at once, a bad file refused with a
report per row; a good one imported by a background job, all or nothing."""

from collections.abc import Awaitable, Callable

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from catalog.identity import set_roles
from catalog.models import User
from exchange.models import Job
from tests.conftest import PASSWORD, World, login
from tests.foundation.test_problems import assert_problem


async def members_of(
    client: AsyncTestClient[Litestar], world: World, caller: str = "coord-a"
) -> set[str]:
    response = await client.get(
        f"/api/departments/{world.dept_a}/members?limit=500", headers=world.headers[caller]
    )
    return {item["username"] for item in response.json()["items"]}


RunJobs = Callable[[], Awaitable[int]]
ONE_MEMBER = "username,display_name\nzhao-li,赵力\n".encode()


async def upload(
    client: AsyncTestClient[Litestar], world: World, content: bytes, department: str | None = None
):  # type: ignore[no-untyped-def]
    return await client.post(
        f"/api/departments/{department or world.dept_a}/members/import",
        files={"file": ("members.csv", content, "text/csv")},
        headers=world.headers["coord-a"],
    )


async def test_a_coordinator_adds_a_member_who_signs_in_with_the_generated_password(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    response = await client.post(
        f"/api/departments/{world.dept_a}/members",
        json={"username": "new-hire", "display_name": "新同事"},
        headers=world.headers["coord-a"],
    )
    assert response.status_code == 201
    member = response.json()
    assert member["roles"] == ["employee"]
    await login(client, "new-hire", member["initial_password"])


async def test_a_member_with_a_chosen_password_gets_none_generated(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    response = await client.post(
        f"/api/departments/{world.dept_a}/members",
        json={
            "username": "chooser",
            "display_name": "C",
            "roles": ["employee", "auditor"],
            "password": PASSWORD,
        },
        headers=world.headers["coord-a"],
    )
    assert response.json()["initial_password"] is None
    assert response.json()["roles"] == ["auditor", "employee"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "emp-a", "display_name": "Dup"}, "username"),
        ({"username": "bad name!", "display_name": "X"}, "username"),
        ({"username": "someone", "display_name": "X", "roles": ["admin"]}, "roles"),
        ({"username": "someone", "display_name": "X", "roles": ["wizard"]}, "roles"),
    ],
)
async def test_a_bad_member_is_refused_naming_the_field(
    client: AsyncTestClient[Litestar], world: World, body: dict, field: str
) -> None:
    response = await client.post(
        f"/api/departments/{world.dept_a}/members", json=body, headers=world.headers["coord-a"]
    )
    assert response.status_code in (409, 422)
    if response.status_code == 422:
        assert response.json()["errors"][0]["field"] == field
    assert "someone" not in await members_of(client, world)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"], ids=["utf8", "utf8-bom", "gbk"])
async def test_a_csv_imports_every_member_in_each_accepted_encoding(
    client: AsyncTestClient[Litestar], world: World, run_jobs: RunJobs, encoding: str
) -> None:
    csv = (
        "username,display_name,roles,password\n"
        "wang-fang,王芳,employee,\n"
        "li-lei,李雷,employee;coordinator,secret-pass-1\n"
    )
    before = await members_of(client, world)
    response = await upload(client, world, csv.encode(encoding))
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == job["url"] == f"/api/jobs/{job['id']}"
    assert (job["kind"], job["state"], job["progress"]) == (
        "member_import",
        "queued",
        {"done": 0, "total": 2},
    )
    assert await members_of(client, world) == before  # nothing yet: the job does the work

    assert await run_jobs() == 1
    done = await client.get(job["url"], headers=world.headers["coord-a"])
    assert done.status_code == 200, done.text
    result = done.json()
    assert (result["state"], result["progress"], result["error"]) == (
        "succeeded",
        {"done": 2, "total": 2},
        None,
    )
    assert result["result"]["imported"] == 2
    by_name = {m["username"]: m for m in result["result"]["members"]}
    assert by_name["wang-fang"]["display_name"] == "王芳"
    assert by_name["li-lei"]["roles"] == ["coordinator", "employee"]
    passwords = result["result"]["initial_passwords"]
    assert set(passwords) == {"wang-fang"}  # li-lei chose one
    await login(client, "wang-fang", passwords["wang-fang"])
    await login(client, "li-lei", "secret-pass-1")


async def test_generated_passwords_are_handed_over_once_and_never_stored_in_clear(
    client: AsyncTestClient[Litestar],
    world: World,
    run_jobs: RunJobs,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    job = (await upload(client, world, ONE_MEMBER)).json()
    await run_jobs()
    async with db.transaction(session_factory) as session:
        stored = await session.get(Job, job["id"])
    assert stored is not None and stored.secret is not None and stored.input is None
    first = (await client.get(job["url"], headers=world.headers["coord-a"])).json()
    password = first["result"]["initial_passwords"]["zhao-li"]
    assert password.encode() not in stored.secret
    again = (await client.get(job["url"], headers=world.headers["coord-a"])).json()
    assert "initial_passwords" not in again["result"]
    assert again["result"]["members"] == first["result"]["members"]
    async with db.transaction(session_factory) as session:
        stored = await session.get(Job, job["id"])
        assert stored is not None and stored.secret is None


async def test_a_job_is_its_owners_alone(
    client: AsyncTestClient[Litestar], world: World, run_jobs: RunJobs
) -> None:
    job = (await upload(client, world, ONE_MEMBER)).json()
    await run_jobs()
    for other in ("coord-b", "emp-a", "audit-a", "admin"):
        assert_problem(await client.get(job["url"], headers=world.headers[other]), 404)
    assert_problem(await client.get("/api/jobs/nothing", headers=world.headers["coord-a"]), 404)
    assert_problem(await client.get(job["url"]), 401)
    mine = await client.get(job["url"], headers=world.headers["coord-a"])
    assert "zhao-li" in mine.json()["result"]["initial_passwords"]  # the others took none


async def test_a_username_taken_while_the_job_waited_fails_it_naming_the_row(
    client: AsyncTestClient[Litestar], world: World, run_jobs: RunJobs
) -> None:
    content = b"username,display_name\nfirst-one,A\nlate-taken,B\n"
    job = (await upload(client, world, content)).json()
    added = await client.post(
        f"/api/departments/{world.dept_a}/members",
        json={"username": "late-taken", "display_name": "Quick"},
        headers=world.headers["coord-a"],
    )
    assert added.status_code == 201
    await run_jobs()
    failed = (await client.get(job["url"], headers=world.headers["coord-a"])).json()
    assert failed["state"] == "failed" and failed["result"] is None
    assert failed["error"]["title"] == "Member import rejected"
    assert failed["error"]["errors"] == [{"row": 3, "field": "username", "error": "already taken"}]
    assert "first-one" not in await members_of(client, world)  # all or nothing


async def test_an_import_job_fails_when_its_owner_may_no_longer_import(
    client: AsyncTestClient[Litestar],
    world: World,
    run_jobs: RunJobs,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    job = (await upload(client, world, ONE_MEMBER)).json()
    async with db.transaction(session_factory) as session:
        owner = (await session.exec(select(User).where(User.username == "coord-a"))).one()
        await set_roles(session, owner, ["employee"])
    await run_jobs()
    failed = await client.get(job["url"], headers=world.headers["coord-a"])
    assert failed.json()["state"] == "failed"
    assert failed.json()["error"]["title"] == "Not allowed"
    assert "zhao-li" not in await members_of(client, world, "admin")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"username,roles\nx-user,employee\n",
            [{"row": 1, "field": "display_name", "error": "missing column"}],
        ),
        (
            b"username,display_name\nsame-name,A\nsame-name,B\n",
            [{"row": 3, "field": "username", "error": "duplicate of row 2"}],
        ),
        (
            b"username,display_name,roles\ngood-one,A,employee\nbad-one,B,wizard\n",
            [{"row": 3, "field": "roles", "error": "unknown role 'wizard'"}],
        ),
        (
            b"username,display_name\ngood-one,A\nemp-a,B\n",
            [{"row": 3, "field": "username", "error": "already taken"}],
        ),
        (
            "username,display_name\ngood-one,{}\n".format("长" * 101).encode(),
            [{"row": 2, "field": "display_name", "error": "1-100 characters"}],
        ),
        (
            b"\xff\xfe\x00b\x00a\x00d\x00\x81",
            [{"row": None, "field": None, "error": "the file is neither UTF-8 nor GBK text"}],
        ),
        (
            b"username,display_name\n",
            [{"row": None, "field": None, "error": "the file has no members"}],
        ),
    ],
    ids=["missing-column", "duplicate", "unknown-role", "taken", "too-long", "encoding", "empty"],
)
async def test_a_bad_csv_imports_nothing_and_reports_each_row(
    client: AsyncTestClient[Litestar], world: World, content: bytes, expected: list[dict]
) -> None:
    before = await members_of(client, world)
    response = await upload(client, world, content)
    body = assert_problem(response, 422)
    assert body["title"] == "Member import rejected"
    assert body["errors"] == expected
    assert await members_of(client, world) == before


async def test_importing_into_another_department_is_404(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    response = await upload(client, world, b"username,display_name\nx-user,X\n", world.dept_b)
    assert_problem(response, 404)

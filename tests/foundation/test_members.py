"""Adding members one by one and by CSV import: all or nothing, with a report per row."""

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import PASSWORD, World, login
from tests.foundation.test_problems import assert_problem


async def members_of(client: AsyncTestClient[Litestar], world: World) -> set[str]:
    response = await client.get(
        f"/api/departments/{world.dept_a}/members?limit=500", headers=world.headers["coord-a"]
    )
    return {item["username"] for item in response.json()["items"]}


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
    client: AsyncTestClient[Litestar], world: World, encoding: str
) -> None:
    csv = (
        "username,display_name,roles,password\n"
        "wang-fang,王芳,employee,\n"
        "li-lei,李雷,employee;coordinator,secret-pass-1\n"
    )
    response = await upload(client, world, csv.encode(encoding))
    assert response.status_code == 201, response.text
    assert response.json()["imported"] == 2
    by_name = {m["username"]: m for m in response.json()["members"]}
    assert by_name["wang-fang"]["display_name"] == "王芳"
    assert by_name["li-lei"]["roles"] == ["coordinator", "employee"]
    assert by_name["li-lei"]["initial_password"] is None
    await login(client, "wang-fang", by_name["wang-fang"]["initial_password"])
    await login(client, "li-lei", "secret-pass-1")


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

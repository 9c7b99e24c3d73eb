"""Every bad request answers a problem document and writes nothing."""

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import World


def assert_problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


async def test_malformed_json_is_a_400_problem(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    response = await client.post(
        "/api/auth/token",
        content=b'{"username": "x",',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400)


async def test_a_wrong_type_names_the_field_and_the_rule(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    response = await client.post("/api/auth/token", json={"username": 7, "password": "x"})
    body = assert_problem(response, 400)
    assert body["errors"][0]["field"] == "username"
    assert "str" in body["errors"][0]["rule"]


async def test_an_over_long_string_names_the_field_and_the_limit(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    response = await client.post(
        f"/api/departments/{world.dept_a}/members",
        json={"username": "u" * 65, "display_name": "ok"},
        headers=world.headers["coord-a"],
    )
    body = assert_problem(response, 400)
    assert body["errors"][0]["field"] == "username"
    assert "64" in body["errors"][0]["rule"]
    members = await client.get(
        f"/api/departments/{world.dept_a}/members", headers=world.headers["coord-a"]
    )
    assert "u" * 65 not in members.text


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/api/nowhere", 404), ("DELETE", "/api/me", 405)]
)
async def test_unknown_routes_and_wrong_methods_are_problems(
    client: AsyncTestClient[Litestar], world: World, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path, headers=world.headers["emp-a"])
    assert_problem(response, status)


async def test_a_missing_field_is_named(client: AsyncTestClient[Litestar], world: World) -> None:
    response = await client.post("/api/auth/token", json={"username": "emp-a"})
    body = assert_problem(response, 400)
    assert body["errors"][0]["field"] == "password"

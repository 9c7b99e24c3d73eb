"""Each role's access to each foundation route: allowed, refused (403), or hidden (404)."""

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import World

ROLES = ["admin", "auditor", "coord-a", "audit-a", "emp-a", "coord-b"]

# route → the status each caller gets; "{a}" is department A. Writes go last in each list
# so that a refused write is proven by an unchanged state in the allowed reads.
ROUTES = [
    ("GET", "/api/me", {r: 200 for r in ROLES}),
    (
        "GET",
        "/api/departments",
        {
            "admin": 200,
            "auditor": 200,
            "coord-a": 200,
            "audit-a": 200,
            "emp-a": 403,
            "coord-b": 200,
        },
    ),
    (
        "GET",
        "/api/departments/{a}",
        {
            "admin": 200,
            "auditor": 200,
            "coord-a": 200,
            "audit-a": 200,
            "emp-a": 403,
            "coord-b": 404,
        },
    ),
    (
        "GET",
        "/api/departments/{a}/members",
        {
            "admin": 200,
            "auditor": 403,
            "coord-a": 200,
            "audit-a": 403,
            "emp-a": 403,
            "coord-b": 404,
        },
    ),
    (
        "POST",
        "/api/departments/{a}/members",
        {
            "admin": 201,
            "auditor": 403,
            "coord-a": 201,
            "audit-a": 403,
            "emp-a": 403,
            "coord-b": 404,
        },
    ),
    (
        "POST",
        "/api/departments/{a}/suspend",
        {
            "admin": 200,
            "auditor": 403,
            "coord-a": 403,
            "audit-a": 403,
            "emp-a": 403,
            "coord-b": 403,
        },
    ),
]


@pytest.mark.parametrize("role", ROLES)
async def test_role_access(client: AsyncTestClient[Litestar], world: World, role: str) -> None:
    """Every route in turn, as one role (one app and one world per role, not per route)."""
    answered = {}
    for method, path, expected in ROUTES:
        body = (
            {"username": f"new-{role}", "display_name": "New"} if path.endswith("members") else None
        )
        response = await client.request(
            method, path.format(a=world.dept_a), json=body, headers=world.headers[role]
        )
        answered[f"{method} {path}"] = (response.status_code, expected[role], response.text)
    wrong = {route: got for route, got in answered.items() if got[0] != got[1]}
    assert not wrong, wrong  # route: (status, expected, body)

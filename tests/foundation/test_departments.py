"""Department registration (备案), its status, and who may see which department."""

from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.settings import Settings
from tests.conftest import PASSWORD, World, login
from tests.foundation.test_problems import assert_problem

NEW_DEPARTMENT = {
    "name": "新部门",
    "village_name": "新村",
    "village_county": "紫云县",
    "village_province": "贵州省",
    "contact_name": "张三",
    "contact_phone": "0851-1234",
    "pickup_location": "一楼大厅",
}


async def test_an_admin_registers_a_department_that_starts_pending_and_is_approved(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    admin = world.headers["admin"]
    created = await client.post("/api/departments", json=NEW_DEPARTMENT, headers=admin)
    assert created.status_code == 201
    assert created.json()["status"] == "pending"
    department = created.json()["id"]

    approved = await client.post(f"/api/departments/{department}/approve", headers=admin)
    assert approved.json()["status"] == "approved"
    suspended = await client.post(f"/api/departments/{department}/suspend", headers=admin)
    assert suspended.json()["status"] == "suspended"
    again = await client.post(f"/api/departments/{department}/approve", headers=admin)
    assert again.json()["status"] == "approved"


async def test_approving_an_approved_department_is_a_conflict(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    response = await client.post(
        f"/api/departments/{world.dept_a}/approve", headers=world.headers["admin"]
    )
    assert_problem(response, 409)


async def test_a_coordinator_applies_anonymously_and_waits_for_approval(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    application = {
        **NEW_DEPARTMENT,
        "coordinator": {"username": "applicant", "display_name": "申请人", "password": PASSWORD},
    }
    created = await client.post("/api/departments", json=application)
    assert created.status_code == 201
    assert created.json()["status"] == "pending"
    department = created.json()["id"]

    headers = await login(client, "applicant")
    me = (await client.get("/api/me", headers=headers)).json()
    assert me["department"] == {"id": department, "name": "新部门", "status": "pending"}
    refused = await client.post(
        f"/api/departments/{department}/members",
        json={"username": "early-bird", "display_name": "Early"},
        headers=headers,
    )
    assert refused.status_code == 403
    assert refused.json()["title"] == "Department not approved"


async def test_registering_without_admin_or_coordinator_is_refused(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    assert_problem(await client.post("/api/departments", json=NEW_DEPARTMENT), 401)
    signed_in = await client.post(
        "/api/departments", json=NEW_DEPARTMENT, headers=world.headers["coord-a"]
    )
    assert_problem(signed_in, 403)


async def test_a_department_name_is_registered_once(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    duplicate = {**NEW_DEPARTMENT, "name": "部门a"}
    response = await client.post("/api/departments", json=duplicate, headers=world.headers["admin"])
    assert_problem(response, 409)


async def test_an_application_never_tells_whether_a_username_exists(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    """A taken coordinator username is accepted like a free one, without the account: the
    operator sees at review that the department has no coordinator."""
    answers = []
    for name, username in (("新部门", "emp-a"), ("另一个部门", "brand-new")):
        application = {
            **NEW_DEPARTMENT,
            "name": name,
            "coordinator": {"username": username, "display_name": "X", "password": "another-pw-1"},
        }
        response = await client.post("/api/departments", json=application)
        answers.append((response.status_code, sorted(response.json()), response.json()["status"]))
    assert answers[0] == answers[1] == (201, answers[0][1], "pending")

    # emp-a keeps their own password and department; the applicant got no account.
    assert (await login(client, "emp-a", PASSWORD)).get("Authorization")
    refused = await client.post(
        "/api/auth/token", json={"username": "emp-a", "password": "another-pw-1"}
    )
    assert refused.status_code == 401
    assert (await login(client, "brand-new", "another-pw-1")).get("Authorization")


async def test_a_bad_application_creates_no_department(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    short_password = {
        **NEW_DEPARTMENT,
        "coordinator": {"username": "someone", "display_name": "X", "password": "short"},
    }
    assert_problem(await client.post("/api/departments", json=short_password), 400)
    bad_username = {
        **NEW_DEPARTMENT,
        "coordinator": {"username": "-bad name", "display_name": "X", "password": PASSWORD},
    }
    assert_problem(await client.post("/api/departments", json=bad_username), 422)
    listing = await client.get("/api/departments", headers=world.headers["admin"])
    assert "新部门" not in listing.text


async def test_anonymous_applications_are_limited_per_address(
    database_url: str, tmp_path: Path, world: World
) -> None:
    settings = Settings(data_dir=tmp_path / "x", database_url=database_url, applications_per_hour=2)
    async with AsyncTestClient(app=create_app(settings)) as client:
        statuses = []
        for number in range(3):
            application = {
                **NEW_DEPARTMENT,
                "name": f"申请{number}",
                "coordinator": {
                    "username": f"appl-{number}",
                    "display_name": "X",
                    "password": PASSWORD,
                },
            }
            response = await client.post("/api/departments", json=application)
            statuses.append(response.status_code)
        assert statuses == [201, 201, 429]
        assert 1 <= int(response.headers["retry-after"]) <= 3600
        assert response.json()["status"] == 429
        # An admin registering departments is not an anonymous application.
        admin = await client.post(
            "/api/departments",
            json={**NEW_DEPARTMENT, "name": "管理员登记"},
            headers=await login(client, "admin"),
        )
        assert admin.status_code == 201


@pytest.mark.parametrize(
    ("user", "visible"),
    [
        ("admin", {"a", "b", "p"}),
        ("auditor", {"a", "b", "p"}),
        ("coord-a", {"a"}),
        ("audit-a", {"a"}),
    ],
)
async def test_each_role_sees_only_the_departments_in_its_scope(
    client: AsyncTestClient[Litestar], world: World, user: str, visible: set[str]
) -> None:
    ids = {"a": world.dept_a, "b": world.dept_b, "p": world.pending_dept}
    response = await client.get("/api/departments", headers=world.headers[user])
    assert {item["id"] for item in response.json()["items"]} == {ids[key] for key in visible}
    for key, department in ids.items():
        single = await client.get(f"/api/departments/{department}", headers=world.headers[user])
        assert single.status_code == (200 if key in visible else 404)


async def test_department_listing_pages_by_cursor(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    admin = world.headers["admin"]
    first = (await client.get("/api/departments?limit=2", headers=admin)).json()
    assert len(first["items"]) == 2 and first["next"]
    second = (
        await client.get(f"/api/departments?limit=2&after={first['next']}", headers=admin)
    ).json()
    assert len(second["items"]) == 1 and second["next"] is None
    assert_problem(await client.get("/api/departments?limit=501", headers=admin), 400)


async def test_a_suspended_department_may_not_act(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    await client.post(f"/api/departments/{world.dept_a}/suspend", headers=world.headers["admin"])
    response = await client.post(
        f"/api/departments/{world.dept_a}/members",
        json={"username": "late-joiner", "display_name": "Late"},
        headers=world.headers["coord-a"],
    )
    assert_problem(response, 403)


async def test_an_unknown_department_is_404(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    response = await client.get("/api/departments/nope", headers=world.headers["admin"])
    assert_problem(response, 404)
    response = await client.post("/api/departments/nope/approve", headers=world.headers["admin"])
    assert_problem(response, 404)

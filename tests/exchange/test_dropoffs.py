"""Drop-offs: every refusal names its rule, retries never credit twice, stewards decide."""

from datetime import timedelta

import pytest

from catalog.models import utcnow
from tests.conftest import World
from tests.exchange.helpers import Client, add_station, drop, me, open_campaign


@pytest.fixture
async def station(client: Client, world: World) -> dict:
    await open_campaign(client, world.headers["admin"], policy="auto", cap=1000)
    return await add_station(client, world.headers["coord-a"], world.dept_a)


async def test_a_drop_off_without_an_idempotency_key_is_refused(
    client: Client, world: World, station: dict
) -> None:
    response = await client.post(
        "/api/dropoffs",
        json={"station_code": station["code"], "category": "phone", "quantity": 1},
        headers=world.headers["emp-a"],
    )
    assert response.status_code == 400
    assert response.json()["title"] == "Idempotency-Key header required"
    assert await me(client, world.headers["emp-a"]) == {
        "available": 0,
        "pending_credit": 0,
        "held": 0,
    }


async def test_a_retried_drop_off_returns_the_original_and_credits_once(
    client: Client, world: World, station: dict
) -> None:
    emp = world.headers["emp-a"]
    first = await drop(client, emp, station["code"], "phone", 2, key="retry-1")
    second = await drop(client, emp, station["code"], "phone", 2, key="retry-1")
    assert first.status_code == second.status_code == 201
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert (await me(client, emp))["available"] == 200


async def test_a_key_reused_with_a_different_body_is_a_conflict_naming_the_key(
    client: Client, world: World, station: dict
) -> None:
    emp = world.headers["emp-a"]
    await drop(client, emp, station["code"], "phone", 2, key="reused")
    response = await drop(client, emp, station["code"], "phone", 3, key="reused")
    assert response.status_code == 409
    assert response.json()["title"] == "Idempotency key reused with a different request"
    assert response.json()["idempotency_key"] == "reused"
    assert "reused" in response.json()["detail"]
    assert (await me(client, emp))["available"] == 200


async def test_the_same_key_of_another_employee_is_a_different_request(
    client: Client, world: World, station: dict
) -> None:
    one = await drop(client, world.headers["emp-a"], station["code"], "phone", 1, key="k")
    two = await drop(client, world.headers["emp-a2"], station["code"], "phone", 1, key="k")
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]


async def test_without_an_open_campaign_a_drop_off_is_refused(client: Client, world: World) -> None:
    admin = world.headers["admin"]
    now = utcnow()
    closed = await client.post(
        "/api/campaigns",
        json={
            "name": "去年的宣传周",
            "starts_at": (now - timedelta(days=10)).isoformat(),
            "ends_at": (now - timedelta(days=3)).isoformat(),
            "policy": "auto",
            "daily_cap_points": 100,
        },
        headers=admin,
    )
    assert closed.status_code == 201 and closed.json()["status"] == "closed"
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    response = await drop(client, world.headers["emp-a"], station["code"], "phone", 1)
    assert response.status_code == 409
    assert response.json()["title"] == "No open campaign"


async def test_an_inactive_station_refuses_drop_offs(
    client: Client, world: World, station: dict
) -> None:
    off = await client.patch(
        f"/api/departments/{world.dept_a}/stations/{station['id']}",
        json={"active": False},
        headers=world.headers["coord-a"],
    )
    assert off.status_code == 200 and off.json()["active"] is False
    response = await drop(client, world.headers["emp-a"], station["code"], "phone", 1)
    assert response.status_code == 409
    assert response.json()["title"] == "Collection point inactive"


async def test_another_departments_station_refuses_drop_offs(
    client: Client, world: World, station: dict
) -> None:
    response = await drop(client, world.headers["emp-b"], station["code"], "phone", 1)
    assert response.status_code == 403
    assert response.json()["title"] == "Collection point of another department"
    assert (await me(client, world.headers["emp-b"]))["available"] == 0


async def test_an_unknown_station_code_is_not_found(
    client: Client, world: World, station: dict
) -> None:
    response = await drop(client, world.headers["emp-a"], "nosuchcode", "phone", 1)
    assert response.status_code == 404


async def test_an_unknown_category_is_refused_with_the_known_ones(
    client: Client, world: World, station: dict
) -> None:
    response = await drop(client, world.headers["emp-a"], station["code"], "fridge", 1)
    assert response.status_code == 422
    assert response.json()["title"] == "Unknown category"
    assert response.json()["category"] == "fridge"
    assert "paper" in response.json()["detail"]


async def test_a_category_missing_from_the_rate_card_is_refused(
    client: Client, world: World, station: dict
) -> None:
    # The default card gives nothing for other small devices.
    response = await drop(client, world.headers["emp-a"], station["code"], "other_small_device", 1)
    assert response.status_code == 422
    assert response.json()["title"] == "Category not on the rate card"


QUANTITY_CASES = [
    ("paper", 99, 100, 50_000, "g"),
    ("paper", 50_001, 100, 50_000, "g"),
    ("ink_cartridge", 51, 1, 50, "item"),
    ("toner_cartridge", 0, 1, 50, "item"),
    ("phone", 11, 1, 10, "item"),
    ("keyboard_mouse", -3, 1, 10, "item"),
]


async def test_a_quantity_out_of_the_categorys_bounds_is_refused_with_the_bounds(
    client: Client, world: World, station: dict
) -> None:
    for category, quantity, minimum, maximum, unit in QUANTITY_CASES:
        response = await drop(client, world.headers["emp-a"], station["code"], category, quantity)
        assert response.status_code == 422, (category, quantity)
        problem = response.json()
        assert problem["title"] == "Quantity out of bounds"
        assert (problem["minimum"], problem["maximum"], problem["unit"]) == (minimum, maximum, unit)
    assert (await me(client, world.headers["emp-a"]))["available"] == 0


async def test_a_quantity_in_the_wrong_unit_is_refused(
    client: Client, world: World, station: dict
) -> None:
    response = await drop(
        client, world.headers["emp-a"], station["code"], "paper", 2000, unit="item"
    )
    assert response.status_code == 422
    assert response.json()["title"] == "Wrong unit for the category"
    assert response.json()["unit"] == "g"
    ok = await drop(client, world.headers["emp-a"], station["code"], "paper", 2000, unit="g")
    assert ok.status_code == 201


async def test_a_quantity_that_is_not_a_whole_number_is_refused(
    client: Client, world: World, station: dict
) -> None:
    response = await drop(client, world.headers["emp-a"], station["code"], "paper", 1.5)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "quantity"


async def test_paper_points_are_rounded_down_to_whole_points(
    client: Client, world: World, station: dict
) -> None:
    # 1,234 g at 40 points per kg is 49.36 points: 49.
    response = await drop(client, world.headers["emp-a"], station["code"], "paper", 1234)
    assert response.json()["points"] == 49


async def test_the_daily_cap_refuses_a_drop_off_beyond_it_and_says_what_is_left(
    client: Client, world: World
) -> None:
    await open_campaign(client, world.headers["admin"], policy="auto", cap=250)
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    emp = world.headers["emp-a"]
    assert (await drop(client, emp, station["code"], "phone", 2)).status_code == 201
    response = await drop(client, emp, station["code"], "phone", 1)
    assert response.status_code == 409
    assert response.json()["title"] == "Daily points cap reached"
    assert (response.json()["daily_cap"], response.json()["remaining"]) == (250, 50)
    assert (await drop(client, emp, station["code"], "ink_cartridge", 2)).status_code == 201
    assert (await me(client, emp))["available"] == 240


async def test_platform_staff_cannot_log_drop_offs(
    client: Client, world: World, station: dict
) -> None:
    response = await drop(client, world.headers["admin"], station["code"], "phone", 1)
    assert response.status_code == 403


async def test_employees_see_their_own_drop_offs_and_coordinators_the_departments(
    client: Client, world: World, station: dict
) -> None:
    await drop(client, world.headers["emp-a"], station["code"], "phone", 1)
    await drop(client, world.headers["emp-a2"], station["code"], "phone", 1)
    own = await client.get("/api/dropoffs", headers=world.headers["emp-a"])
    assert len(own.json()["items"]) == 1
    everyone = await client.get("/api/dropoffs?all=true", headers=world.headers["coord-a"])
    assert len(everyone.json()["items"]) == 2
    paged = await client.get("/api/dropoffs?all=true&limit=1", headers=world.headers["coord-a"])
    rest = await client.get(
        f"/api/dropoffs?all=true&limit=1&after={paged.json()['next']}",
        headers=world.headers["coord-a"],
    )
    assert rest.json()["items"][0]["id"] != paged.json()["items"][0]["id"]
    assert rest.json()["next"] is None
    other = await client.get(
        f"/api/dropoffs/{own.json()['items'][0]['id']}", headers=world.headers["emp-a2"]
    )
    assert other.status_code == 404


# --- steward policy ------------------------------------------------------------------------


@pytest.fixture
async def steward_station(client: Client, world: World) -> dict:
    await open_campaign(client, world.headers["admin"], policy="steward", cap=1000)
    return await add_station(client, world.headers["coord-a"], world.dept_a)


async def test_under_the_steward_policy_points_are_pending_and_not_spendable(
    client: Client, world: World, steward_station: dict
) -> None:
    response = await drop(client, world.headers["emp-a"], steward_station["code"], "phone", 1)
    assert response.json()["status"] == "pending" and response.json()["spendable"] is False
    assert await me(client, world.headers["emp-a"]) == {
        "available": 0,
        "pending_credit": 100,
        "held": 0,
    }


async def test_a_steward_confirming_a_lighter_weight_posts_part_of_the_credit(
    client: Client, world: World, steward_station: dict
) -> None:
    emp = world.headers["emp-a"]
    logged = await drop(client, emp, steward_station["code"], "paper", 5000)
    assert logged.json()["points"] == 200
    confirmed = await client.post(
        f"/api/dropoffs/{logged.json()['id']}/confirm",
        json={"quantity": 3000},
        headers=world.headers["coord-a"],
    )
    assert confirmed.status_code == 200
    assert confirmed.json()["points"] == 120 and confirmed.json()["confirmed_quantity"] == 3000
    assert await me(client, emp) == {"available": 120, "pending_credit": 0, "held": 0}


async def test_a_steward_confirming_without_a_quantity_posts_the_declared_points(
    client: Client, world: World, steward_station: dict
) -> None:
    logged = await drop(client, world.headers["emp-a"], steward_station["code"], "phone", 1)
    confirmed = await client.post(
        f"/api/dropoffs/{logged.json()['id']}/confirm", headers=world.headers["coord-a"]
    )
    assert confirmed.status_code == 200 and confirmed.json()["points"] == 100
    assert (await me(client, world.headers["emp-a"]))["available"] == 100


async def test_a_heavier_weighing_is_credited_only_up_to_the_daily_cap(
    client: Client, world: World
) -> None:
    await open_campaign(client, world.headers["admin"], policy="steward", cap=100)
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    logged = await drop(client, world.headers["emp-a"], station["code"], "paper", 2000)
    assert logged.json()["points"] == 80
    confirmed = await client.post(
        f"/api/dropoffs/{logged.json()['id']}/confirm",
        json={"quantity": 5000},
        headers=world.headers["coord-a"],
    )
    assert confirmed.json()["points"] == 100
    assert (await me(client, world.headers["emp-a"]))["available"] == 100


async def test_a_rejection_needs_a_reason_and_voids_the_pending_credit(
    client: Client, world: World, steward_station: dict
) -> None:
    coordinator = world.headers["coord-a"]
    logged = await drop(client, world.headers["emp-a"], steward_station["code"], "phone", 1)
    url = f"/api/dropoffs/{logged.json()['id']}/reject"
    blank = await client.post(url, json={"reason": "   "}, headers=coordinator)
    assert blank.status_code == 422
    missing = await client.post(url, json={}, headers=coordinator)
    assert missing.status_code == 400
    rejected = await client.post(url, json={"reason": "没有看到实物"}, headers=coordinator)
    assert rejected.status_code == 200
    assert rejected.json()["reject_reason"] == "没有看到实物"
    assert await me(client, world.headers["emp-a"]) == {
        "available": 0,
        "pending_credit": 0,
        "held": 0,
    }


async def test_a_decided_drop_off_cannot_be_decided_again(
    client: Client, world: World, steward_station: dict
) -> None:
    coordinator = world.headers["coord-a"]
    logged = await drop(client, world.headers["emp-a"], steward_station["code"], "phone", 1)
    url = f"/api/dropoffs/{logged.json()['id']}"
    assert (await client.post(f"{url}/confirm", headers=coordinator)).status_code == 200
    again = await client.post(f"{url}/reject", json={"reason": "弄错了"}, headers=coordinator)
    assert again.status_code == 409
    assert again.json()["title"] == "Not possible in the current status"
    assert again.json()["current_status"] == "confirmed"


async def test_a_confirmed_quantity_out_of_bounds_is_refused(
    client: Client, world: World, steward_station: dict
) -> None:
    logged = await drop(client, world.headers["emp-a"], steward_station["code"], "phone", 1)
    response = await client.post(
        f"/api/dropoffs/{logged.json()['id']}/confirm",
        json={"quantity": 0},
        headers=world.headers["coord-a"],
    )
    assert response.status_code == 422
    assert response.json()["title"] == "Quantity out of bounds"


async def test_only_a_coordinator_of_the_department_decides_drop_offs(
    client: Client, world: World, steward_station: dict
) -> None:
    logged = await drop(client, world.headers["emp-a"], steward_station["code"], "phone", 1)
    url = f"/api/dropoffs/{logged.json()['id']}/confirm"
    assert (await client.post(url, headers=world.headers["emp-a"])).status_code == 403
    assert (await client.post(url, headers=world.headers["coord-b"])).status_code == 404


async def test_a_suspended_department_can_neither_earn_nor_spend(
    client: Client, world: World, station: dict
) -> None:
    suspended = await client.post(
        f"/api/departments/{world.dept_a}/suspend", headers=world.headers["admin"]
    )
    assert suspended.status_code == 200
    response = await drop(client, world.headers["emp-a"], station["code"], "phone", 1)
    assert response.status_code == 403
    assert response.json()["title"] == "Department not approved"
    ordered = await client.post(
        "/api/orders",
        json={"product_id": "anything", "quantity": 1},
        headers={**world.headers["emp-a"], "Idempotency-Key": "k"},
    )
    assert ordered.status_code == 403

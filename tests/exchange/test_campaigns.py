"""Campaigns and rate cards: set by the platform admin, read by everyone signed in."""

from datetime import timedelta

from catalog.models import utcnow
from tests.conftest import World
from tests.exchange.helpers import Client, add_station, drop, open_campaign


def window(start_days: float, end_days: float) -> dict[str, str]:
    now = utcnow()
    return {
        "starts_at": (now + timedelta(days=start_days)).isoformat(),
        "ends_at": (now + timedelta(days=end_days)).isoformat(),
    }


async def test_an_admin_opens_a_campaign_everyone_signed_in_can_read(
    client: Client, world: World
) -> None:
    campaign = await open_campaign(client, world.headers["admin"], policy="steward", cap=300)
    assert campaign["status"] == "open" and campaign["policy"] == "steward"
    listed = await client.get("/api/campaigns", headers=world.headers["emp-b"])
    assert [c["id"] for c in listed.json()["items"]] == [campaign["id"]]
    rates = await client.get(
        f"/api/campaigns/{campaign['id']}/rates", headers=world.headers["emp-a"]
    )
    card = {r["category"]: r for r in rates.json()["rates"]}
    assert card["paper"] == {"category": "paper", "unit": "g", "rate_unit": "kg", "points": 40}
    assert card["phone"]["rate_unit"] == "item"
    assert "floor" in rates.json()["rounding"]


async def test_only_the_admin_sets_campaigns_and_rates(client: Client, world: World) -> None:
    body = {"name": "周", "policy": "auto", "daily_cap_points": 10, **window(0, 1)}
    for who in ("coord-a", "emp-a", "auditor"):
        assert (
            await client.post("/api/campaigns", json=body, headers=world.headers[who])
        ).status_code == 403
    campaign = await open_campaign(client, world.headers["admin"])
    response = await client.put(
        f"/api/campaigns/{campaign['id']}/rates",
        json={"rates": [{"category": "paper", "points": 1000}]},
        headers=world.headers["coord-a"],
    )
    assert response.status_code == 403


async def test_a_campaign_window_must_end_after_it_starts(client: Client, world: World) -> None:
    body = {"name": "周", "policy": "auto", "daily_cap_points": 10, **window(1, 0)}
    response = await client.post("/api/campaigns", json=body, headers=world.headers["admin"])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "ends_at"


async def test_a_campaign_needs_a_known_policy_and_a_positive_cap(
    client: Client, world: World
) -> None:
    admin = world.headers["admin"]
    bad_policy = {"name": "周", "policy": "sometimes", "daily_cap_points": 10, **window(0, 1)}
    assert (await client.post("/api/campaigns", json=bad_policy, headers=admin)).status_code == 400
    no_cap = {"name": "周", "policy": "auto", "daily_cap_points": 0, **window(0, 1)}
    response = await client.post("/api/campaigns", json=no_cap, headers=admin)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "daily_cap_points"


async def test_a_time_without_a_timezone_is_refused(client: Client, world: World) -> None:
    body = {
        "name": "周",
        "policy": "auto",
        "daily_cap_points": 10,
        "starts_at": "2026-06-14T00:00:00",
        "ends_at": "2026-06-21T00:00:00",
    }
    response = await client.post("/api/campaigns", json=body, headers=world.headers["admin"])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "starts_at"


async def test_overlapping_windows_of_the_same_scope_are_refused(
    client: Client, world: World
) -> None:
    admin = world.headers["admin"]
    await open_campaign(client, admin)
    body = {"name": "又一周", "policy": "auto", "daily_cap_points": 10, **window(1, 2)}
    response = await client.post("/api/campaigns", json=body, headers=admin)
    assert response.status_code == 409 and response.json()["title"] == "Campaign windows overlap"
    own = await client.post(
        "/api/campaigns", json={**body, "department_id": world.dept_a}, headers=admin
    )
    assert own.status_code == 201
    later = await client.post("/api/campaigns", json={**body, **window(8, 9)}, headers=admin)
    assert later.status_code == 201 and later.json()["status"] == "upcoming"


async def test_a_departments_own_campaign_is_invisible_to_other_departments(
    client: Client, world: World
) -> None:
    own = await open_campaign(client, world.headers["admin"], department_id=world.dept_a)
    seen_b = await client.get("/api/campaigns", headers=world.headers["emp-b"])
    assert seen_b.json()["items"] == []
    response = await client.get(f"/api/campaigns/{own['id']}", headers=world.headers["emp-b"])
    assert response.status_code == 404
    seen_a = await client.get(f"/api/campaigns/{own['id']}", headers=world.headers["emp-a"])
    assert seen_a.status_code == 200


async def test_a_rate_card_with_an_unknown_category_or_bad_points_is_refused(
    client: Client, world: World
) -> None:
    admin = world.headers["admin"]
    campaign = await open_campaign(client, admin)
    url = f"/api/campaigns/{campaign['id']}/rates"
    unknown = await client.put(
        url, json={"rates": [{"category": "fridge", "points": 5}]}, headers=admin
    )
    assert unknown.status_code == 422 and unknown.json()["title"] == "Unknown category"
    zero = await client.put(
        url, json={"rates": [{"category": "paper", "points": 0}]}, headers=admin
    )
    assert zero.status_code == 400
    twice = await client.put(
        url,
        json={"rates": [{"category": "paper", "points": 5}, {"category": "paper", "points": 6}]},
        headers=admin,
    )
    assert twice.status_code == 422
    kept = await client.get(url, headers=admin)
    assert {r["category"] for r in kept.json()["rates"]} >= {"paper", "phone"}


async def test_a_rate_change_never_reprices_an_earlier_drop_off(
    client: Client, world: World
) -> None:
    admin = world.headers["admin"]
    campaign = await open_campaign(client, admin, policy="steward")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    logged = await drop(client, world.headers["emp-a"], station["code"], "phone", 1)
    await client.put(
        f"/api/campaigns/{campaign['id']}/rates",
        json={"rates": [{"category": "phone", "points": 500}]},
        headers=admin,
    )
    confirmed = await client.post(
        f"/api/dropoffs/{logged.json()['id']}/confirm", headers=world.headers["coord-a"]
    )
    assert confirmed.json()["points"] == 100 and confirmed.json()["rate_points"] == 100


async def test_the_categories_list_units_and_bounds(client: Client, world: World) -> None:
    response = await client.get("/api/categories", headers=world.headers["emp-a"])
    by_code = {c["code"]: c for c in response.json()}
    assert by_code["paper"]["unit"] == "g" and by_code["paper"]["minimum"] == 100
    assert by_code["paper"]["maximum"] == 50_000
    assert by_code["ink_cartridge"]["maximum"] == 50 and by_code["phone"]["maximum"] == 10
    assert set(by_code) == {
        "paper",
        "ink_cartridge",
        "toner_cartridge",
        "phone",
        "charger_cable",
        "keyboard_mouse",
        "other_small_device",
    }


async def test_the_openapi_document_states_the_rounding_rule(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    put = schema["paths"]["/api/campaigns/{campaign_id}/rates"]["put"]
    assert "floor(grams × points_per_kg / 1000)" in put["description"]
    header = next(
        p for p in schema["paths"]["/api/dropoffs"]["post"]["parameters"] if p["in"] == "header"
    )
    assert header["name"] == "Idempotency-Key"


async def test_the_admin_ends_a_campaign_early_and_drop_offs_stop(
    client: Client, world: World
) -> None:
    admin = world.headers["admin"]
    campaign = await open_campaign(client, admin, policy="auto", cap=100)
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    url = f"/api/campaigns/{campaign['id']}"
    raised = await client.patch(
        url, json={"daily_cap_points": 300, "policy": "steward"}, headers=admin
    )
    assert raised.status_code == 200
    assert (raised.json()["daily_cap_points"], raised.json()["policy"]) == (300, "steward")
    assert raised.json()["starts_at"] == campaign["starts_at"]
    logged = await drop(client, world.headers["emp-a"], station["code"], "phone", 2)
    assert logged.json()["points"] == 200 and logged.json()["status"] == "pending"

    ended = await client.patch(url, json={"ends_at": utcnow().isoformat()}, headers=admin)
    assert ended.status_code == 200 and ended.json()["status"] == "closed"
    refused = await drop(client, world.headers["emp-a"], station["code"], "phone", 1)
    assert refused.status_code == 409 and refused.json()["title"] == "No open campaign"
    # What was logged before stays, and can still be decided.
    confirmed = await client.post(
        f"/api/dropoffs/{logged.json()['id']}/confirm", headers=world.headers["coord-a"]
    )
    assert confirmed.status_code == 200 and confirmed.json()["points"] == 200


async def test_a_campaign_change_is_checked_like_a_new_campaign(
    client: Client, world: World
) -> None:
    admin = world.headers["admin"]
    first = await open_campaign(client, admin)
    later = await client.post(
        "/api/campaigns",
        json={"name": "下一周", "policy": "auto", "daily_cap_points": 10, **window(10, 17)},
        headers=admin,
    )
    url = f"/api/campaigns/{first['id']}"
    overlap = await client.patch(url, json={"ends_at": window(0, 12)["ends_at"]}, headers=admin)
    assert overlap.status_code == 409 and later.json()["name"] in overlap.json()["detail"]
    backwards = await client.patch(url, json={"ends_at": window(-2, -2)["ends_at"]}, headers=admin)
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "ends_at"
    forbidden = await client.patch(url, json={"name": "x"}, headers=world.headers["coord-a"])
    assert forbidden.status_code == 403
    missing = await client.patch("/api/campaigns/nope", json={"name": "x"}, headers=admin)
    assert missing.status_code == 404


async def test_the_openapi_document_lists_the_refusals_of_the_exchanges_writes(
    client: Client,
) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    pickup = paths["/api/pickups"]["post"]["responses"]
    assert set(pickup) >= {"200", "400", "403", "409", "410"}
    assert "application/problem+json" in pickup["410"]["content"]
    assert "Not enough stock" in paths["/api/orders"]["post"]["responses"]["409"]["description"]
    assert "Daily points cap" in paths["/api/dropoffs"]["post"]["responses"]["409"]["description"]

"""The offline pickup desk's API: the bundle a desk keeps, its queue of hand-overs applied
exactly once, and the incidents a late hand-over becomes — on both databases."""

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from catalog.models import utcnow
from exchange.models import Order
from ledger.signing import KeyRing
from tests.conftest import PASSWORD, World
from tests.exchange.helpers import (
    Client,
    add_product,
    add_station,
    credit,
    me,
    open_campaign,
    order,
)


def desk_path(department_id: str, rest: str) -> str:
    return f"/api/departments/{department_id}/{rest}"


@pytest.fixture
async def shop(client: Client, world: World) -> dict[str, Any]:
    """Department A with rice at 100 points (stock 10); emp-a and emp-a2 hold 600 points each."""
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    for who in ("emp-a", "emp-a2"):
        await credit(client, world, who, 600, station["code"])
    rice = await add_product(client, world.headers["coord-a"], world.dept_a, price=100, stock=10)
    return {"rice": rice, "station": station}


async def place(client: Client, world: World, shop: dict[str, Any], who: str = "emp-a") -> dict:
    response = await order(client, world.headers[who], shop["rice"]["id"])
    assert response.status_code == 201, response.text
    return response.json()


def item(token: str, *, key: str | None = None, at: datetime | None = None, **extra: Any) -> dict:
    return {
        "idempotency_key": key or str(uuid.uuid4()),
        "token": token,
        "scanned_at": (at or utcnow() - timedelta(minutes=1)).isoformat(),
        **extra,
    }


async def send(
    client: Client,
    world: World,
    items: list[dict],
    *,
    desk: str = "desk-1",
    name: str = "食堂东",
    who: str = "coord-a",
    department: str | None = None,
) -> Any:
    response = await client.post(
        desk_path(department or world.dept_a, "pickups:batch"),
        json={"desk_id": desk, "desk_name": name, "items": items},
        headers=world.headers[who],
    )
    return response


async def outcomes(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [result["outcome"] for result in response.json()["items"]]


async def entries(client: Client, world: World, order_id: str) -> list[str]:
    """The kinds of the ledger entries referring to the order, in order."""
    response = await client.get(
        f"/api/departments/{world.dept_a}/ledger/entries",
        params={"reference": f"order:{order_id}"},
        headers=world.headers["audit-a"],
    )
    assert response.status_code == 200, response.text
    return [entry["kind"] for entry in response.json()["items"]]


async def test_a_queue_is_applied_once_and_a_retry_with_the_same_keys_writes_nothing(
    client: Client, world: World, shop: dict
) -> None:
    orders = [await place(client, world, shop, who) for who in ("emp-a", "emp-a", "emp-a2")]
    items = [item(o["pickup_url"]) for o in orders]  # what a camera reads: the whole URL
    first = await send(client, world, items)
    assert await outcomes(first) == ["fulfilled"] * 3
    assert [r["order_id"] for r in first.json()["items"]] == [o["id"] for o in orders]
    assert not any(r["replayed"] for r in first.json()["items"])

    again = await send(client, world, items)
    assert await outcomes(again) == ["fulfilled"] * 3
    assert all(r["replayed"] for r in again.json()["items"])
    for placed in orders:
        assert await entries(client, world, placed["id"]) == ["pending", "post"]
    assert await me(client, world.headers["emp-a"]) == {
        "available": 400,
        "pending_credit": 0,
        "held": 0,
    }
    fulfilled = await client.get(f"/api/orders/{orders[0]['id']}", headers=world.headers["emp-a"])
    coordinator = (await client.get("/api/me", headers=world.headers["coord-a"])).json()["id"]
    assert fulfilled.json()["status"] == "fulfilled"
    assert fulfilled.json()["resolved_by"] == coordinator


async def test_forged_altered_and_foreign_tokens_are_refused_each_without_affecting_the_others(
    client: Client, world: World, shop: dict
) -> None:
    good = [await place(client, world, shop) for _ in range(2)]
    claims = jwt.decode(good[0]["pickup_token"], options={"verify_signature": False})
    stranger = KeyRing.ephemeral().active
    forged = jwt.encode(
        claims, stranger.private_key, algorithm="EdDSA", headers={"kid": stranger.kid}
    )
    head, _, signature = good[1]["pickup_token"].split(".")
    altered = f"{head}.{forged.split('.')[1]}.{signature}"
    # Department B's own order, scanned at A's desk.
    await open_campaign(client, world.headers["admin"], policy="auto", department_id=world.dept_b)
    station_b = await add_station(client, world.headers["coord-b"], world.dept_b)
    await credit(client, world, "emp-b", 200, station_b["code"])
    tea = await add_product(client, world.headers["coord-b"], world.dept_b, name="高山茶")
    foreign = (await order(client, world.headers["emp-b"], tea["id"])).json()

    items = [
        item(good[0]["pickup_token"]),
        item(forged),
        item(altered),
        item(foreign["pickup_token"]),
        item("not a pickup code"),
        item(good[1]["pickup_token"]),
    ]
    response = await send(client, world, items)
    assert await outcomes(response) == [
        "fulfilled",
        "refused",
        "refused",
        "refused",
        "refused",
        "fulfilled",
    ]
    problems = [r["problem"] for r in response.json()["items"]]
    assert problems[0] is None and problems[5] is None
    assert [(p["status"], p["title"]) for p in problems[1:5]] == [
        (400, "Pickup token signature invalid"),
        (400, "Pickup token signature invalid"),
        (403, "Pickup token of another department"),
        (400, "Pickup token malformed"),
    ]
    assert (await me(client, world.headers["emp-b"]))["held"] == 100  # B's order untouched
    # A refusal keeps nothing: sent again, it is judged again, and still refused.
    retry = await send(client, world, items[1:5])
    assert await outcomes(retry) == ["refused"] * 4
    assert not any(r["replayed"] for r in retry.json()["items"])


async def test_the_same_order_handed_over_at_two_desks_posts_once_and_becomes_an_incident(
    client: Client, world: World, shop: dict
) -> None:
    placed = await place(client, world, shop)
    canteen_at = utcnow() - timedelta(minutes=2)
    hall_at = utcnow() - timedelta(minutes=1)
    # The hall's desk comes back online last, though the canteen scanned first.
    canteen = await send(
        client, world, [item(placed["pickup_token"], at=canteen_at)], desk="d-canteen", name="食堂"
    )
    hall = await send(
        client, world, [item(placed["pickup_token"], at=hall_at)], desk="d-hall", name="大厅"
    )
    assert await outcomes(canteen) == ["fulfilled"]
    assert await outcomes(hall) == ["incident"]
    assert await entries(client, world, placed["id"]) == ["pending", "post"]

    listed = await client.get(
        desk_path(world.dept_a, "incidents"), headers=world.headers["coord-a"]
    )
    assert listed.status_code == 200, listed.text
    [incident] = listed.json()["items"]
    assert incident["id"] == hall.json()["items"][0]["incident_id"]
    assert incident["kind"] == "second_handover" and incident["status"] == "open"
    assert incident["order_id"] == placed["id"] and incident["employee_name"] == "EMP-A"
    assert (incident["first_desk_id"], incident["first_desk_name"]) == ("d-canteen", "食堂")
    assert datetime.fromisoformat(incident["first_at"]) == canteen_at
    assert incident["first_by_name"] == "COORD-A"
    assert (incident["desk_id"], incident["desk_name"]) == ("d-hall", "大厅")
    assert datetime.fromisoformat(incident["scanned_at"]) == hall_at
    assert incident["scanned_by_name"] == "COORD-A"
    # The hall's desk retrying its queue gets the same incident, not a second one.
    retry = await send(
        client,
        world,
        [item(placed["pickup_token"], key=hall.json()["items"][0]["idempotency_key"], at=hall_at)],
        desk="d-hall",
    )
    assert retry.json()["items"][0]["incident_id"] == incident["id"]
    listed = await client.get(
        desk_path(world.dept_a, "incidents"), headers=world.headers["coord-a"]
    )
    assert len(listed.json()["items"]) == 1


async def test_an_order_cancelled_before_an_offline_hand_over_becomes_an_incident(
    client: Client, world: World, shop: dict
) -> None:
    placed = await place(client, world, shop)
    cancelled = await client.post(
        f"/api/orders/{placed['id']}/cancel", headers=world.headers["emp-a"]
    )
    assert cancelled.status_code == 200
    response = await send(client, world, [item(placed["pickup_token"], at=utcnow())])
    assert await outcomes(response) == ["incident"]
    assert await entries(client, world, placed["id"]) == ["pending", "void"]
    incident_id = response.json()["items"][0]["incident_id"]
    got = await client.get(
        desk_path(world.dept_a, f"incidents/{incident_id}"), headers=world.headers["coord-a"]
    )
    assert got.json()["kind"] == "after_cancellation"
    assert got.json()["first_by_name"] == "EMP-A" and got.json()["first_desk_id"] is None
    assert got.json()["first_at"] == cancelled.json()["resolved_at"]


async def test_an_order_that_expired_before_the_queue_arrived_still_posts_if_scanned_in_time(
    client: Client, world: World, shop: dict, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    placed = await place(client, world, shop)
    expired_at = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    async with db.transaction(session_factory) as session:
        await session.exec(  # type: ignore[call-overload]
            update(Order).where(Order.id == placed["id"]).values(expires_at=expired_at)
        )
    mine = await client.get(f"/api/orders/{placed['id']}", headers=world.headers["emp-a"])
    token = mine.json()["pickup_token"]  # signed with the new expiry
    late = await send(client, world, [item(token, at=expired_at + timedelta(seconds=10))])
    assert late.json()["items"][0]["problem"]["title"] == "Pickup token expired"
    in_time = await send(client, world, [item(token, at=expired_at - timedelta(seconds=10))])
    assert await outcomes(in_time) == ["fulfilled"]
    assert await entries(client, world, placed["id"]) == ["pending", "post"]


async def page_sign_in(client: Client, username: str) -> str:
    """Signs in through the sign-in page, as the desk's browser does; answers the form token."""
    page = await client.get("/login")
    found = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    form = {"username": username, "password": PASSWORD, "_csrf_token": found.group(1)}
    answer = await client.post("/login", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return found.group(1)


async def test_an_online_scan_whose_answer_was_lost_is_answered_again_from_the_queue(
    client: Client, world: World, shop: dict
) -> None:
    placed = await place(client, world, shop)
    csrf = await page_sign_in(client, "coord-a")
    key = str(uuid.uuid4())
    scan = {"token": placed["pickup_url"], "desk_id": "d-hall", "desk_name": "大厅"}
    asked = await client.post(
        "/coord/pickup", data={**scan, "idempotency_key": key, "_csrf_token": csrf}
    )
    assert asked.status_code == 200 and "请交付" in asked.text
    # The desk never got that answer: it judged the code itself, handed the order over and
    # queued it under the same key. The queue gets the server's first answer back.
    queued = await send(client, world, [item(placed["pickup_token"], key=key)], desk="d-hall")
    assert await outcomes(queued) == ["fulfilled"] and queued.json()["items"][0]["replayed"]
    assert await entries(client, world, placed["id"]) == ["pending", "post"]
    # Another desk asking online is refused, and nothing is kept of that refusal: had that
    # desk not heard it and handed over anyway, its queue makes the hand-over an incident.
    other = str(uuid.uuid4())
    refused = await client.post(
        "/coord/pickup",
        data={**scan, "desk_id": "d-canteen", "idempotency_key": other, "_csrf_token": csrf},
    )
    assert refused.status_code == 409 and "已于" in refused.text
    late = await send(client, world, [item(placed["pickup_token"], key=other)], desk="d-canteen")
    assert await outcomes(late) == ["incident"]
    incident = late.json()["items"][0]
    assert incident["incident_kind"] == "second_handover"
    assert await entries(client, world, placed["id"]) == ["pending", "post"]


async def test_a_key_sent_again_with_another_token_is_refused(
    client: Client, world: World, shop: dict
) -> None:
    first, second = await place(client, world, shop), await place(client, world, shop)
    key = str(uuid.uuid4())
    assert await outcomes(await send(client, world, [item(first["pickup_token"], key=key)])) == [
        "fulfilled"
    ]
    reused = await send(client, world, [item(second["pickup_token"], key=key)])
    assert reused.json()["items"][0]["problem"]["title"] == (
        "Idempotency key reused with a different request"
    )
    assert await entries(client, world, second["id"]) == ["pending"]


async def test_scan_times_and_coordinators_are_checked_per_item(
    client: Client, world: World, shop: dict
) -> None:
    placed = await place(client, world, shop)
    token = placed["pickup_token"]
    emp_a = (await client.get("/api/me", headers=world.headers["emp-a"])).json()["id"]
    response = await send(
        client,
        world,
        [
            item(token, at=utcnow() + timedelta(hours=1)),
            item(token, at=utcnow() - timedelta(days=30)),
            item(token, coordinator_id=emp_a),
        ],
    )
    assert await outcomes(response) == ["refused"] * 3
    fields = [r["problem"]["errors"][0]["field"] for r in response.json()["items"]]
    assert fields == ["scanned_at", "scanned_at", "coordinator_id"]
    # A coordinator may send the queue a colleague left on the desk, in the colleague's name.
    colleague = await client.post(
        desk_path(world.dept_a, "members"),
        json={"username": "coord-a2", "display_name": "COORD-A2", "roles": ["coordinator"]},
        headers=world.headers["coord-a"],
    )
    assert colleague.status_code == 201, colleague.text
    sent = await send(client, world, [item(token, coordinator_id=colleague.json()["id"])])
    assert await outcomes(sent) == ["fulfilled"]
    mine = await client.get(f"/api/orders/{placed['id']}", headers=world.headers["emp-a"])
    assert mine.json()["resolved_by"] == colleague.json()["id"]


async def test_malformed_batches_are_refused_whole_with_a_problem(
    client: Client, world: World, shop: dict
) -> None:
    placed = await place(client, world, shop)
    naive = item(placed["pickup_token"]) | {"scanned_at": "2026-06-01T08:00:00"}
    bad_bodies = [
        {"desk_id": "d", "items": []},
        {"desk_id": "", "items": [item(placed["pickup_token"])]},
        {"desk_id": "d", "items": [naive]},
        {"desk_id": "d", "items": [item(placed["pickup_token"])] * 101},
        {"desk_id": "d" * 65, "items": [item(placed["pickup_token"])]},
    ]
    for body in bad_bodies:
        response = await client.post(
            desk_path(world.dept_a, "pickups:batch"), json=body, headers=world.headers["coord-a"]
        )
        assert response.status_code == 400, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await entries(client, world, placed["id"]) == ["pending"]


async def test_the_bundle_holds_keys_open_orders_and_revocations_since_its_cursor(
    client: Client, world: World, shop: dict
) -> None:
    kept, cancelled, handed = [await place(client, world, shop) for _ in range(3)]
    response = await client.get(
        desk_path(world.dept_a, "desk-bundle"), headers=world.headers["coord-a"]
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "private, no-store"
    bundle = response.json()
    assert bundle["complete"] is True and bundle["department_id"] == world.dept_a
    by_id = {o["order_id"]: o for o in bundle["orders"]}
    assert set(by_id) == {kept["id"], cancelled["id"], handed["id"]}
    assert by_id[kept["id"]]["product_name"] == "石门大米"
    assert by_id[kept["id"]]["person"] == "EMP-A" and by_id[kept["id"]]["quantity"] == 1
    # The bundle alone checks a token: its keys verify the signature, its orders know the jti.
    token = kept["pickup_token"]
    key = jwt.PyJWKSet.from_dict(bundle["keys"])[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key.key, algorithms=["EdDSA"], audience="pickup")
    assert by_id[claims["sub"]]["jti"] == claims["jti"]
    assert bundle["revocations"] == []

    await client.post(f"/api/orders/{cancelled['id']}/cancel", headers=world.headers["emp-a"])
    await send(client, world, [item(handed["pickup_token"])])
    newer = await place(client, world, shop, "emp-a2")
    since = await client.get(
        desk_path(world.dept_a, "desk-bundle"),
        params={"since": bundle["cursor"]},
        headers=world.headers["coord-a"],
    )
    changes = since.json()
    assert changes["complete"] is False
    # The cursor repeats a few minutes, so the orders placed just before it come again.
    assert newer["id"] in {o["order_id"] for o in changes["orders"]}
    assert cancelled["id"] not in {o["order_id"] for o in changes["orders"]}
    revoked = {r["order_id"]: (r["status"], r["by"]) for r in changes["revocations"]}
    assert revoked == {
        cancelled["id"]: ("cancelled", "EMP-A"),
        handed["id"]: ("fulfilled", "COORD-A"),
    }

    for since in ("yesterday", "9" * 19, "-1"):
        bad = await client.get(
            desk_path(world.dept_a, "desk-bundle"),
            params={"since": since},
            headers=world.headers["coord-a"],
        )
        assert bad.status_code == 422, since
        assert bad.json()["errors"][0]["field"] == "since"


async def test_settling_an_incident_as_given_takes_the_item_from_the_stock_once(
    client: Client, world: World, shop: dict
) -> None:
    given, recovered = await place(client, world, shop), await place(client, world, shop)
    for placed in (given, recovered):
        await client.post(f"/api/orders/{placed['id']}/cancel", headers=world.headers["emp-a"])
    response = await send(
        client, world, [item(given["pickup_token"]), item(recovered["pickup_token"])]
    )
    assert await outcomes(response) == ["incident", "incident"]
    first, second = (r["incident_id"] for r in response.json()["items"])
    rice = shop["rice"]["id"]

    async def stock() -> int:
        products = await client.get(
            desk_path(world.dept_a, "products"), headers=world.headers["coord-a"]
        )
        return next(p["stock"] for p in products.json()["items"] if p["id"] == rice)

    assert await stock() == 10  # both cancellations returned their unit
    settle = desk_path(world.dept_a, f"incidents/{first}/resolve")
    done = await client.post(
        settle, json={"resolution": "given", "note": "已领走"}, headers=world.headers["coord-a"]
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "resolved" and done.json()["resolution"] == "given"
    assert done.json()["stock_taken"] == 1 and done.json()["resolved_by_name"] == "COORD-A"
    assert done.json()["note"] == "已领走"
    assert await stock() == 9
    again = await client.post(
        settle, json={"resolution": "recovered"}, headers=world.headers["coord-a"]
    )
    assert again.status_code == 409 and again.json()["current_status"] == "resolved"
    back = await client.post(
        desk_path(world.dept_a, f"incidents/{second}/resolve"),
        json={"resolution": "recovered"},
        headers=world.headers["coord-a"],
    )
    assert back.json()["stock_taken"] is None and await stock() == 9
    open_only = await client.get(
        desk_path(world.dept_a, "incidents"),
        params={"status": "open"},
        headers=world.headers["coord-a"],
    )
    assert open_only.json()["items"] == []
    for body in ({"resolution": "lost"}, {"resolution": "given", "note": "x" * 301}):
        refused = await client.post(settle, json=body, headers=world.headers["coord-a"])
        assert refused.status_code == 400, body
    odd = await client.get(
        desk_path(world.dept_a, "incidents"),
        params={"status": "x"},
        headers=world.headers["coord-a"],
    )
    assert odd.status_code == 422


async def test_another_departments_coordinator_sees_nothing_and_others_are_not_allowed(
    client: Client, world: World, shop: dict
) -> None:
    placed = await place(client, world, shop)
    await client.post(f"/api/orders/{placed['id']}/cancel", headers=world.headers["emp-a"])
    incident_id = (await send(client, world, [item(placed["pickup_token"])])).json()["items"][0][
        "incident_id"
    ]
    calls = [
        ("get", "desk-bundle", None),
        ("get", "incidents", None),
        ("get", f"incidents/{incident_id}", None),
        ("post", f"incidents/{incident_id}/resolve", {"resolution": "given"}),
        ("post", "pickups:batch", {"desk_id": "d", "items": [item(placed["pickup_token"])]}),
    ]
    for method, rest, body in calls:
        path = desk_path(world.dept_a, rest)
        options = {"json": body} if body is not None else {}
        stranger = await getattr(client, method)(path, headers=world.headers["coord-b"], **options)
        assert stranger.status_code == 404, (rest, stranger.text)
        for who in ("emp-a", "audit-a", "admin"):
            refused = await getattr(client, method)(path, headers=world.headers[who], **options)
            assert refused.status_code == 403, (rest, who)
    missing = await client.get(
        desk_path(world.dept_a, "incidents/nope"), headers=world.headers["coord-a"]
    )
    assert missing.status_code == 404

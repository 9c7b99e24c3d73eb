"""Drop-off and order listings page both ways: oldest or newest first, `next` onwards and
`prev` back, over the API."""

from tests.conftest import World
from tests.exchange.helpers import Client, add_station, drop, open_campaign


async def _ids(client: Client, world: World, query: str) -> tuple[list[str], dict]:
    response = await client.get(f"/api/dropoffs?{query}", headers=world.headers["emp-a"])
    assert response.status_code == 200, response.text
    body = response.json()
    return [d["id"] for d in body["items"]], body


async def test_drop_offs_list_newest_first_and_page_back_and_forth(
    client: Client, world: World
) -> None:
    await open_campaign(client, world.headers["admin"])
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    for _ in range(5):
        response = await drop(client, world.headers["emp-a"], station["code"], "phone", 1)
        assert response.status_code == 201, response.text
    oldest_first, _ = await _ids(client, world, "limit=10")
    assert len(oldest_first) == 5
    newest_first = oldest_first[::-1]

    first, page1 = await _ids(client, world, "order=desc&limit=2")
    assert first == newest_first[:2] and page1["prev"] is None
    second, page2 = await _ids(client, world, f"order=desc&limit=2&after={page1['next']}")
    assert second == newest_first[2:4]
    third, page3 = await _ids(client, world, f"order=desc&limit=2&after={page2['next']}")
    assert third == newest_first[4:] and page3["next"] is None
    # Back from the last page to the one before it, then to the first.
    back, back_page = await _ids(client, world, f"order=desc&limit=2&before={page3['prev']}")
    assert back == newest_first[2:4]
    again, again_page = await _ids(client, world, f"order=desc&limit=2&before={back_page['prev']}")
    assert again == newest_first[:2] and again_page["prev"] is None

    # The oldest-first contract is unchanged, and pages back the same way.
    start, start_page = await _ids(client, world, "limit=3")
    assert start == oldest_first[:3]
    rest, rest_page = await _ids(client, world, f"limit=3&after={start_page['next']}")
    assert rest == oldest_first[3:] and rest_page["next"] is None
    back, _ = await _ids(client, world, f"limit=3&before={rest_page['prev']}")
    assert back == oldest_first[:3]

    for query in ("order=sideways", f"after={oldest_first[0]}&before={oldest_first[1]}"):
        response = await client.get(f"/api/dropoffs?{query}", headers=world.headers["emp-a"])
        assert response.status_code in (400, 422), (query, response.text)


async def test_orders_list_newest_first(client: Client, world: World) -> None:
    response = await client.get("/api/orders?order=desc&limit=5", headers=world.headers["emp-a"])
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next": None, "prev": None}

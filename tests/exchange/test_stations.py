"""Collection points: unguessable codes, QR posters that decode to the exact URL, and a
printable page of all of a department's posters."""

import re

from tests.conftest import World
from tests.exchange.helpers import Client, add_station, decode_image, decode_png, render_svg


async def test_a_station_gets_a_short_unguessable_code_and_its_poster_url(
    client: Client, world: World
) -> None:
    one = await add_station(client, world.headers["coord-a"], world.dept_a, "一楼大厅")
    two = await add_station(client, world.headers["coord-a"], world.dept_a, "二楼")
    for station in (one, two):
        assert re.fullmatch(r"[a-z2-7]{10}", station["code"])
        assert station["url"] == f"http://exchange.test/s/{station['code']}"
        assert station["active"] is True
    assert one["code"] != two["code"]


async def test_the_poster_qr_png_and_svg_decode_to_the_exact_url(
    client: Client, world: World
) -> None:
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    url = f"http://exchange.test/s/{station['code']}"
    png = await client.get(
        f"/api/stations/{station['code']}/qr.png", headers=world.headers["coord-a"]
    )
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert decode_png(png.content) == [url]
    small = await client.get(
        f"/api/stations/{station['code']}/qr.png?box=3", headers=world.headers["coord-a"]
    )
    assert len(small.content) < len(png.content) and decode_png(small.content) == [url]
    svg = await client.get(
        f"/api/stations/{station['code']}/qr.svg", headers=world.headers["coord-a"]
    )
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert decode_image(render_svg(svg.text)) == [url]


async def test_the_poster_page_shows_every_active_station_with_qr_name_department_and_instruction(
    client: Client, world: World
) -> None:
    coordinator = world.headers["coord-a"]
    hall = await add_station(client, coordinator, world.dept_a, "一楼<大厅>")
    print_room = await add_station(client, coordinator, world.dept_a, "三楼打印室")
    retired = await add_station(client, coordinator, world.dept_a, "旧仓库")
    await client.patch(
        f"/api/departments/{world.dept_a}/stations/{retired['id']}",
        json={"active": False},
        headers=coordinator,
    )
    page = await client.get(
        f"/api/departments/{world.dept_a}/stations/posters", headers=coordinator
    )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<link rel="stylesheet" href="/static/css/posters.css">' in html  # A4, one a sheet
    assert "style" not in html.replace("stylesheet", "")  # nothing inline: the CSP allows none
    styles = await client.get("/static/css/posters.css")
    assert "@page { size: A4" in styles.text
    assert html.count("<svg") == 2
    assert "一楼&lt;大厅&gt;" in html and "<大厅>" not in html  # names are escaped
    assert "三楼打印室" in html and "旧仓库" not in html
    assert "部门a" in html  # the department's name
    assert "请用手机扫码" in html
    for station in (hall, print_room):
        assert f"http://exchange.test/s/{station['code']}" in html
    first_svg = html[html.index("<svg") : html.index("</svg>") + 6]
    assert decode_image(render_svg(first_svg)) == [f"http://exchange.test/s/{hall['code']}"]


async def test_a_member_opening_a_poster_link_sees_the_station(
    client: Client, world: World
) -> None:
    station = await add_station(client, world.headers["coord-a"], world.dept_a, "一楼大厅")
    seen = await client.get(f"/api/stations/{station['code']}", headers=world.headers["emp-a"])
    assert seen.status_code == 200 and seen.json()["name"] == "一楼大厅"
    upper = await client.get(
        f"/api/stations/{station['code'].upper()}", headers=world.headers["emp-a"]
    )
    assert upper.status_code == 200


async def test_another_departments_member_is_told_the_station_is_not_theirs(
    client: Client, world: World
) -> None:
    station = await add_station(client, world.headers["coord-a"], world.dept_a, "一楼大厅")
    response = await client.get(f"/api/stations/{station['code']}", headers=world.headers["emp-b"])
    assert response.status_code == 403
    assert response.json()["title"] == "Collection point of another department"
    assert "一楼大厅" not in response.text


async def test_station_management_is_for_the_departments_coordinators(
    client: Client, world: World
) -> None:
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    base = f"/api/departments/{world.dept_a}/stations"
    assert (await client.get(base, headers=world.headers["emp-a"])).status_code == 403
    assert (await client.get(base, headers=world.headers["coord-b"])).status_code == 404
    created = await client.post(base, json={"name": "x"}, headers=world.headers["coord-b"])
    assert created.status_code == 404
    qr = f"/api/stations/{station['code']}/qr.png"
    assert (await client.get(qr, headers=world.headers["emp-a"])).status_code == 403
    assert (await client.get(qr, headers=world.headers["coord-b"])).status_code == 404
    posters = f"{base}/posters"
    assert (await client.get(posters, headers=world.headers["coord-b"])).status_code == 404


async def test_a_pending_department_cannot_add_stations(client: Client, world: World) -> None:
    response = await client.post(
        f"/api/departments/{world.pending_dept}/stations",
        json={"name": "大厅"},
        headers=world.headers["coord-p"],
    )
    assert response.status_code == 403
    assert response.json()["title"] == "Department not approved"


async def test_a_station_needs_a_name(client: Client, world: World) -> None:
    base = f"/api/departments/{world.dept_a}/stations"
    empty = await client.post(base, json={"name": ""}, headers=world.headers["coord-a"])
    assert empty.status_code == 400 and empty.json()["errors"][0]["field"] == "name"
    blank = await client.post(base, json={"name": "   "}, headers=world.headers["coord-a"])
    assert blank.status_code == 422 and blank.json()["errors"][0]["field"] == "name"


async def test_stations_are_listed_page_by_page(client: Client, world: World) -> None:
    coordinator = world.headers["coord-a"]
    created = [await add_station(client, coordinator, world.dept_a, f"点{n}") for n in range(3)]
    base = f"/api/departments/{world.dept_a}/stations"
    first = (await client.get(f"{base}?limit=2", headers=coordinator)).json()
    rest = (await client.get(f"{base}?limit=2&after={first['next']}", headers=coordinator)).json()
    assert [s["id"] for s in first["items"] + rest["items"]] == [s["id"] for s in created]
    assert rest["next"] is None

"""The village catalog: products, their recorded changes, and photo uploads checked by content."""

import io

from PIL import Image

from tests.conftest import World
from tests.exchange.helpers import Client, add_product


def image_bytes(kind: str, size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(out, format=kind)
    return out.getvalue()


async def upload(
    client: Client, world: World, product_id: str, name: str, data: bytes, who="coord-a"
):  # type: ignore[no-untyped-def]
    return await client.post(
        f"/api/products/{product_id}/photo",
        files={"file": (name, data, "image/png")},
        headers=world.headers[who],
    )


async def test_a_coordinator_adds_products_members_browse_them(
    client: Client, world: World
) -> None:
    rice = await add_product(client, world.headers["coord-a"], world.dept_a, name="石门大米")
    assert rice["price_points"] == 100 and rice["value_fen"] == 3500 and rice["stock"] == 10
    listed = await client.get(
        f"/api/departments/{world.dept_a}/products", headers=world.headers["emp-a"]
    )
    assert [p["name"] for p in listed.json()["items"]] == ["石门大米"]
    other = await client.get(
        f"/api/departments/{world.dept_a}/products", headers=world.headers["emp-b"]
    )
    assert other.status_code == 404


async def test_every_change_is_recorded_with_who_when_old_and_new(
    client: Client, world: World
) -> None:
    rice = await add_product(client, world.headers["coord-a"], world.dept_a, price=100, stock=10)
    changed = await client.patch(
        f"/api/products/{rice['id']}",
        json={"price_points": 120, "stock": 8, "name": "石门大米"},  # the name is unchanged
        headers=world.headers["coord-a"],
    )
    assert changed.status_code == 200
    assert (changed.json()["price_points"], changed.json()["stock"]) == (120, 8)
    history = await client.get(
        f"/api/products/{rice['id']}/changes", headers=world.headers["coord-a"]
    )
    changes = {c["field"]: c for c in history.json()["items"]}
    assert set(changes) == {"price_points", "stock"}
    assert (changes["price_points"]["old_value"], changes["price_points"]["new_value"]) == (
        "100",
        "120",
    )
    assert changes["stock"]["changed_by"] and changes["stock"]["changed_at"]


async def test_inactive_products_are_hidden_from_employees_but_not_from_coordinators(
    client: Client, world: World
) -> None:
    rice = await add_product(client, world.headers["coord-a"], world.dept_a)
    await client.patch(
        f"/api/products/{rice['id']}", json={"active": False}, headers=world.headers["coord-a"]
    )
    url = f"/api/departments/{world.dept_a}/products?include_inactive=true"
    assert (await client.get(url, headers=world.headers["emp-a"])).json()["items"] == []
    assert len((await client.get(url, headers=world.headers["coord-a"])).json()["items"]) == 1


async def test_product_fields_are_checked(client: Client, world: World) -> None:
    base = f"/api/departments/{world.dept_a}/products"
    good = {"name": "茶叶", "unit": "250 g 罐", "price_points": 80, "stock": 3}
    for field, value in (("price_points", 0), ("stock", -1), ("value_fen", -5)):
        response = await client.post(
            base, json={**good, field: value}, headers=world.headers["coord-a"]
        )
        assert response.status_code == 422, field
        assert response.json()["errors"][0]["field"] == field
    rice = await add_product(client, world.headers["coord-a"], world.dept_a)
    negative = await client.patch(
        f"/api/products/{rice['id']}", json={"stock": -1}, headers=world.headers["coord-a"]
    )
    assert negative.status_code == 422


async def test_only_the_departments_coordinators_change_products(
    client: Client, world: World
) -> None:
    rice = await add_product(client, world.headers["coord-a"], world.dept_a)
    url = f"/api/products/{rice['id']}"
    patch = {"price_points": 1}
    assert (await client.patch(url, json=patch, headers=world.headers["emp-a"])).status_code == 403
    assert (
        await client.patch(url, json=patch, headers=world.headers["coord-b"])
    ).status_code == 404
    created = await client.post(
        f"/api/departments/{world.dept_a}/products",
        json={"name": "x", "unit": "袋", "price_points": 1, "stock": 1},
        headers=world.headers["coord-b"],
    )
    assert created.status_code == 404


async def test_a_photo_is_accepted_by_its_content_and_served_back(
    client: Client, world: World
) -> None:
    rice = await add_product(client, world.headers["coord-a"], world.dept_a)
    for kind, media_type in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        data = image_bytes(kind)
        response = await upload(client, world, rice["id"], "photo.bin", data)
        assert response.status_code == 200, kind
        assert response.json()["photo_url"] == f"/api/products/{rice['id']}/photo"
        served = await client.get(response.json()["photo_url"], headers=world.headers["emp-a"])
        assert served.status_code == 200
        assert served.headers["content-type"] == media_type and served.content == data
    history = await client.get(
        f"/api/products/{rice['id']}/changes", headers=world.headers["coord-a"]
    )
    assert [c["field"] for c in history.json()["items"]].count("photo") == 3


async def test_a_file_that_is_not_an_image_is_refused_whatever_its_name(
    client: Client, world: World
) -> None:
    rice = await add_product(client, world.headers["coord-a"], world.dept_a)
    for data in (b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"GIF89a" + b"\0" * 50, b""):
        response = await upload(client, world, rice["id"], "photo.png", data)
        assert response.status_code == 415, data[:10]
        assert response.json()["title"] == "Photo rejected"
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    response = await upload(client, world, rice["id"], "photo.png", gif.getvalue())
    assert response.status_code == 415 and "GIF" in response.json()["detail"]
    no_photo = await client.get(f"/api/products/{rice['id']}/photo", headers=world.headers["emp-a"])
    assert no_photo.status_code == 404


async def test_a_photo_over_two_megabytes_is_refused(client: Client, world: World) -> None:
    rice = await add_product(client, world.headers["coord-a"], world.dept_a)
    big = image_bytes("PNG") + b"\0" * (2 * 1024 * 1024)
    response = await upload(client, world, rice["id"], "big.png", big)
    assert response.status_code == 413


async def test_a_delivery_adds_to_the_stock_orders_left_and_never_takes_it_below_zero(
    client: Client, world: World
) -> None:
    rice = await add_product(client, world.headers["coord-a"], world.dept_a, stock=10)
    url = f"/api/products/{rice['id']}"
    coordinator = world.headers["coord-a"]
    added = await client.patch(url, json={"stock_delta": 20}, headers=coordinator)
    assert added.status_code == 200 and added.json()["stock"] == 30
    taken = await client.patch(url, json={"stock_delta": -5}, headers=coordinator)
    assert taken.json()["stock"] == 25
    below = await client.patch(url, json={"stock_delta": -26}, headers=coordinator)
    assert below.status_code == 422 and below.json()["errors"][0]["field"] == "stock_delta"
    both = await client.patch(url, json={"stock_delta": 1, "stock": 3}, headers=coordinator)
    assert both.status_code == 422
    history = await client.get(f"{url}/changes", headers=coordinator)
    stock_changes = [
        (c["old_value"], c["new_value"]) for c in history.json()["items"] if c["field"] == "stock"
    ]
    assert sorted(stock_changes) == [("10", "30"), ("30", "25")]

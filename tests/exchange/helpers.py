"""Shared steps of the exchange tests: opening campaigns, adding stations and products,
logging drop-offs and placing orders through the HTTP API, and decoding QR images."""

import io
import re
import uuid
from datetime import timedelta
from typing import Any

import zxingcpp
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient
from PIL import Image, ImageDraw

from catalog.models import utcnow

Client = AsyncTestClient[Litestar]

RATES = {
    "paper": 40,  # per kg
    "ink_cartridge": 20,
    "toner_cartridge": 30,
    "phone": 100,
    "charger_cable": 10,
    "keyboard_mouse": 15,
}


async def open_campaign(
    client: Client,
    admin: dict[str, str],
    *,
    policy: str = "auto",
    cap: int = 10_000,
    rates: dict[str, int] | None = None,
    department_id: str | None = None,
    name: str = "节能宣传周",
) -> dict[str, Any]:
    now = utcnow()
    body: dict[str, Any] = {
        "name": name,
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=7)).isoformat(),
        "policy": policy,
        "daily_cap_points": cap,
    }
    if department_id:
        body["department_id"] = department_id
    response = await client.post("/api/campaigns", json=body, headers=admin)
    assert response.status_code == 201, response.text
    campaign = response.json()
    card = [{"category": c, "points": p} for c, p in (rates or RATES).items()]
    response = await client.put(
        f"/api/campaigns/{campaign['id']}/rates", json={"rates": card}, headers=admin
    )
    assert response.status_code == 200, response.text
    return campaign


async def add_station(
    client: Client, coordinator: dict[str, str], department_id: str, name: str = "一楼大厅"
) -> dict[str, Any]:
    response = await client.post(
        f"/api/departments/{department_id}/stations",
        json={"name": name, "location": "东侧电梯旁"},
        headers=coordinator,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def add_product(
    client: Client,
    coordinator: dict[str, str],
    department_id: str,
    *,
    name: str = "石门大米",
    price: int = 100,
    stock: int = 10,
    value_fen: int = 3500,
) -> dict[str, Any]:
    response = await client.post(
        f"/api/departments/{department_id}/products",
        json={
            "name": name,
            "unit": "5 kg 袋",
            "price_points": price,
            "value_fen": value_fen,
            "stock": stock,
            "description": "定点扶贫村当季新米",
        },
        headers=coordinator,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def drop(
    client: Client,
    headers: dict[str, str],
    station_code: str,
    category: str,
    quantity: int,
    key: str | None = None,
    **extra: Any,
) -> Response:
    return await client.post(
        "/api/dropoffs",
        json={"station_code": station_code, "category": category, "quantity": quantity, **extra},
        headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())},
    )


async def order(
    client: Client,
    headers: dict[str, str],
    product_id: str,
    quantity: int = 1,
    key: str | None = None,
) -> Response:
    return await client.post(
        "/api/orders",
        json={"product_id": product_id, "quantity": quantity},
        headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())},
    )


async def me(client: Client, headers: dict[str, str]) -> dict[str, int]:
    response = await client.get("/api/me", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["balance"]


async def credit(client: Client, world: Any, username: str, points: int, station_code: str) -> None:
    """Give an employee `points` (a multiple of 20) through ink-cartridge drop-offs."""
    while points > 0:
        count = min(points // RATES["ink_cartridge"], 50)
        response = await drop(client, world.headers[username], station_code, "ink_cartridge", count)
        assert response.status_code == 201, response.text
        points -= count * RATES["ink_cartridge"]


def decode_png(data: bytes) -> list[str]:
    return decode_image(Image.open(io.BytesIO(data)))


def decode_image(image: Image.Image) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(image)]


_RECT = re.compile(r"M([\d.]+),([\d.]+)H([\d.]+)V([\d.]+)H([\d.]+)z")


def render_svg(svg: str, width_px: int = 400) -> Image.Image:
    """Draw the SVG's QR modules (the path of rectangles the qrcode package writes) onto a
    white canvas `width_px` wide, as a browser would at that CSS width: enough to decode it
    without a general SVG renderer."""
    view = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg)
    assert view is not None
    scale = width_px / float(view.group(1))
    image = Image.new("L", (width_px, round(float(view.group(2)) * scale)), 255)
    draw = ImageDraw.Draw(image)
    path = re.search(r'<path d="([^"]+)"', svg)
    assert path is not None
    for x1, y1, x2, y2, _ in _RECT.findall(path.group(1)):
        draw.rectangle(
            (
                round(float(x1) * scale),
                round(float(y1) * scale),
                round(float(x2) * scale) - 1,
                round(float(y2) * scale) - 1,
            ),
            fill=0,
        )
    return image

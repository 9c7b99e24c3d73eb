"""Whatever a page form receives, the answer is a page or a redirect, never a server error."""

import asyncio
import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from litestar.testing import TestClient
from sqlmodel import select

from api import db
from api.app import create_app
from api.demo import DEMO_PASSWORD, seed_demo
from api.settings import Settings
from catalog.models import Department
from exchange.stations import all_stations

ODD = [
    "",
    " ",
    "²",
    "-1",
    "0",
    "1e309",
    "NaN",
    "1.234",
    "x" * 5000,
    "<script>alert(1)</script>",
    "\x00",
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    data = tmp_path_factory.mktemp("forms")
    settings = Settings(
        data_dir=data, database_url="", login_attempts_per_minute=10_000, log_level="CRITICAL"
    )
    db.upgrade(settings.database_url)

    async def seed() -> str:
        engine = db.create_engine(settings.database_url)
        try:
            factory = db.create_session_factory(engine)
            await seed_demo(factory)
            async with factory() as session:
                department = (await session.exec(select(Department))).first()
                assert department is not None
                return (await all_stations(session, department.id))[0].code
        finally:
            await engine.dispose()

    return settings, asyncio.run(seed())


@pytest.fixture(scope="module")
def client(seeded: tuple[Settings, str]) -> Iterator[TestClient]:
    with TestClient(create_app(seeded[0])) as client:
        yield client


def signed_in(client: TestClient, username: str) -> str:
    page = client.get("/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
    answer = client.post(
        "/login",
        data={"username": username, "password": DEMO_PASSWORD, "_csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    return token


def no_server_error(client: TestClient, method: str, path: str, **kwargs: object) -> None:
    answer = client.request(method, path, follow_redirects=False, **kwargs)  # type: ignore[arg-type]
    assert answer.status_code < 500, (method, path, kwargs, answer.text[:500])
    assert "Traceback" not in answer.text


@pytest.mark.parametrize("odd", ODD)
def test_odd_input_never_gets_a_server_error(
    client: TestClient, seeded: tuple[Settings, str], odd: str
) -> None:
    station = seeded[1]
    url = quote(odd, safe="") or "x"  # the odd value as a path segment or query value
    csrf = signed_in(client, "coord-a")
    form = {"_csrf_token": csrf}
    for path, fields in [
        (f"/s/{station}", ["category", "quantity", "idempotency_key"]),
        ("/orders", ["product_id", "quantity", "idempotency_key"]),
        (f"/orders/{url}/cancel", []),
        ("/coord/dropoffs", ["confirm", "reject", "bulk", "selected", "bulk_reason"]),
        ("/coord/pickup", ["token", "idempotency_key", "desk_id", "desk_name"]),
        (f"/coord/incidents/{url}/resolve", ["resolution", "note"]),
        ("/coord/members", ["username", "display_name", "roles"]),
        ("/coord/stations", ["name", "location"]),
        ("/coord/products", ["name", "unit", "price_points", "value_yuan", "stock"]),
        ("/language", ["language", "next"]),
    ]:
        no_server_error(client, "POST", path, data={**form, **dict.fromkeys(fields, odd)})
    no_server_error(
        client,
        "POST",
        "/coord/members/import",
        data=form,
        files={"file": ("m.csv", odd.encode() or b"\xff\xfe", "text/csv")},
    )
    for path in [
        f"/catalog/{url}/confirm?quantity={url}",
        f"/dropoffs/{url}",
        f"/p/{url}",
        f"/coord/incidents?status={url}&after={url}",
    ]:
        no_server_error(client, "GET", path)
    for scanned_at in (odd, "2026-06-01T08:00:00Z"):  # refused whole, or item by item
        queued = {"idempotency_key": odd, "token": odd, "scanned_at": scanned_at}
        no_server_error(
            client,
            "POST",
            "/coord/pickup/sync",
            headers={"x-csrftoken": csrf},
            json={"desk_id": odd or "d", "desk_name": odd, "items": [queued]},
        )

    csrf = signed_in(client, "admin")
    form = {"_csrf_token": csrf}
    no_server_error(
        client,
        "POST",
        "/admin/campaigns",
        data={
            **form,
            **dict.fromkeys(
                [
                    "name",
                    "first_day",
                    "last_day",
                    "policy",
                    "daily_cap_points",
                    "department_id",
                ],
                odd,
            ),
        },
    )
    no_server_error(client, "POST", f"/admin/departments/{url}/approve", data=form)

    signed_in(client, "auditor")
    for path in [
        f"/audit/ledger?after={url}&since={url}&kind={url}&account={url}",
        f"/audit/ledger/{url}/entries/1",
        f"/audit/balances?account={url}&as_of={url}",
        f"/audit/tree-head?department={url}",
    ]:
        no_server_error(client, "GET", path)

"""Hostile input gets a clear 4xx problem (or error page), never a 500, on both databases.

Each case here answered 500 once (issue 11): mostly on PostgreSQL, which cannot store NUL in
text, some on both databases.
"""

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from api.app import create_app
from api.settings import Settings
from catalog.errors import CatalogError
from exchange.errors import ExchangeError
from exchange.models import Campaign, Policy
from ledger.errors import LedgerError
from tests.conftest import World
from tests.exchange.helpers import (
    Client,
    add_product,
    add_station,
    credit,
    drop,
    open_campaign,
    order,
)
from tests.foundation.test_problems import assert_problem

NUL = "\x00"
BIGINT_PAST_MAX = 2**63  # one past PostgreSQL's BIGINT


def assert_refused(response, status: int = 400) -> dict:  # type: ignore[no-untyped-def]
    """A problem document naming what was wrong; never a server error."""
    body = assert_problem(response, status)
    assert body["detail"]
    return body


# --- characters a database cannot store ------------------------------------------------------


async def test_a_nul_in_a_sign_in_is_refused_by_the_api_and_the_page(
    client: Client, world: World
) -> None:
    response = await client.post(
        "/api/auth/token", json={"username": f"adm{NUL}in", "password": "x"}
    )
    body = assert_refused(response)
    assert body["errors"][0]["field"] == "username"
    page = await client.get("/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    response = await client.post(
        "/login",
        content=f"username=adm%00in&password=x&_csrf_token={token.group(1)}",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 400, response.text
    assert "text/html" in response.headers["content-type"]


async def test_a_nul_in_a_path_segment_or_a_query_parameter_is_refused(
    client: Client, world: World
) -> None:
    response = await client.get("/api/products/%00", headers=world.headers["emp-a"])
    assert_refused(response)
    for name in ["account", "reference", "kind", "after"]:
        response = await client.get(
            f"/api/departments/{world.dept_a}/ledger/entries?{name}=x%00",
            headers=world.headers["auditor"],
        )
        assert assert_refused(response)["errors"][0]["field"] == name


async def test_a_query_parameter_unknown_or_taken_once_but_sent_twice_is_refused(
    client: Client, world: World
) -> None:
    """Litestar would keep one of the values without a word; the request is refused instead."""
    for path in ("/api/campaigns?after=a&after=b", "/api/campaigns?limit=5&limit=6"):
        response = await client.get(path, headers=world.headers["emp-a"])
        assert assert_refused(response)["errors"][0]["field"] in {"after", "limit"}
    entries = f"/api/departments/{world.dept_a}/ledger/entries"
    response = await client.get(f"{entries}?from=2026-01-01T00:00:00Z&from=2026-01-02T00:00:00Z",
                                headers=world.headers["auditor"])  # fmt: skip
    assert assert_refused(response)["errors"][0]["field"] == "from"
    assert (await client.get(f"{entries}?limit=5", headers=world.headers["auditor"])).is_success
    response = await client.get(f"{entries}?limt=5", headers=world.headers["auditor"])
    assert assert_refused(response)["errors"][0]["field"] == "limt"  # a typo, not ignored


async def test_a_nul_in_an_anonymous_department_application_is_refused(
    client: Client, world: World
) -> None:
    body = {
        "name": f"部门{NUL}",
        "village_name": "村",
        "village_county": "县",
        "village_province": "省",
        "contact_name": "联系人",
        "contact_phone": "0731-0000",
        "pickup_location": "一楼",
    }
    response = await client.post("/api/departments", json=body)
    assert assert_refused(response)["errors"][0]["field"] == "name"


async def test_a_nul_in_names_and_reasons_is_refused(client: Client, world: World) -> None:
    coordinator = world.headers["coord-a"]
    station = await client.post(
        f"/api/departments/{world.dept_a}/stations", json={"name": NUL}, headers=coordinator
    )
    assert_refused(station)
    product = await client.post(
        f"/api/departments/{world.dept_a}/products",
        json={"name": f"米{NUL}", "unit": "袋", "price_points": 1, "value_fen": 1, "stock": 1},
        headers=coordinator,
    )
    assert_refused(product)
    member = await client.post(
        f"/api/departments/{world.dept_a}/members",
        json={"username": "li-lei", "display_name": f"李{NUL}雷"},
        headers=coordinator,
    )
    assert_refused(member)
    await open_campaign(client, world.headers["admin"], policy="steward")
    code = (await add_station(client, coordinator, world.dept_a))["code"]
    logged = await drop(client, world.headers["emp-a"], code, "ink_cartridge", 1)
    assert logged.status_code == 201, logged.text
    rejected = await client.post(
        f"/api/dropoffs/{logged.json()['id']}/reject",
        json={"reason": f"空{NUL}"},
        headers=coordinator,
    )
    assert_refused(rejected)


async def test_a_nul_in_a_json_object_key_or_nested_value_is_refused(
    client: Client, world: World
) -> None:
    campaign = await open_campaign(client, world.headers["admin"])
    response = await client.put(
        f"/api/campaigns/{campaign['id']}/rates",
        json={"rates": [{"category": f"paper{NUL}", "points": 1}]},
        headers=world.headers["admin"],
    )
    assert_refused(response)


async def test_a_nul_in_a_csv_cell_refuses_the_import(client: Client, world: World) -> None:
    response = await client.post(
        f"/api/departments/{world.dept_a}/members/import",
        files={
            "file": ("m.csv", f"username,display_name\nli-lei,李{NUL}雷\n".encode(), "text/csv")
        },
        headers=world.headers["coord-a"],
    )
    body = assert_refused(response, 422)
    assert body["errors"][0]["row"] == 2


# --- sizes and shapes -------------------------------------------------------------------------


async def test_json_nested_deeper_than_any_request_needs_is_refused(
    client: Client, world: World
) -> None:
    body = '{"username": ' + "[" * 1000 + "]" * 1000 + "}"
    for path in ["/api/auth/token", "/api/dropoffs"]:
        response = await client.post(
            path,
            content=body.encode(),
            headers={**world.headers["emp-a"], "content-type": "application/json"},
        )
        assert_refused(response)
    body = '{"username": "a", "password": "b", "x": ' + "[" * 40 + "]" * 40 + "}"
    response = await client.post(
        "/api/auth/token", content=body.encode(), headers={"content-type": "application/json"}
    )
    assert_refused(response)


async def test_a_form_sent_where_json_is_taken_is_refused_as_unsupported(
    client: Client, world: World
) -> None:
    for form in [{"data": {"username": "x", "password": "y"}}, {"files": {"username": b"x"}}]:
        response = await client.post("/api/auth/token", **form)  # type: ignore[arg-type]
        assert_refused(response, 415)


async def test_a_body_integer_must_be_a_json_integer_within_64_bits(
    client: Client, world: World
) -> None:
    await open_campaign(client, world.headers["admin"])
    code = (await add_station(client, world.headers["coord-a"], world.dept_a))["code"]
    response = await drop(client, world.headers["emp-a"], code, "ink_cartridge", BIGINT_PAST_MAX)
    assert_refused(response)
    response = await client.post(
        "/api/dropoffs",
        json={"station_code": code, "category": "ink_cartridge", "quantity": "1"},
        headers={**world.headers["emp-a"], "Idempotency-Key": str(uuid.uuid4())},
    )
    body = assert_refused(response)
    assert body["errors"][0]["field"] == "quantity"
    assert "int" in body["errors"][0]["rule"]


async def test_a_csv_cell_over_the_size_limit_refuses_the_import(
    client: Client, world: World
) -> None:
    cell = "x" * (128 * 1024 + 1)
    response = await client.post(
        f"/api/departments/{world.dept_a}/members/import",
        files={"file": ("m.csv", f"username,display_name\nli-lei,{cell}\n".encode(), "text/csv")},
        headers=world.headers["coord-a"],
    )
    body = assert_refused(response, 422)
    assert body["errors"][0]["row"] == 2


# --- numbers past what the database holds -------------------------------------------------------


async def test_a_sequence_number_past_bigint_is_refused_by_the_api_and_the_pages(
    client: Client, world: World
) -> None:
    for query in [
        "accounts/issuance?as_of_seq={n}",
        "tree-head?tree_size={n}",
        "proofs/inclusion?seq={n}",
        "proofs/inclusion?seq=1&tree_size={n}",
        "proofs/consistency?first={n}",
        "proofs/consistency?first=1&second={n}",
        "export?tree_size={n}",
    ]:
        response = await client.get(
            f"/api/departments/{world.dept_a}/ledger/{query.format(n=BIGINT_PAST_MAX)}",
            headers=world.headers["auditor"],
        )
        assert_refused(response)
    response = await client.get(
        f"/audit/ledger/{world.dept_a}/entries/{BIGINT_PAST_MAX}",
        headers=world.headers["auditor"],
    )
    assert response.status_code in (400, 404), response.text


# --- times ------------------------------------------------------------------------------------


async def test_a_ledger_time_without_an_offset_is_refused(client: Client, world: World) -> None:
    for name in ["from", "to"]:
        response = await client.get(
            f"/api/departments/{world.dept_a}/ledger/entries?{name}=2026-06-01T00:00:00",
            headers=world.headers["auditor"],
        )
        error = assert_refused(response, 422)["errors"][0]
        assert error["field"] == name and "offset" in error["rule"]
    me = (await client.get("/api/me", headers=world.headers["emp-a"])).json()
    response = await client.get(
        f"/api/departments/{world.dept_a}/ledger/accounts/user:{me['id']}"
        "?as_of=2026-06-01T00:00:00",
        headers=world.headers["emp-a"],
    )
    assert_refused(response, 422)


async def test_a_campaign_outside_sane_dates_is_refused(client: Client, world: World) -> None:
    for starts_at, ends_at in [
        ("9999-12-31T23:59:59+14:00", "9999-12-31T23:59:59+00:00"),
        ("9999-12-30T00:00:00+00:00", "9999-12-31T00:00:00+00:00"),
        ("0001-01-01T00:00:00-12:00", "0001-01-02T00:00:00-12:00"),
    ]:
        response = await client.post(
            "/api/campaigns",
            json={
                "name": "远未来",
                "starts_at": starts_at,
                "ends_at": ends_at,
                "policy": "auto",
                "daily_cap_points": 100,
            },
            headers=world.headers["admin"],
        )
        assert assert_refused(response, 422)["errors"][0]["field"] == "starts_at"
    listing = await client.get("/admin/campaigns", headers=world.headers["admin"])
    assert listing.status_code == 200


async def test_the_campaigns_page_survives_a_campaign_at_the_end_of_time(
    client: Client, world: World, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Rows written before the bound existed must not take the page down."""
    end = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    async with db.transaction(session_factory) as session:
        session.add(
            Campaign(
                name="远未来",
                starts_at=end - timedelta(days=1),
                ends_at=end,
                policy=Policy.auto,
                daily_cap_points=100,
                created_by="test",
            )
        )
    listing = await client.get("/admin/campaigns", headers=world.headers["admin"])
    assert listing.status_code == 200, listing.text
    api = await client.get("/api/campaigns", headers=world.headers["admin"])
    assert api.status_code == 200, api.text


# --- pickup tokens ----------------------------------------------------------------------------


@pytest.fixture
async def placed(client: Client, world: World) -> dict:
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    await credit(client, world, "emp-a", 100, station["code"])
    rice = await add_product(client, world.headers["coord-a"], world.dept_a, price=100)
    response = await order(client, world.headers["emp-a"], rice["id"])
    assert response.status_code == 201
    return response.json()


async def test_a_pickup_token_with_a_header_or_expiry_pyjwt_cannot_take_is_refused(
    client: Client, world: World, placed: dict
) -> None:
    _, rest = placed["pickup_token"].split(".", 1)
    for kid in [7, None, ["k"], {"k": 1}]:
        header = json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": kid}).encode()
        token = f"{jwt.utils.base64url_encode(header).decode()}.{rest}"
        response = await client.post(
            "/api/pickups", json={"token": token}, headers=world.headers["coord-a"]
        )
        assert_refused(response)
    claims = jwt.decode(placed["pickup_token"], options={"verify_signature": False})
    for exp in [10**15, 10**30, -(10**15)]:
        token = jwt.encode(
            claims | {"exp": exp},
            client.app.state.settings.keyring.active.private_key,
            algorithm="EdDSA",
            headers={"kid": client.app.state.settings.keyring.active.kid},
        )
        response = await client.post(
            "/api/pickups", json={"token": token}, headers=world.headers["coord-a"]
        )
        assert_refused(response)


# --- problem documents ------------------------------------------------------------------------


async def test_refusing_to_cancel_a_cancelled_order_keeps_status_the_http_status(
    client: Client, world: World, placed: dict
) -> None:
    path = f"/api/orders/{placed['id']}/cancel"
    assert (await client.post(path, headers=world.headers["emp-a"])).status_code == 200
    body = assert_refused(await client.post(path, headers=world.headers["emp-a"]), 409)
    assert body["current_status"] == "cancelled"


async def test_refusing_to_confirm_a_decided_dropoff_keeps_status_the_http_status(
    client: Client, world: World
) -> None:
    await open_campaign(client, world.headers["admin"], policy="steward")
    code = (await add_station(client, world.headers["coord-a"], world.dept_a))["code"]
    logged = (await drop(client, world.headers["emp-a"], code, "ink_cartridge", 1)).json()
    path = f"/api/dropoffs/{logged['id']}/confirm"
    assert (await client.post(path, headers=world.headers["coord-a"])).status_code == 200
    body = assert_refused(await client.post(path, headers=world.headers["coord-a"]), 409)
    assert body["current_status"] == "confirmed"


def test_no_domain_error_overwrites_a_standard_problem_member() -> None:
    def subclasses(cls: type) -> list[type]:
        return [cls] + [sub for child in cls.__subclasses__() for sub in subclasses(child)]

    standard = {"type", "title", "status", "detail", "instance"}
    for root in (CatalogError, ExchangeError, LedgerError):
        for error in subclasses(root):
            assert not standard & set(getattr(error, "problem_fields", ())), error


def test_every_integer_parameter_of_the_api_stops_at_bigint(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, log_format="json"))
    unbounded = []
    for path, item in app.openapi_schema.to_schema()["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                types = [variant.get("type") for variant in schema.get("oneOf", [schema])]
                if "integer" in types and not schema.get("maximum", BIGINT_PAST_MAX) < 2**63:
                    unbounded.append(f"{method.upper()} {path} {parameter['name']}")
    assert not unbounded

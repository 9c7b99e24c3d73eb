"""The reports over HTTP: who may read which report, refusals as problem documents, and the
JSON, CSV and XLSX forms of the same figures."""

import csv
import io

import openpyxl
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from exchange.expiry import sweep_expiry
from exchange.models import Campaign
from tests.conftest import World
from tests.exchange.helpers import Client
from tests.reports.seed import TEA_NAME, Seeded, at, seed

PERIOD = "from=2026-06-08&to=2026-06-10"


@pytest.fixture
async def seeded(world: World, session_factory: async_sessionmaker[AsyncSession]) -> Seeded:
    return await seed(session_factory, world.dept_a, world.dept_b)


async def test_a_department_report_is_for_its_coordinators_auditors_and_platform_staff(
    client: Client, world: World, seeded: Seeded
) -> None:
    url = f"/api/departments/{world.dept_a}/report?{PERIOD}"
    for who in ("coord-a", "audit-a", "auditor", "admin"):
        response = await client.get(url, headers=world.headers[who])
        assert response.status_code == 200, (who, response.text)
        body = response.json()
        assert body["department_id"] == world.dept_a
        assert body["points"] == {
            "issued": 110, "pending": 60, "rejected": 100, "spent": 100, "held": 60,
            "released": 60, "expired": 0, "outstanding": 110,
        }  # fmt: skip
        assert body["totals"]["paper_grams"] == 2060 and body["totals"]["paper_kg"] == "2.1"
        assert [d["day"] for d in body["days"]] == ["2026-06-08", "2026-06-09", "2026-06-10"]
        assert body["participation"]["rate_permille"] == 667
        assert body["totals"]["value_fen"] == 3500
        assert body["products"][0]["value_fen"] == 3500
        assert {f["category"] for f in body["co2e_factors"]} >= {"paper", "ink_cartridge"}

    # Another department's report is indistinguishable from a missing one.
    for who, dept in (("coord-b", world.dept_a), ("admin", "no-such-department")):
        response = await client.get(
            f"/api/departments/{dept}/report?{PERIOD}", headers=world.headers[who]
        )
        assert response.status_code == 404, (who, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    response = await client.get(url, headers=world.headers["emp-a"])
    assert response.status_code == 403
    assert (await client.get(url)).status_code == 401


BAD_QUERIES = [
    ("", 422),  # no period
    ("from=2026-06-10&to=2026-06-08", 422),
    ("from=2026-06-31&to=2026-07-01", 422),
    ("from=yesterday&to=today", 422),
    ("from=2020-01-01&to=2026-06-10", 422),
    ("campaign=nope", 404),
    (f"from={'9' * 40}&to=2026-06-10", 400),
    (f"{PERIOD}&format=pdf", 400),
]


async def test_bad_period_inputs_are_refused_with_a_problem_document(
    client: Client, world: World
) -> None:
    for query, status in BAD_QUERIES:
        response = await client.get(
            f"/api/departments/{world.dept_a}/report?{query}", headers=world.headers["coord-a"]
        )
        assert response.status_code == status, (query, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def _csv_tables(data: bytes) -> dict[str, list[list[str]]]:
    """The export's tables: each is its name, its header and its rows, then a blank line."""
    assert data.startswith(b"\xef\xbb\xbf")
    tables: dict[str, list[list[str]]] = {}
    block: list[list[str]] = []
    for row in [*csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")), []]:
        if row:
            block.append(row)
        elif block:
            tables[block[0][0]] = block[1:]
            block = []
    return tables


async def test_the_csv_export_has_a_bom_reads_back_and_neutralises_formula_cells(
    client: Client, world: World, seeded: Seeded
) -> None:
    url = f"/api/departments/{world.dept_a}/report?campaign={seeded.campaign_id}"
    by_accept = await client.get(url, headers={**world.headers["coord-a"], "Accept": "text/csv"})
    by_query = await client.get(url + "&format=csv", headers=world.headers["coord-a"])
    for response in (by_accept, by_query):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
    tables = _csv_tables(by_accept.content)
    summary = dict(tables["summary"][1:])  # type: ignore[arg-type]
    assert summary["points_issued"] == "262" and summary["paper_kg"] == "4.6"
    assert summary["value_to_villages_yuan"] == "47.00"
    products = tables["products_delivered"]
    assert products[0] == ["product_id", "name", "unit", "orders", "quantity", "points",
                           "value_yuan"]  # fmt: skip
    names = [row[1] for row in products[1:]]
    assert names == ["石门大米", "'" + TEA_NAME]  # the formula is text, not a formula
    assert len(tables["days"]) == 1 + 14
    assert "co2e_factors" in tables


async def test_the_xlsx_export_opens_with_one_sheet_per_table(
    client: Client, world: World, seeded: Seeded
) -> None:
    response = await client.get(
        f"/api/departments/{world.dept_a}/report?campaign={seeded.campaign_id}&format=xlsx",
        headers=world.headers["audit-a"],
    )
    assert response.status_code == 200, response.text
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == [
        "summary", "dropoffs_by_status", "categories", "collection_points", "days",
        "orders_by_status", "products_delivered", "co2e_factors",
    ]  # fmt: skip
    products = list(workbook["products_delivered"].iter_rows(values_only=True))
    assert products[2][1] == "'" + TEA_NAME and products[2][5] == 30
    assert workbook["products_delivered"]["B3"].data_type == "s"


async def test_the_platform_report_is_for_platform_staff_sorted_as_asked(
    client: Client, world: World, seeded: Seeded
) -> None:
    url = f"/api/reports/platform?{PERIOD}&sort=points_issued&order=desc"
    for who in ("admin", "auditor"):
        response = await client.get(url, headers=world.headers[who])
        assert response.status_code == 200, (who, response.text)
        body = response.json()
        assert [row["name"] for row in body["departments"]] == ["部门a", "部门b", "部门p"]
        assert [row["points_issued"] for row in body["departments"]] == [110, 40, 0]
        assert body["totals"]["participation"]["members"] == 6
        assert body["totals"]["department_id"] is None
    for who in ("coord-a", "audit-a", "emp-a"):
        response = await client.get(url, headers=world.headers[who])
        assert response.status_code == 403, who
    response = await client.get(
        f"/api/reports/platform?{PERIOD}&sort=password", headers=world.headers["admin"]
    )
    assert response.status_code == 400
    response = await client.get(f"{url}&format=xlsx", headers=world.headers["admin"])
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames[:2] == ["summary", "departments"]
    rows = list(workbook["departments"].iter_rows(values_only=True))
    assert [row[1] for row in rows[1:]] == ["部门a", "部门b", "部门p"]


async def test_points_expired_show_in_the_json_the_exports_and_the_report_pages(
    client: Client,
    world: World,
    seeded: Seeded,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with db.transaction(session_factory) as session:
        await (await session.connection()).execute(
            update(Campaign.__table__)
            .where(Campaign.__table__.c.id == seeded.campaign_id)
            .values(points_expire_at=at(20, 0))
        )
    await sweep_expiry(session_factory, at(20, 12))
    june = "from=2026-06-01&to=2026-06-30"
    url = f"/api/departments/{world.dept_a}/report?{june}"
    body = (await client.get(url, headers=world.headers["coord-a"])).json()
    expired = body["points"]["expired"]
    # What department A's employees had left of the campaign's points: all they were issued
    # less what they spent and what their open order holds (which stays theirs).
    assert expired == 262 - 130 - 30
    assert body["points"]["outstanding"] == body["points"]["held"] == 30
    csv_summary = dict(
        _csv_tables(
            (await client.get(f"{url}&format=csv", headers=world.headers["coord-a"])).content
        )["summary"][1:]
    )  # type: ignore[arg-type]
    assert csv_summary["points_expired"] == str(expired)
    platform = f"/api/reports/platform?{june}&sort=points_expired&order=desc"
    rows = (await client.get(platform, headers=world.headers["admin"])).json()["departments"]
    assert rows[0]["name"] == "部门a" and rows[0]["points_expired"] == expired
    workbook = openpyxl.load_workbook(
        io.BytesIO(
            (await client.get(f"{platform}&format=xlsx", headers=world.headers["admin"])).content
        )
    )
    header, first = list(workbook["departments"].iter_rows(values_only=True))[:2]
    assert first[header.index("points_expired")] == expired

    # The points card of both pages, and the admin's departments table, in both languages.
    pages = {"coord-a": "/coord/report", "admin": "/admin/report"}
    card = {"zh": "已过期（活动后未使用）", "en": "Expired (unspent after the campaign)"}
    column = {"zh": "过期积分", "en": "Points expired"}
    for language in ("zh", "en"):
        client.cookies.set("exchange_lang", language)
        for who, path in pages.items():
            page = await client.get(f"{path}?{june}", headers=world.headers[who])
            assert page.status_code == 200, (who, language)
            shown = expired if who == "coord-a" else expired + 40  # and emp-b's 40 in B
            assert f"{card[language]}</dt><dd>{shown}</dd>" in page.text, (who, language)
            assert (column[language] in page.text) == (who == "admin"), (who, language)
    client.cookies.delete("exchange_lang")

    # The summary drafted for the month says how many points expired, in both languages.
    summary = f"/api/departments/{world.dept_a}/summary?{june}"
    drafted = await client.get(summary, headers=world.headers["coord-a"])
    assert f"逾期未用过期积分{expired}分" in drafted.json()["text"]
    drafted = await client.get(f"{summary}&language=en", headers=world.headers["coord-a"])
    assert f"{expired} points left unspent expired" in drafted.json()["text"]


async def test_the_reports_are_documented_with_their_refusals(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    department = schema["paths"]["/api/departments/{department_id}/report"]["get"]
    platform = schema["paths"]["/api/reports/platform"]["get"]
    for operation in (department, platform):
        assert {"200", "400", "401", "403", "404", "422"} <= set(operation["responses"])
        names = {p["name"] for p in operation["parameters"]}
        assert {"campaign", "from", "to", "format"} <= names

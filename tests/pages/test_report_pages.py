"""Report and summary pages answer each role with its own scope, on both databases."""

import re
from typing import Any

import pytest

from tests.conftest import World
from tests.exchange.helpers import Client, add_station, drop, open_campaign


@pytest.fixture
async def campaign(client: Client, world: World) -> dict[str, Any]:
    opened = await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    answer = await drop(client, world.headers["emp-a"], station["code"], "paper", 2500)
    assert answer.status_code == 201, answer.text
    return opened


async def test_each_role_sees_the_report_of_its_own_scope(
    client: Client, world: World, campaign: dict[str, Any]
) -> None:
    query = f"campaign={campaign['id']}"
    own = await client.get(f"/coord/report?{query}", headers=world.headers["coord-a"])
    assert own.status_code == 200
    assert len(re.findall(r"<svg [^>]*role=\"img\"", own.text)) == 3
    assert "<style" not in own.text and 'style="' not in own.text  # nothing a CSP would block
    assert "部门a" in own.text and "2.5" in own.text
    client.cookies.set("exchange_lang", "en")
    english = await client.get(f"/coord/report?{query}", headers=world.headers["coord-a"])
    client.cookies.delete("exchange_lang")
    assert "Drop-offs per day" in english.text and "How CO2e is estimated" in english.text

    # A department's auditor sees their own department, whatever they ask for.
    audit = await client.get(
        f"/audit/report?department={world.dept_b}&{query}", headers=world.headers["audit-a"]
    )
    assert audit.status_code == 200 and "部门a" in audit.text and "部门b" not in audit.text
    platform = await client.get(f"/audit/report?{query}", headers=world.headers["auditor"])
    assert platform.status_code == 200
    assert len(re.findall(r"<svg [^>]*role=\"img\"", platform.text)) == 4  # with participation
    admin = await client.get(
        f"/admin/report?department={world.dept_a}&{query}", headers=world.headers["admin"]
    )
    assert admin.status_code == 200 and "部门a" in admin.text

    for who, path in (("emp-a", "/coord/report"), ("coord-a", "/admin/report")):
        refused = await client.get(f"{path}?{query}", headers=world.headers[who])
        assert refused.status_code == 403, (who, path)
    bad = await client.get(
        "/coord/report?from=2026-07-09&to=2026-07-01", headers=world.headers["coord-a"]
    )
    assert bad.status_code == 422 and "结束日期不能早于开始日期" in bad.text


async def test_the_summary_page_drafts_prints_and_refuses_an_overlong_export(
    client: Client, world: World, campaign: dict[str, Any]
) -> None:
    query = f"campaign={campaign['id']}"
    coordinator = world.headers["coord-a"]
    editor = await client.get(f"/coord/summary?{query}", headers=coordinator)
    assert editor.status_code == 200
    assert "部门a“云兑换”活动总结" in editor.text and 'src="/static/js/summary.js"' in editor.text
    printable = await client.get(f"/coord/summary/print?{query}", headers=coordinator)
    assert printable.status_code == 200 and "一、主要成效" in printable.text
    assert len(re.findall(r"<svg [^>]*role=\"img\"", printable.text)) == 3

    saved = await client.put(
        f"/api/departments/{world.dept_a}/summary?{query}",
        json={"text": "长" * 2345, "pictures": []},
        headers=coordinator,
    )
    assert saved.status_code == 200
    export = await client.get(f"/coord/summary/export.docx?{query}", headers=coordinator)
    assert export.status_code == 422
    assert "总结共2,345字" in export.text
    platform = await client.get(f"/admin/summary?{query}", headers=world.headers["admin"])
    assert platform.status_code == 200 and "云兑换平台各部门" in platform.text

"""CO2e factors are data: everyone signed in reads them, a platform admin replaces them as a
new set (every earlier set kept, with who and when), a report names its set, a saved summary
keeps the set it was saved with, and the remanufacturing factor counts only the cartridges of
campaigns that remanufacture them."""

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.conftest import PASSWORD, World
from tests.exchange.helpers import add_station, drop, open_campaign
from tests.foundation.test_problems import assert_problem
from tests.reports.seed import seed

Client = AsyncTestClient[Litestar]
PAPER_1000 = {
    "category": "paper",
    "valid_from": "2000-01-01",
    "basis": "kg",
    "grams": 1000,
    "baseline": "landfill",
    "publication": "Test publication",
    "exhibit": "Exhibit 1",
    "page": "3-4",
    "url": "https://example.org/factors",
    "note_zh": "测试",
    "note_en": "A test",
}


async def test_everyone_reads_the_default_factors_with_their_sources_and_what_is_to_confirm(
    client: Client, world: World
) -> None:
    answer = await client.get("/api/co2e-factors", headers=world.headers["emp-a"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == "default" and body["current"] is True
    factors = {f["category"]: f for f in body["factors"]}
    assert set(factors) == {
        "paper", "ink_cartridge", "toner_cartridge", "phone", "charger_cable",
        "keyboard_mouse", "other_small_device",
    }  # fmt: skip
    assert factors["paper"]["grams"] == 2987 and factors["paper"]["to_confirm"] is True
    assert "landfill" in factors["paper"]["note_en"] and "填埋" in factors["paper"]["note_zh"]
    toner = factors["toner_cartridge"]
    assert (toner["grams"], toner["applies_to"], toner["to_confirm"]) == (
        2500,
        "remanufactured",
        False,
    )
    assert "remanufacturing.org.uk" in toner["url"]
    assert factors["phone"]["grams"] is None and factors["phone"]["to_confirm"] is True
    assert (await client.get("/api/co2e-factors")).status_code == 401


async def test_only_a_platform_admin_replaces_the_factors_and_every_set_is_kept(
    client: Client, world: World
) -> None:
    body = {"factors": [PAPER_1000], "note": "校核后的造纸因子"}
    for who in ("coord-a", "emp-a", "auditor"):
        refused = await client.put("/api/co2e-factors", json=body, headers=world.headers[who])
        assert refused.status_code == 403, who
    admin = world.headers["admin"]
    for bad, field in (
        ({**PAPER_1000, "category": "glass"}, "factors[0].category"),
        ({**PAPER_1000, "basis": "item"}, "factors[0].basis"),
        ({**PAPER_1000, "url": "javascript:alert(1)"}, "factors[0].url"),
        ({**PAPER_1000, "valid_from": "1999-12-31"}, "factors[0].valid_from"),
    ):
        answer = await client.put("/api/co2e-factors", json={"factors": [bad]}, headers=admin)
        assert_problem(answer, 422)
        assert answer.json()["errors"][0]["field"] == field
    twice = await client.put("/api/co2e-factors", json={"factors": [PAPER_1000] * 2}, headers=admin)
    assert_problem(twice, 422)
    assert (
        await client.put("/api/co2e-factors", json={"factors": "x"}, headers=admin)
    ).status_code == 400

    saved = await client.put("/api/co2e-factors", json=body, headers=admin)
    assert saved.status_code == 200, saved.text
    new = saved.json()
    assert new["current"] and new["note"] == "校核后的造纸因子"
    assert [(f["category"], f["grams"]) for f in new["factors"]] == [("paper", 1000)]
    assert [h["id"] for h in new["history"]] == [new["id"], "default"]
    me = (await client.get("/api/me", headers=admin)).json()
    assert new["created_by"] == me["id"]
    old = (await client.get("/api/co2e-factors?set=default", headers=admin)).json()
    assert old["current"] is False and len(old["factors"]) == 7
    missing = await client.get("/api/co2e-factors?set=nope", headers=admin)
    assert_problem(missing, 404)


async def test_a_report_names_its_factor_set_and_a_saved_summary_keeps_its_own(
    client: Client, world: World, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    seeded = await seed(session_factory, world.dept_a, world.dept_b)
    period = f"campaign={seeded.campaign_id}"
    report_url = f"/api/departments/{world.dept_a}/report?{period}"
    summary_url = f"/api/departments/{world.dept_a}/summary?{period}"
    coordinator, admin = world.headers["coord-a"], world.headers["admin"]

    before = (await client.get(report_url, headers=coordinator)).json()
    assert before["co2e_factor_set"] == "default"
    assert before["totals"]["co2e_grams"] == 13620  # 4,560 g of paper × 2,987 g per kg
    saved = await client.put(
        summary_url, json={"text": "总结", "pictures": []}, headers=coordinator
    )
    assert saved.status_code == 200 and saved.json()["co2e_factor_set"] == "default"

    changed = await client.put("/api/co2e-factors", json={"factors": [PAPER_1000]}, headers=admin)
    new_set = changed.json()["id"]
    after = (await client.get(report_url, headers=coordinator)).json()
    assert after["co2e_factor_set"] == new_set
    assert after["totals"]["co2e_grams"] == 4560  # the new factor: 1,000 g per kg
    # The saved summary still shows the figures it was written with, text edits included.
    again = await client.put(
        summary_url, json={"text": "总结（修改）", "pictures": []}, headers=coordinator
    )
    assert again.json()["co2e_factor_set"] == "default"
    kept = await client.get(f"{summary_url}&format=docx", headers=coordinator)
    assert kept.status_code == 200
    other_period = f"/api/departments/{world.dept_a}/summary?from=2026-06-08&to=2026-06-09"
    fresh = (await client.get(other_period, headers=coordinator)).json()
    assert fresh["saved"] is False and fresh["co2e_factor_set"] == new_set


async def test_the_remanufacturing_factor_counts_only_cartridges_of_campaigns_that_say_so(
    client: Client, world: World
) -> None:
    admin, coordinator = world.headers["admin"], world.headers["coord-a"]
    station = await add_station(client, coordinator, world.dept_a)
    campaign = await open_campaign(client, admin, department_id=world.dept_a)
    assert campaign["cartridges_remanufactured"] is False
    assert (
        await drop(client, world.headers["emp-a"], station["code"], "toner_cartridge", 2)
    ).status_code == 201
    url = f"/api/departments/{world.dept_a}/report?campaign={campaign['id']}"

    def toner(report: dict) -> dict:  # type: ignore[type-arg]
        return next(c for c in report["categories"] if c["category"] == "toner_cartridge")

    assert toner((await client.get(url, headers=coordinator)).json())["co2e_grams"] == 0
    marked = await client.patch(
        f"/api/campaigns/{campaign['id']}", json={"cartridges_remanufactured": True}, headers=admin
    )
    assert marked.status_code == 200 and marked.json()["cartridges_remanufactured"] is True
    assert toner((await client.get(url, headers=coordinator)).json())["co2e_grams"] == 5000


async def test_an_admin_edits_the_factors_on_their_page_and_each_save_is_a_new_set(
    client: Client, world: World
) -> None:
    signed = await client.post("/api/auth/token", json={"username": "admin", "password": PASSWORD})
    assert signed.status_code == 200
    client.cookies.set("exchange_lang", "en")
    page = await client.get("/admin/co2e-factors")
    assert page.status_code == 200
    assert "to confirm" in page.text and "remanufacturing.org.uk" in page.text
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    form = {
        "_csrf_token": token,
        "rows": "2",
        "0-category": "paper",
        "0-valid_from": "2000-01-01",
        "0-grams": "1800",
        "0-baseline": "landfill",
        "0-applies_to": "all",
        "0-publication": "WARM",
        "0-note_en": "Difference of the landfilling and recycling factors",
        "1-category": "",
        "note": "paper checked",
    }
    saved = await client.post("/admin/co2e-factors", data=form, follow_redirects=False)
    assert saved.status_code in (302, 303), saved.text
    current = (await client.get("/api/co2e-factors", headers=world.headers["emp-a"])).json()
    assert [(f["category"], f["grams"], f["to_confirm"]) for f in current["factors"]] == [
        ("paper", 1800, False)
    ]
    assert current["note"] == "paper checked" and len(current["history"]) == 2

    refused = await client.post(
        "/admin/co2e-factors", data={**form, "0-grams": "-5"}, follow_redirects=False
    )
    assert refused.status_code == 422 and "Not saved" in refused.text
    after = (await client.get("/api/co2e-factors", headers=world.headers["emp-a"])).json()
    assert after["id"] == current["id"]  # nothing was saved

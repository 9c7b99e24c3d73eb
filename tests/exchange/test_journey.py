"""The whole exchange through the HTTP API, on SQLite and PostgreSQL: campaign → members →
stations and products → drop-offs (auto and steward) → balance → order → QR → pickup →
the ledger exactly as expected → the export verifies offline."""

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api import cli, db
from exchange.points import ISSUANCE, REDEMPTION, user_account
from ledger import proofs, queries
from ledger.verify import verify_export
from tests.conftest import PASSWORD, World, login
from tests.exchange.helpers import (
    Client,
    add_product,
    add_station,
    decode_png,
    drop,
    me,
    open_campaign,
    order,
)


async def import_members(
    client: Client, world: World, run_jobs: Callable[[], Awaitable[int]]
) -> dict[str, dict[str, str]]:
    csv = f"username,display_name,password\nzhang.san,张三,{PASSWORD}\nli.si,李四,{PASSWORD}\n"
    response = await client.post(
        f"/api/departments/{world.dept_a}/members/import",
        files={"file": ("members.csv", csv.encode(), "text/csv")},
        headers=world.headers["coord-a"],
    )
    assert response.status_code == 202, response.text
    assert await run_jobs() == 1
    job = await client.get(response.headers["location"], headers=world.headers["coord-a"])
    assert job.json()["result"]["imported"] == 2
    return {name: await login(client, name) for name in ("zhang.san", "li.si")}


async def test_the_whole_journey_from_campaign_to_pickup_leaves_an_exact_verifiable_ledger(
    client: Client,
    world: World,
    session_factory: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    run_jobs: Callable[[], Awaitable[int]],
) -> None:
    admin, coordinator = world.headers["admin"], world.headers["coord-a"]

    # The admin opens a platform-wide campaign that credits at once.
    await open_campaign(client, admin, policy="auto", cap=1000)

    # The coordinator imports members, sets up collection points and the village catalog.
    employees = await import_members(client, world, run_jobs)
    zhang = employees["zhang.san"]
    hall = await add_station(client, coordinator, world.dept_a, "一楼大厅")
    await add_station(client, coordinator, world.dept_a, "三楼打印室")
    rice = await add_product(client, coordinator, world.dept_a, name="石门大米", price=100, stock=5)
    await add_product(client, coordinator, world.dept_a, name="平江茶叶", price=80, stock=3)

    # The employee scans the poster and logs drop-offs: 2.5 kg of paper at 40/kg and 3 ink
    # cartridges at 20 each, credited at once.
    response = await client.get(f"/api/stations/{hall['code']}", headers=zhang)
    assert response.status_code == 200 and response.json()["name"] == "一楼大厅"
    paper = await drop(client, zhang, hall["code"], "paper", 2500)
    assert paper.status_code == 201, paper.text
    assert paper.json()["status"] == "confirmed"
    assert paper.json()["points"] == 100 and paper.json()["spendable"] is True
    ink = await drop(client, zhang, hall["code"], "ink_cartridge", 3)
    assert ink.json()["points"] == 60
    assert await me(client, zhang) == {"available": 160, "pending_credit": 0, "held": 0}

    # The department switches to steward verification: credits wait for a coordinator.
    await open_campaign(
        client, admin, policy="steward", cap=1000, department_id=world.dept_a, name="部门核验周"
    )
    weighed = await drop(client, zhang, hall["code"], "paper", 1000)
    assert weighed.status_code == 201, weighed.text
    assert weighed.json()["status"] == "pending" and weighed.json()["spendable"] is False
    assert weighed.json()["points"] == 40
    doubtful = await drop(client, zhang, hall["code"], "phone", 1)
    assert await me(client, zhang) == {"available": 160, "pending_credit": 140, "held": 0}

    pending = await client.get("/api/dropoffs?status=pending", headers=coordinator)
    assert {d["id"] for d in pending.json()["items"]} == {
        weighed.json()["id"],
        doubtful.json()["id"],
    }
    # The steward weighs 1.2 kg: 48 points, the 40 pending posted and 8 more credited.
    confirmed = await client.post(
        f"/api/dropoffs/{weighed.json()['id']}/confirm",
        json={"quantity": 1200},
        headers=coordinator,
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["points"] == 48 and confirmed.json()["spendable"] is True
    rejected = await client.post(
        f"/api/dropoffs/{doubtful.json()['id']}/reject",
        json={"reason": "不是手机，是计算器"},
        headers=coordinator,
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert await me(client, zhang) == {"available": 208, "pending_credit": 0, "held": 0}

    # Two bags of rice: 200 points held, two units of stock taken.
    placed = await order(client, zhang, rice["id"], 2)
    assert placed.status_code == 201, placed.text
    placed_order = placed.json()
    assert placed_order["status"] == "reserved" and placed_order["points"] == 200
    assert await me(client, zhang) == {"available": 8, "pending_credit": 0, "held": 200}
    stock = await client.get(f"/api/products/{rice['id']}", headers=zhang)
    assert stock.json()["stock"] == 3

    # The order page's QR decodes to the pickup URL, which the desk scans.
    qr = await client.get(f"/api/orders/{placed_order['id']}/qr.png", headers=zhang)
    assert qr.status_code == 200 and qr.headers["content-type"] == "image/png"
    url = f"http://exchange.test/p/{placed_order['pickup_token']}"
    assert placed_order["pickup_url"] == url
    assert decode_png(qr.content) == [url]

    picked = await client.post("/api/pickups", json={"token": url}, headers=coordinator)
    assert picked.status_code == 200, picked.text
    assert picked.json()["status"] == "fulfilled"
    again = await client.post("/api/pickups", json={"token": url}, headers=coordinator)
    assert again.status_code == 409
    assert again.json()["title"] == "Already picked up"
    assert again.json()["fulfilled_by"] == "COORD-A"
    assert await me(client, zhang) == {"available": 8, "pending_credit": 0, "held": 0}

    zhang_id = await user_id(client, zhang)
    await check_ledger(client, session_factory, world, placed_order, zhang_id)
    await export_verifies_offline(client, world, tmp_path)


async def export_verifies_offline(client: Client, world: World, tmp_path: Path) -> None:
    """What an auditor downloads is enough for `exchange ledger verify` to check it all."""
    auditor = world.headers["auditor"]
    base = f"/api/departments/{world.dept_a}/ledger"
    head = await client.get(f"{base}/tree-head", headers=auditor)
    assert head.status_code == 200, head.text
    export = await client.get(
        f"{base}/export?tree_size={head.json()['tree_size']}", headers=auditor
    )
    assert export.status_code == 200, export.text
    (tmp_path / "export.jsonl").write_bytes(export.content)
    (tmp_path / "head.json").write_text(head.text)
    (tmp_path / "keys.json").write_text((await client.get("/api/keys")).text)
    result = CliRunner().invoke(
        cli.main,
        [
            "ledger",
            "verify",
            str(tmp_path / "export.jsonl"),
            "--tree-head",
            str(tmp_path / "head.json"),
            "--keys",
            str(tmp_path / "keys.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: 9 entries")


async def user_id(client: Client, headers: dict[str, str]) -> str:
    return (await client.get("/api/me", headers=headers)).json()["id"]


async def check_ledger(
    client: Client,
    session_factory: async_sessionmaker[AsyncSession],
    world: World,
    placed_order: dict[str, Any],
    zhang_id: str,
) -> None:
    zhang = user_account(zhang_id)
    async with db.transaction(session_factory) as session:
        page = await queries.list_entries(session, world.dept_a, limit=100)
        entries = [
            (e.kind, e.debit_account, e.credit_account, e.amount, e.reference.split(":")[0])
            for e in page.entries
        ]
        assert entries == [
            ("direct", ISSUANCE, zhang, 100, "dropoff"),  # paper, auto
            ("direct", ISSUANCE, zhang, 60, "dropoff"),  # ink, auto
            ("pending", ISSUANCE, zhang, 40, "dropoff"),  # paper, steward
            ("pending", ISSUANCE, zhang, 100, "dropoff"),  # phone, steward
            ("post", ISSUANCE, zhang, 40, "dropoff"),  # confirmed ...
            ("direct", ISSUANCE, zhang, 8, "dropoff"),  # ... re-weighed heavier
            ("void", ISSUANCE, zhang, 100, "dropoff"),  # the phone rejected
            ("pending", zhang, REDEMPTION, 200, "order"),  # the hold
            ("post", zhang, REDEMPTION, 200, "order"),  # picked up
        ]
        assert page.entries[-1].reference == f"order:{placed_order['id']}"
        balances = {
            account: await queries.balance(session, world.dept_a, account)
            for account in (ISSUANCE, REDEMPTION, zhang)
        }
        assert balances[zhang].posted == 8 and balances[zhang].available == 8
        assert balances[ISSUANCE].posted == -208
        assert balances[REDEMPTION].posted == 200
        assert sum(b.posted for b in balances.values()) == 0
        assert all(b.debits_pending == b.credits_pending == 0 for b in balances.values())

        keys = client.app.state.settings.keyring
        head = await proofs.tree_head(session, world.dept_a, keys)
        lines = [line async for line in queries.export_lines(session, world.dept_a)]
    assert head.tree_size == 9
    assert verify_export(lines, head, keys) == []

"""A campaign's points expiry end to end: set through the API, the reminder mailed before the
expiry, the expiry a ledger entry of its own that `exchange ledger verify` accepts with the
signed tree head, and balances as of any earlier time unchanged by it."""

from datetime import datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.cli import main
from api.notifications import sweep_once
from api.settings import Settings
from catalog.models import utcnow
from tests.conftest import World
from tests.exchange.helpers import (
    Client,
    add_product,
    add_station,
    credit,
    me,
    open_campaign,
    order,
)
from tests.notify.conftest import Deliver
from tests.notify.fakes import Mailbox


async def test_the_reminder_is_mailed_before_the_points_expire_and_the_books_still_verify(
    client: Client,
    world: World,
    mailbox: Mailbox,
    deliver: Deliver,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    tmp_path: Path,
) -> None:
    admin, emp = world.headers["admin"], world.headers["emp-a"]
    campaign = await open_campaign(client, admin, policy="auto")
    ends = datetime.fromisoformat(campaign["ends_at"])
    patched = await client.patch(
        f"/api/campaigns/{campaign['id']}", json={"points_expire_days": 10}, headers=admin
    )
    assert patched.status_code == 200, patched.text
    expires = datetime.fromisoformat(patched.json()["points_expire"])
    assert expires == ends + timedelta(days=10)
    await client.put("/api/me/notifications", json={"email": "emp-a@example.cn"}, headers=emp)
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    product = await add_product(client, world.headers["coord-a"], world.dept_a, price=100)
    await credit(client, world, "emp-a", 400, station["code"])
    assert (await order(client, emp, product["id"])).status_code == 201  # 100 held
    before = utcnow()

    # Seven days before (EXCHANGE_POINTS_EXPIRY_REMINDER_DAYS), the reminder.
    reminder_time = expires - timedelta(days=7)
    await sweep_once(session_factory, settings, now=reminder_time)
    await sweep_once(session_factory, settings, now=reminder_time + timedelta(hours=1))
    await deliver(reminder_time)
    reminders = [m for m in mailbox.received if "过期" in str(m.message["Subject"])]
    assert len(reminders) == 1
    assert (
        reminders[0].message["Subject"]
        == "300 积分将于 " + expires.astimezone(_shanghai()).strftime("%Y-%m-%d") + " 过期"
    )
    assert "http://exchange.test/catalog" in reminders[0].text
    assert (await me(client, emp))["available"] == 300  # nothing expired yet

    # At the time, the points expire: the held 100 stay held.
    await sweep_once(session_factory, settings, now=expires)
    await sweep_once(session_factory, settings, now=expires + timedelta(days=1))
    assert await me(client, emp) == {"available": 0, "pending_credit": 0, "held": 100}

    base = f"/api/departments/{world.dept_a}/ledger"
    auditor = world.headers["audit-a"]
    entries = (await client.get(f"{base}/entries?kind=direct", headers=auditor)).json()["items"]
    [expiry] = [e for e in entries if e["credit_account"] == "expiry"]
    assert expiry["amount"] == 300 and expiry["reference"] == f"expiry:{campaign['id']}"
    account = f"user:{(await client.get('/api/me', headers=emp)).json()['id']}"
    then = await client.get(
        f"{base}/accounts/{account}", params={"as_of": before.isoformat()}, headers=auditor
    )
    assert then.status_code == 200, then.text
    assert then.json()["available"] == 300  # as of before the expiry: as it was

    head = await client.get(f"{base}/tree-head", headers=auditor)
    export = await client.get(
        f"{base}/export?tree_size={head.json()['tree_size']}", headers=auditor
    )
    keys = await client.get("/api/keys")
    for name, response in (("head.json", head), ("export.jsonl", export), ("keys.json", keys)):
        (tmp_path / name).write_bytes(response.content)
    result = CliRunner().invoke(
        main,
        ["ledger", "verify", str(tmp_path / "export.jsonl"), "--tree-head",
         str(tmp_path / "head.json"), "--keys", str(tmp_path / "keys.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK:")


def _shanghai():  # type: ignore[no-untyped-def]
    from exchange.notify.texts import SHANGHAI

    return SHANGHAI


async def test_a_campaigns_expiry_is_checked_and_cannot_change_once_its_points_expired(
    client: Client,
    world: World,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    admin = world.headers["admin"]
    campaign = await open_campaign(client, admin, policy="auto")
    url = f"/api/campaigns/{campaign['id']}"
    ends = datetime.fromisoformat(campaign["ends_at"])
    for body, field in (
        ({"points_expire_days": 3, "points_expire_at": (ends + timedelta(days=1)).isoformat()},
         "points_expire_days"),
        ({"points_expire_at": (ends - timedelta(hours=1)).isoformat()}, "points_expire_at"),
    ):  # fmt: skip
        refused = await client.patch(url, json=body, headers=admin)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == field
    assert (
        await client.patch(url, json={"points_expire_days": -1}, headers=admin)
    ).status_code == 400
    set_ = await client.patch(url, json={"points_expire_days": 0}, headers=admin)
    assert set_.json()["points_expire"] == campaign["ends_at"]
    never = await client.patch(url, json={"points_expire_days": None}, headers=admin)
    assert never.json()["points_expire"] is None
    await client.patch(url, json={"points_expire_days": 1}, headers=admin)
    await sweep_once(session_factory, settings, now=ends + timedelta(days=2))
    late = await client.patch(url, json={"points_expire_days": 5}, headers=admin)
    assert late.status_code == 422
    assert "expired already" in late.json()["detail"]
    renamed = await client.patch(url, json={"name": "改名"}, headers=admin)
    assert renamed.status_code == 200 and renamed.json()["points_expire_days"] == 1

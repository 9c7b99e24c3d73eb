"""Receipts (issue 16): an employee's own entries with the signed head and inclusion proof,
readable by no one else, that verify without the service, and fail with a clear reason
when anything in them was changed or swapped."""

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from api.cli import main as cli
from api.settings import Settings
from ledger.receipts import FORMAT, check_receipt
from ledger.signing import KeyRing
from tests.conftest import World
from tests.exchange.helpers import Client, add_product, add_station, drop, open_campaign, order


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Nothing integrates by itself during a test: entries stay pending until a request asks
    # for a head, so what "pending" means is seen deterministically.
    return settings.model_copy(update={"integration_interval_seconds": 60})


@pytest.fixture
async def history(client: Client, world: World) -> dict[str, Any]:
    """emp-a: a drop-off credited (4 ink cartridges, 80 points), an order held and then
    cancelled; emp-a2 and emp-b: a drop-off each."""
    admin, coord = world.headers["admin"], world.headers["coord-a"]
    await open_campaign(client, admin)
    station = await add_station(client, coord, world.dept_a)
    station_b = await add_station(client, world.headers["coord-b"], world.dept_b)
    product = await add_product(client, coord, world.dept_a, price=60)
    code = station["code"]
    assert (await drop(client, world.headers["emp-a"], code, "ink_cartridge", 4)).is_success
    placed = await order(client, world.headers["emp-a"], product["id"])
    assert placed.status_code == 201, placed.text
    cancelled = await client.post(
        f"/api/orders/{placed.json()['id']}/cancel", headers=world.headers["emp-a"]
    )
    assert cancelled.status_code == 200, cancelled.text
    assert (await drop(client, world.headers["emp-a2"], code, "ink_cartridge", 1)).is_success
    assert (await drop(client, world.headers["emp-b"], station_b["code"], "phone", 1)).is_success
    return {"product": product, "station": station}


async def receipts_of(client: Client, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get("/api/me/receipts", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def jwks(client: Client) -> KeyRing:
    return KeyRing.from_jwks((await client.get("/api/keys")).json())


def cli_verify(
    tmp_path: Path, receipt: dict[str, Any], jwks: dict[str, Any], *options: str
) -> tuple[int, str]:
    """`exchange receipt verify` on the receipt, as an employee runs it: files, no service."""
    (tmp_path / "receipt.json").write_text(json.dumps(receipt, ensure_ascii=False))
    (tmp_path / "keys.json").write_text(json.dumps(jwks))
    args = ["receipt", "verify", str(tmp_path / "receipt.json"), *options, "--jwks"]
    result = CliRunner().invoke(cli, [*args, str(tmp_path / "keys.json")])
    return result.exit_code, result.output


def entry_of(receipt: dict[str, Any]) -> bytes:
    return base64.b64decode(receipt["entry"])


async def test_my_receipts_are_newest_first_in_words_and_pending_until_a_head_covers_them(
    client: Client, world: World, history: dict[str, Any]
) -> None:
    emp = world.headers["emp-a"]
    page = await receipts_of(client, emp)
    assert [r["pending"] for r in page["items"]] == [True, True, True]
    assert all(r["tree_head"] is None and r["inclusion_proof"] is None for r in page["items"])
    assert [r["description"]["en"] for r in page["items"]] == [
        "Order cancelled or expired: 60 held points released",
        "Order placed: 60 points held",
        "Drop-off credited: 80 points",
    ]
    assert page["items"][2]["description"]["zh-CN"] == "投放已入账：80 积分"
    seqs = [r["seq"] for r in page["items"]]
    assert seqs == sorted(seqs, reverse=True)

    head = await client.get(f"/api/departments/{world.dept_a}/ledger/tree-head", headers=emp)
    assert head.status_code == 200
    keys = await jwks(client)
    first = await receipts_of(client, emp, limit=2)
    second = await receipts_of(client, emp, limit=2, after=first["next"])
    assert [r["seq"] for r in first["items"] + second["items"]] == seqs
    assert second["next"] is None
    for receipt in first["items"] + second["items"]:
        assert receipt["format"] == FORMAT and not receipt["pending"]
        assert receipt["tree_head"] == {k: v for k, v in head.json().items() if k != "cosignatures"}
        check = check_receipt(receipt, keys)
        assert check.ok, check.problems
        assert check.entry is not None and check.entry["seq"] == receipt["seq"]


async def test_one_receipt_is_completed_on_demand_and_verifies_with_the_cli(
    client: Client, world: World, history: dict[str, Any], tmp_path: Path
) -> None:
    emp = world.headers["emp-a"]
    newest = (await receipts_of(client, emp))["items"][0]
    assert newest["pending"]
    response = await client.get(f"/api/me/receipts/{newest['seq']}", headers=emp)
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert not receipt["pending"] and receipt["tree_head"]["tree_size"] >= receipt["seq"]
    assert entry_of(receipt) == entry_of(newest)
    assert check_receipt(receipt, await jwks(client)).ok
    code, output = cli_verify(tmp_path, receipt, (await client.get("/api/keys")).json())
    assert code == 0, output
    assert output.startswith(f"OK: entry {receipt['seq']} of department {world.dept_a} is in")
    assert "Order cancelled or expired: 60 held points released" in output
    assert f"of the log's first {receipt['tree_head']['tree_size']} entries" in output
    keys = (await client.get("/api/keys")).json()
    code, output = cli_verify(tmp_path, receipt, keys, "--language", "zh")
    assert code == 0 and "订单已取消或过期：60 冻结积分已退回" in output, output


async def test_another_employees_receipt_is_not_found_and_a_coordinator_sees_only_their_own(
    client: Client, world: World, history: dict[str, Any]
) -> None:
    seq = (await receipts_of(client, world.headers["emp-a"]))["items"][0]["seq"]
    for other in ("emp-a2", "coord-a", "emp-b"):
        response = await client.get(f"/api/me/receipts/{seq}", headers=world.headers[other])
        assert response.status_code == 404, (other, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await receipts_of(client, world.headers["coord-a"]))["items"] == []
    mine = await receipts_of(client, world.headers["emp-a2"])
    assert len(mine["items"]) == 1
    missing = await client.get("/api/me/receipts/99999", headers=world.headers["emp-a"])
    assert missing.status_code == 404
    staff = await client.get("/api/me/receipts", headers=world.headers["auditor"])
    assert staff.status_code == 403


async def complete(client: Client, headers: dict[str, str], seq: int) -> dict[str, Any]:
    response = await client.get(f"/api/me/receipts/{seq}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_changed_or_swapped_receipt_fails_with_the_reason(
    client: Client, world: World, history: dict[str, Any], tmp_path: Path
) -> None:
    emp = world.headers["emp-a"]
    keys = await jwks(client)
    published = (await client.get("/api/keys")).json()

    def refused(receipt: dict[str, Any], reason: str, jwks: dict[str, Any] = published) -> None:
        problems = " ".join(check_receipt(receipt, KeyRing.from_jwks(jwks)).problems)
        assert reason in problems
        code, output = cli_verify(tmp_path, receipt, jwks)
        assert code == 1 and output.startswith("FAILED: ") and reason in output, output

    oldest_seq = (await receipts_of(client, emp))["items"][-1]["seq"]
    receipt = await complete(client, emp, oldest_seq)
    # A later head (one more drop-off) gives the same entry a proof from another tree.
    assert (await drop(client, emp, history["station"]["code"], "ink_cartridge", 1)).is_success
    newer_seq = (await receipts_of(client, emp))["items"][0]["seq"]
    await complete(client, emp, newer_seq)
    later = (await receipts_of(client, emp))["items"][-1]
    assert later["tree_head"]["tree_size"] > receipt["tree_head"]["tree_size"]

    changed = copy.deepcopy(receipt)
    raw = entry_of(receipt).replace(b'"amount":80', b'"amount":90')
    assert raw != entry_of(receipt)
    changed["entry"] = base64.b64encode(raw).decode()
    refused(changed, "the entry was changed")

    swapped = copy.deepcopy(receipt)
    swapped["inclusion_proof"] = later["inclusion_proof"]
    refused(swapped, "the proof is from another tree")

    unknown = check_receipt(receipt, KeyRing.ephemeral())
    assert unknown.problems == [
        f"the tree head is signed by key {receipt['tree_head']['key_id']}, which is not among "
        "the published keys given"
    ]
    refused(receipt, "which is not among the published keys", KeyRing.ephemeral().jwks())

    b_seq = (await receipts_of(client, world.headers["emp-b"]))["items"][0]["seq"]
    foreign = copy.deepcopy(receipt)
    foreign["tree_head"] = (await complete(client, world.headers["emp-b"], b_seq))["tree_head"]
    refused(foreign, "a head from another department")

    assert check_receipt(receipt, keys).ok  # the original still verifies

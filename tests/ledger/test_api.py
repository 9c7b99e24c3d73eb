"""The ledger endpoints of API.md: who may see what, and that what they see verifies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.cli import main as cli
from api.db import transaction
from ledger import AccountFlags, merkle, open_account, post_pending, transfer
from ledger.signing import KeyRing
from ledger.treehead import TreeHead
from ledger.verify import verify_export
from tests.conftest import World
from tests.ledger.conftest import at

Client = AsyncTestClient[Litestar]


async def user_id(client: Client, headers: dict[str, str]) -> str:
    return (await client.get("/api/me", headers=headers)).json()["id"]


@pytest.fixture
async def books(
    client: Client, world: World, session_factory: async_sessionmaker[AsyncSession]
) -> dict[str, Any]:
    """Department A's ledger: emp-a earns 100, orders 30 (picked up), emp-a2 earns 5."""
    emp = await user_id(client, world.headers["emp-a"])
    emp2 = await user_id(client, world.headers["emp-a2"])
    d = world.dept_a
    async with transaction(session_factory) as s:
        await open_account(s, d, "issuance")
        await open_account(s, d, "redemption")
        for u in (emp, emp2):
            await open_account(s, d, f"user:{u}", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
        await transfer(
            s,
            ledger_id=d,
            debit="issuance",
            credit=f"user:{emp}",
            amount=100,
            idempotency_key="d1",
            actor="coord-a",
            reference="dropoff:1",
            now=at(0),
        )
        h = await transfer(
            s,
            ledger_id=d,
            debit=f"user:{emp}",
            credit="redemption",
            amount=30,
            idempotency_key="o1",
            actor="emp-a",
            reference="order:1",
            pending=True,
            now=at(1),
        )
        await post_pending(
            s, ledger_id=d, pending_seq=h.seq, idempotency_key="p1", actor="coord-a", now=at(2)
        )
        await transfer(
            s,
            ledger_id=d,
            debit="issuance",
            credit=f"user:{emp2}",
            amount=5,
            idempotency_key="d2",
            actor="coord-a",
            reference="dropoff:2",
            now=at(3),
        )
    # the world was written from this loop; the app's pool must not carry connections across
    await client.app.state.engine.dispose()
    return {"emp": emp, "emp2": emp2}


def base(world: World, dept: str | None = None) -> str:
    return f"/api/departments/{dept or world.dept_a}/ledger"


async def test_auditor_lists_entries_with_filters_and_keyset_pages(
    client: Client, world: World, books: dict
) -> None:
    h = world.headers["audit-a"]
    r = await client.get(f"{base(world)}/entries", params={"limit": 3}, headers=h)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [e["seq"] for e in page["items"]] == [1, 2, 3] and page["next"] == "3"
    r = await client.get(f"{base(world)}/entries", params={"after": page["next"]}, headers=h)
    assert [e["seq"] for e in r.json()["items"]] == [4] and r.json()["next"] is None
    r = await client.get(f"{base(world)}/entries", params={"reference": "order:1"}, headers=h)
    assert [(e["seq"], e["kind"]) for e in r.json()["items"]] == [(2, "pending"), (3, "post")]
    r = await client.get(
        f"{base(world)}/entries",
        params={"from": "2026-06-01T08:01:00Z", "to": "2026-06-01T08:03:00Z"},
        headers=h,
    )
    assert [e["seq"] for e in r.json()["items"]] == [2, 3]
    account = f"user:{books['emp2']}"
    r = await client.get(f"{base(world)}/entries", params={"account": account}, headers=h)
    assert [e["seq"] for e in r.json()["items"]] == [4]
    assert r.json()["items"][0]["time"] == "2026-06-01T08:03:00.000000Z"


async def test_entries_are_for_auditors_of_that_department_only(
    client: Client, world: World, books: dict
) -> None:
    assert (
        await client.get(f"{base(world)}/entries", headers=world.headers["emp-a"])
    ).status_code == 403
    r = await client.get(f"{base(world, world.dept_a)}/entries", headers=world.headers["auditor"])
    assert r.status_code == 200 and len(r.json()["items"]) == 4
    # another department's ledger looks exactly like a missing one
    other = await client.get(
        f"{base(world, world.dept_b)}/entries", headers=world.headers["audit-a"]
    )
    missing = await client.get(f"{base(world, 'nope')}/entries", headers=world.headers["audit-a"])
    assert other.status_code == missing.status_code == 404
    assert other.json()["detail"] == missing.json()["detail"]


async def test_employee_sees_own_balance_and_not_others(
    client: Client, world: World, books: dict
) -> None:
    me = f"{base(world)}/accounts/user:{books['emp']}"
    r = await client.get(me, headers=world.headers["emp-a"])
    assert r.status_code == 200, r.text
    assert (r.json()["available"], r.json()["posted"]) == (70, 70)
    r = await client.get(me, params={"as_of_seq": 2}, headers=world.headers["emp-a"])
    assert (r.json()["posted"], r.json()["available"], r.json()["as_of_seq"]) == (100, 70, 2)
    r = await client.get(
        me, params={"as_of": "2026-06-01T08:00:30Z"}, headers=world.headers["emp-a"]
    )
    assert (r.json()["available"], r.json()["as_of_seq"]) == (100, 1)
    other = f"{base(world)}/accounts/user:{books['emp2']}"
    assert (await client.get(other, headers=world.headers["emp-a"])).status_code == 404
    r = await client.get(f"{base(world)}/accounts/issuance", headers=world.headers["audit-a"])
    assert r.json()["posted"] == -105
    r = await client.get(f"{base(world)}/accounts/nobody", headers=world.headers["audit-a"])
    assert r.status_code == 404 and r.json()["code"] == "ledger.account_not_found"


async def test_tree_head_and_inclusion_proof_verify_against_the_published_keys(
    client: Client, world: World, books: dict
) -> None:
    h = world.headers["emp-a"]
    head = (await client.get(f"{base(world)}/tree-head", headers=h)).json()
    assert head["tree_size"] == 4
    jwks = (await client.get("/api/keys")).json()
    assert TreeHead.from_json(head).verify(KeyRing.from_jwks(jwks))
    r = await client.get(f"{base(world)}/proofs/inclusion", params={"seq": 2}, headers=h)
    p = r.json()
    path = [bytes.fromhex(x) for x in p["audit_path"]]
    assert merkle.verify_inclusion(
        p["leaf_index"],
        p["tree_size"],
        bytes.fromhex(p["leaf_hash"]),
        path,
        bytes.fromhex(head["root_hash"]),
    )
    r = await client.get(f"{base(world)}/proofs/inclusion", params={"seq": 9}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "ledger.tree_size_out_of_range"
    empty = (
        await client.get(f"{base(world, world.dept_b)}/tree-head", headers=world.headers["emp-b"])
    ).json()
    assert empty["tree_size"] == 0 and empty["root_hash"] == merkle.EMPTY_ROOT.hex()


async def test_consistency_proof_shows_the_log_only_grew_to_auditors_and_members(
    client: Client, world: World, books: dict
) -> None:
    h = world.headers["audit-a"]
    old = (await client.get(f"{base(world)}/tree-head", params={"tree_size": 3}, headers=h)).json()
    new = (await client.get(f"{base(world)}/tree-head", headers=h)).json()
    r = await client.get(f"{base(world)}/proofs/consistency", params={"first": 3}, headers=h)
    c = r.json()
    assert (c["first"], c["second"]) == (3, 4)
    assert merkle.verify_consistency(
        3,
        4,
        bytes.fromhex(old["root_hash"]),
        bytes.fromhex(new["root_hash"]),
        [bytes.fromhex(x) for x in c["consistency_path"]],
    )
    # Members read it too (their browser checks the log only grew since their last visit);
    # another department's member finds no such ledger.
    r = await client.get(
        f"{base(world)}/proofs/consistency", params={"first": 3}, headers=world.headers["emp-a"]
    )
    assert r.status_code == 200 and r.json() == c
    r = await client.get(
        f"{base(world)}/proofs/consistency", params={"first": 3}, headers=world.headers["emp-b"]
    )
    assert r.status_code == 404


async def test_export_streams_ndjson_that_the_cli_verifies(
    client: Client, world: World, books: dict, tmp_path: Path
) -> None:
    h = world.headers["audit-a"]
    r = await client.get(f"{base(world)}/export", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = r.content.splitlines(keepends=True)
    assert len(lines) == 4
    head = (await client.get(f"{base(world)}/tree-head", headers=h)).json()
    keys = (await client.get("/api/keys")).json()
    assert verify_export(lines, TreeHead.from_json(head), KeyRing.from_jwks(keys)) == []
    assert (
        len(
            (
                await client.get(f"{base(world)}/export", params={"tree_size": 2}, headers=h)
            ).content.splitlines()
        )
        == 2
    )

    (tmp_path / "export.jsonl").write_bytes(r.content)
    (tmp_path / "head.json").write_text(json.dumps(head))
    (tmp_path / "keys.json").write_text(json.dumps(keys))
    args = [
        "ledger",
        "verify",
        str(tmp_path / "export.jsonl"),
        "--tree-head",
        str(tmp_path / "head.json"),
        "--keys",
        str(tmp_path / "keys.json"),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "4 entries" in result.output and "OK" in result.output

    tampered = r.content.replace(b'"amount":100,', b'"amount":1000,', 1)
    (tmp_path / "export.jsonl").write_bytes(tampered)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "entry seq 1: [balance]" in result.output and "[root]" in result.output

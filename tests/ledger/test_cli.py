"""`exchange ledger sweep` and `exchange ledger verify` from the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from api import db
from api.cli import main
from ledger import balance, export_lines, merkle, transfer, tree_head
from ledger.signing import KeyRing
from tests.ledger.conftest import DEPT, at, credit, open_dept


def test_ledger_sweep_voids_expired_holds(database_url: str, tmp_path: Path) -> None:
    async def given_an_expired_hold() -> None:
        engine = db.create_engine(database_url)
        async with db.transaction(db.create_session_factory(engine)) as s:
            await open_dept(s)
            await credit(s, "alice", 50, "d1", now=at(0))
            await transfer(
                s,
                ledger_id=DEPT,
                debit="user:alice",
                credit="redemption",
                amount=20,
                idempotency_key="o1",
                actor="alice",
                pending=True,
                expires_at=at(1),
                now=at(0),
            )
        await engine.dispose()

    async def available() -> int:
        engine = db.create_engine(database_url)
        async with db.create_session_factory(engine)() as s:
            b = await balance(s, DEPT, "user:alice")
        await engine.dispose()
        return b.available

    asyncio.run(given_an_expired_hold())
    assert asyncio.run(available()) == 30
    env = {"EXCHANGE_DATABASE_URL": database_url, "EXCHANGE_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(main, ["ledger", "sweep"], env=env)
    assert result.exit_code == 0, result.output
    assert "voided 1 pending transfer(s)" in result.output
    assert asyncio.run(available()) == 50


@pytest.mark.parametrize("processes", ["1", "2"])
def test_ledger_verify_says_ok_with_the_count_or_lists_every_finding(
    database_url: str, tmp_path: Path, processes: str
) -> None:
    ring = KeyRing.ephemeral()

    async def a_signed_export() -> None:
        engine = db.create_engine(database_url)
        factory = db.create_session_factory(engine)
        async with db.transaction(factory) as s:
            await open_dept(s)
            for i in range(5):
                await credit(s, "alice", 10 + i, f"d{i}", now=at(i))
        async with factory() as s:
            lines = [line async for line in export_lines(s, DEPT)]
            head = await tree_head(s, DEPT, ring, now=at(9))
        await engine.dispose()
        (tmp_path / "export.jsonl").write_bytes(b"".join(lines))
        (tmp_path / "head.json").write_text(json.dumps(head.to_json()))
        (tmp_path / "keys.json").write_text(json.dumps(ring.jwks()))

    asyncio.run(a_signed_export())
    args = ["ledger", "verify", str(tmp_path / "export.jsonl"), "--processes", processes]
    args += ["--tree-head", str(tmp_path / "head.json"), "--keys", str(tmp_path / "keys.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output == "OK: 5 entries, every rule holds (signed tree head)\n"

    export = tmp_path / "export.jsonl"
    export.write_bytes(export.read_bytes().replace(b'"amount":12', b'"amount":13'))
    root = merkle.root_of_leaves(merkle.leaf_hash(x) for x in export.read_bytes().splitlines())
    signed = json.loads((tmp_path / "head.json").read_text())["root_hash"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [
        "entry seq 3: [balance] debit account 'issuance' stated [0, 33, 0, 0], "
        "replay gives [0, 34, 0, 0]",
        "entry seq 3: [balance] credit account 'user:alice' stated [0, 0, 0, 33], "
        "replay gives [0, 0, 0, 34]",
        f"log: [root] first 5 entries hash to {root.hex()}, the tree head says {signed}",
        "FAILED: 3 finding(s) in 5 entries",
    ]

    (tmp_path / "head.json").write_text("{}")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "FAILED: 1 finding(s)"

"""`exchange ledger sweep` from the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner

from api import db
from api.cli import main
from ledger import balance, transfer
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

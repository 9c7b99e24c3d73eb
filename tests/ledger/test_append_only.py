"""The database itself refuses to change or remove ledger entries, Merkle nodes, signed tree
heads and witnesses' cosignatures of them (tests/ledger/test_witness_api.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from ledger import integration
from ledger.signing import KeyRing
from tests.ledger.conftest import credit, open_dept

Factory = async_sessionmaker[AsyncSession]

STATEMENTS = [
    "UPDATE ledger_entries SET amount = amount + 1",
    "UPDATE ledger_entries SET reference = 'x' WHERE seq = 1",
    "DELETE FROM ledger_entries",
    "UPDATE ledger_merkle_nodes SET hash = hash",
    "DELETE FROM ledger_merkle_nodes WHERE level = 0",
    "UPDATE ledger_tree_heads SET tree_size = 2",
    "DELETE FROM ledger_tree_heads",
]


@pytest.mark.parametrize("statement", STATEMENTS)
async def test_database_refuses_to_rewrite_the_log(
    session_factory: Factory, dept: str, statement: str
) -> None:
    async with transaction(session_factory) as s:
        await credit(s, "alice", 5, "d1")
        await integration.integrate(s, dept, KeyRing.ephemeral())
    with pytest.raises(DBAPIError, match="append-only"):
        async with transaction(session_factory) as s:
            await (await s.connection()).execute(text(statement))
    async with session_factory() as s:
        conn = await s.connection()
        assert (await conn.execute(text("SELECT amount FROM ledger_entries"))).scalar() == 5
        assert (await conn.execute(text("SELECT count(*) FROM ledger_merkle_nodes"))).scalar() == 1
        assert (await conn.execute(text("SELECT count(*) FROM ledger_tree_heads"))).scalar() == 1


async def test_postgres_refuses_truncate_of_the_log(pg_session_factory: Factory) -> None:
    async with transaction(pg_session_factory) as s:
        await open_dept(s)
        await credit(s, "alice", 5, "d1")
        await integration.integrate(s, "dept-a", KeyRing.ephemeral())
    for table in (
        "ledger_entries",
        "ledger_merkle_nodes",
        "ledger_tree_heads",
        "ledger_cosignatures",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with transaction(pg_session_factory) as s:
                await (await s.connection()).execute(text(f"TRUNCATE {table}"))

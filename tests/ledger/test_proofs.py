"""Tree heads and proofs served from the database equal the RFC 9162 definitions over the
exported entries, for every size of a small log."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from ledger import (
    consistency_proof,
    export_lines,
    inclusion_proof,
    integration,
    merkle,
    root_hash,
    tree_head,
)
from ledger import errors as E
from ledger.signing import KeyRing
from tests.ledger import rfc9162
from tests.ledger.conftest import at, credit

Factory = async_sessionmaker[AsyncSession]
SIZE = 37


async def grow(session_factory: Factory, n: int) -> list[bytes]:
    async with transaction(session_factory) as s:
        for i in range(n):
            await credit(s, "alice" if i % 3 else "bob", i + 1, f"d{i}", now=at(i))
    async with session_factory() as s:
        return [line.rstrip(b"\n") async for line in export_lines(s, "dept-a")]


async def test_roots_and_proofs_for_every_size_match_rfc9162(
    session_factory: Factory, dept: str
) -> None:
    data = await grow(session_factory, SIZE)
    async with session_factory() as s:
        for n in range(1, SIZE + 1):
            root = rfc9162.mth(data[:n])
            assert await root_hash(s, dept, n) == (n, root)
            for seq in range(1, n + 1):
                p = await inclusion_proof(s, dept, seq, n)
                assert p.leaf_hash == merkle.leaf_hash(data[seq - 1])
                assert p.path == rfc9162.path(seq - 1, data[:n])
            for m in range(1, n + 1):
                c = await consistency_proof(s, dept, m, n)
                assert c.path == rfc9162.proof(m, data[:n]), (m, n)
        assert await root_hash(s, dept) == (SIZE, rfc9162.mth(data))


async def test_a_proof_is_one_query_of_log_n_nodes(
    engine: AsyncEngine, session_factory: Factory, dept: str
) -> None:
    await grow(session_factory, SIZE)
    async with transaction(session_factory) as s:
        await integration.integrate(s, dept)
    statements: list[str] = []

    def record(conn, cursor, statement, params, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with session_factory() as s:
            await inclusion_proof(s, dept, 5, SIZE)  # against a known tree head
            against_known_head = list(statements)
            statements.clear()
            await inclusion_proof(s, dept, 5)  # against the current size
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    # every node of the proof in one query; for the current size, the head and tree first
    assert len(against_known_head) == 1 and "ledger_merkle_nodes" in against_known_head[0]
    assert len(statements) == 2 and "ledger_trees" in statements[0]


async def test_signed_tree_head_names_the_current_size_and_verifies(
    session_factory: Factory, dept: str
) -> None:
    data = await grow(session_factory, 5)
    ring = KeyRing.ephemeral()
    async with session_factory() as s:
        head = await tree_head(s, dept, ring, now=at(60))
        old = await tree_head(s, dept, ring, tree_size=3)
    assert (head.tree_size, head.root_hash, head.key_id) == (5, rfc9162.mth(data), ring.active.kid)
    assert head.verify(ring) and old.verify(ring) and old.root_hash == rfc9162.mth(data[:3])


async def test_proofs_outside_the_log_are_refused(session_factory: Factory, dept: str) -> None:
    await grow(session_factory, 4)
    async with session_factory() as s:
        for call in (
            inclusion_proof(s, dept, 5),
            inclusion_proof(s, dept, 1, 9),
            inclusion_proof(s, dept, 1, 2**70),
            inclusion_proof(s, dept, 0),
            consistency_proof(s, dept, 0, 3),
            consistency_proof(s, dept, 3, 5),
        ):
            with pytest.raises(E.TreeSizeOutOfRange):
                await call
        with pytest.raises(E.LedgerNotFound):
            await root_hash(s, "nope")

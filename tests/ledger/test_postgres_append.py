"""On PostgreSQL an append is one call of ``ledger_append`` (migration 0007), which encodes
the entry and hashes it into the Merkle tree itself: its bytes and hashes must be the Python
encoder's, byte for byte, or exports would stop verifying."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from api.db import transaction
from ledger import (
    AccountFlags,
    export_lines,
    merkle,
    open_account,
    post_pending,
    reverse,
    sweep_expired,
    transfer,
    void_pending,
)
from ledger.encoding import KINDS, MAX_INT, Entry, encode_entry
from ledger.models import LedgerEntry, LedgerHead, LedgerMerkleNode
from ledger.verify import verify_export
from tests.ledger.conftest import T0, at

E = LedgerEntry.__table__
N = LedgerMerkleNode.__table__
H = LedgerHead.__table__

# Quotes, backslashes, every escaped control, DEL, slashes, non-BMP, separators JSON
# libraries like to escape, a byte-order mark: the encoder must write each the same way.
NASTY = [
    'a "quoted" \\ back\\slash',
    "\n\r\t\b\f \x01\x07\x1f\x7f",
    "dropoff:é/中文/😀",
    "\u2028\u2029\ufeff</script>",
    "",
]

_TYPES = {"VARCHAR": "varchar", "BIGINT": "bigint", "INTEGER": "integer"}
_ROW = ", ".join(f"CAST(:{c.name} AS {_TYPES[str(c.type).split('(')[0]]})" for c in E.columns)
# The function applied to an arbitrary entry, not necessarily one in the table.
_PG_BYTES = text(
    f"SELECT convert_to(ledger_entry_json(ROW({_ROW})::ledger_entries), 'UTF8') AS b,"
    f" sha256(decode('00', 'hex') || convert_to(ledger_entry_json(ROW({_ROW})::ledger_entries),"
    " 'UTF8')) AS leaf"
)


@pytest.fixture
async def pg_engine_any(database_url: str) -> AsyncIterator[AsyncEngine]:
    if not database_url.startswith("postgresql"):
        pytest.skip("ledger_append is PostgreSQL's; SQLite appends in Python")
    engine = db.create_engine(database_url)
    yield engine
    await engine.dispose()


# PostgreSQL text holds no NUL and no lone surrogate; everything else is fair game.
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
counters = st.integers(0, MAX_INT)
entries = st.builds(
    Entry,
    ledger_id=texts,
    seq=st.integers(1, MAX_INT),
    kind=st.sampled_from(KINDS),
    time_us=st.integers(0, MAX_INT),
    debit_account=texts,
    credit_account=texts,
    amount=st.integers(1, MAX_INT),
    ref_seq=st.none() | st.integers(1, MAX_INT),
    expires_at_us=st.none() | st.integers(0, MAX_INT),
    reference=texts | st.sampled_from(NASTY),
    actor=texts,
    idempotency_key=texts,
    debit_flags=st.integers(0, 3),
    credit_flags=st.integers(0, 3),
    dr_debits_pending=counters,
    dr_debits_posted=counters,
    dr_credits_pending=counters,
    dr_credits_posted=counters,
    cr_debits_pending=counters,
    cr_debits_posted=counters,
    cr_credits_pending=counters,
    cr_credits_posted=counters,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(e=entries)
async def test_postgres_encoder_gives_the_python_bytes_and_leaf_hash(
    pg_engine_any: AsyncEngine, e: Entry
) -> None:
    async with pg_engine_any.connect() as conn:
        row = (await conn.execute(_PG_BYTES, e.as_dict())).one()
    assert row.b == encode_entry(e)
    assert row.leaf == merkle.leaf_hash(encode_entry(e))


async def test_appends_of_every_kind_store_the_python_leaves_nodes_and_frontier(
    pg_engine_any: AsyncEngine,
) -> None:
    factory: async_sessionmaker[AsyncSession] = db.create_session_factory(pg_engine_any)
    lid = "dépt/ü"
    alice, bob = "user:Ålice 😀", 'user:"bob"\\'
    async with transaction(factory) as s:
        await open_account(s, lid, "issuance")
        await open_account(s, lid, "redemption")
        for u in (alice, bob):
            await open_account(s, lid, u, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)

    common = {"ledger_id": lid, "actor": "steward\tü"}
    async with transaction(factory) as s:
        await transfer(
            s,
            debit="issuance",
            credit=alice,
            amount=MAX_INT - 5000,
            idempotency_key="big 中",
            reference=NASTY[0],
            now=T0,
            **common,
        )
        await transfer(
            s,
            debit="issuance",
            credit=bob,
            amount=10,
            idempotency_key="k\n2",
            reference=NASTY[1],
            now=at(1),
            **common,
        )
        hold = await transfer(
            s,
            debit=alice,
            credit="redemption",
            amount=MAX_INT - 6000,
            pending=True,
            expires_at=at(60),
            idempotency_key="hold",
            reference=NASTY[2],
            now=at(2),
            **common,
        )
        posted = await post_pending(
            s, pending_seq=hold.seq, amount=1000, idempotency_key="post", now=at(3), **common
        )
        h2 = await transfer(
            s,
            debit=bob,
            credit="redemption",
            amount=3,
            pending=True,
            idempotency_key="h2",
            reference=NASTY[3],
            now=at(4),
            **common,
        )
        await void_pending(
            s, pending_seq=h2.seq, idempotency_key="void", reference=NASTY[4], now=at(5), **common
        )
        await reverse(s, seq=posted.seq, idempotency_key="rev", now=at(6), **common)
        await transfer(
            s,
            debit=bob,
            credit="redemption",
            amount=2,
            pending=True,
            expires_at=at(8),
            idempotency_key="h3",
            now=at(7),
            **common,
        )
    async with transaction(factory) as s:
        assert await sweep_expired(s, at(9), ledger_id=lid) == 1
    # Enough plain appends to complete subtrees several levels up.
    for i in range(21):
        async with transaction(factory) as s:
            await transfer(
                s,
                debit="issuance",
                credit=bob,
                amount=i + 1,
                idempotency_key=uuid.uuid4().hex,
                now=at(10) + timedelta(seconds=i),
                **common,
            )

    async with factory() as s:
        conn = await s.connection()
        stored = [
            Entry.from_row(r)
            for r in await conn.execute(select(E).where(E.c.ledger_id == lid).order_by(E.c.seq))
        ]
        nodes = {
            (r.level, r.idx): r.hash
            for r in await conn.execute(select(N).where(N.c.ledger_id == lid))
        }
        head = (await conn.execute(select(H).where(H.c.ledger_id == lid))).one()
        lines = [line async for line in export_lines(s, lid)]
    assert {e.kind for e in stored} == set(KINDS)
    assert len(stored) == head.size == 30

    expected: dict[tuple[int, int], bytes] = {}
    frontier: list[bytes] = []
    for i, e in enumerate(stored):
        frontier, done = merkle.append_leaf(frontier, i, merkle.leaf_hash(encode_entry(e)))
        expected.update({(lv, ix): h for lv, ix, h in done})
    assert nodes == expected
    assert head.frontier == b"".join(frontier)
    assert [line.rstrip(b"\n") for line in lines] == [encode_entry(e) for e in stored]
    assert verify_export(lines) == []

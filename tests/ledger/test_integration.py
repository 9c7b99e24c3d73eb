"""Writers only sequence; the integrator hashes entries into the Merkle tree in batches and
keeps a signed head of each size it reaches (ledger/integration.py). The tree it builds is
RFC 9162's over the canonical bytes, on both databases, however the entries are batched."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from api.settings import Settings
from ledger import (
    AccountFlags,
    export_lines,
    integration,
    merkle,
    post_pending,
    reverse,
    sweep_expired,
    transfer,
    tree_head,
    void_pending,
)
from ledger.encoding import KINDS, MAX_INT, Entry, encode_entry
from ledger.errors import AccountFlagsConflict, AccountNotFound, LedgerNotFound
from ledger.models import LedgerEntry, LedgerMerkleNode, LedgerTree
from ledger.signing import KeyRing
from ledger.verify import verify_export
from tests.conftest import World
from tests.exchange.helpers import Client, add_station, drop, open_campaign
from tests.ledger.conftest import EMPLOYEE, T0, at, credit

Factory = async_sessionmaker[AsyncSession]
E = LedgerEntry.__table__
N = LedgerMerkleNode.__table__
T = LedgerTree.__table__
ROOT = Path(__file__).resolve().parents[2]

# Quotes, backslashes, every escaped control, DEL, slashes, non-BMP, separators JSON
# libraries like to escape, a byte-order mark: the bytes hashed must be encode_entry's.
NASTY = [
    'a "quoted" \\ back\\slash',
    "\n\r\t\b\f \x01\x07\x1f\x7f",
    "dropoff:é/中文/😀",
    "\u2028\u2029\ufeff</script>",
    "",
]


async def _every_kind(factory: Factory, lid: str) -> None:
    """Entries of every kind, with awkward text, accounts opened by the first transfers."""
    alice, bob = "user:Ålice 😀", 'user:"bob"\\'
    common = {"ledger_id": lid, "actor": "steward\tü"}
    earn = (AccountFlags.NONE, EMPLOYEE)
    spend = (EMPLOYEE, AccountFlags.NONE)
    async with transaction(factory) as s:
        await transfer(s, debit="issuance", credit=alice, amount=MAX_INT - 5000,
                       idempotency_key="big 中", reference=NASTY[0], now=T0, open_with=earn,
                       **common)  # fmt: skip
        await transfer(s, debit="issuance", credit=bob, amount=10, idempotency_key="k\n2",
                       reference=NASTY[1], now=at(1), open_with=earn, **common)  # fmt: skip
        hold = await transfer(s, debit=alice, credit="redemption", amount=MAX_INT - 6000,
                              pending=True, expires_at=at(60), idempotency_key="hold",
                              reference=NASTY[2], now=at(2), open_with=spend,
                              **common)  # fmt: skip
        posted = await post_pending(
            s, pending_seq=hold.seq, amount=1000, idempotency_key="post", now=at(3), **common
        )
        h2 = await transfer(s, debit=bob, credit="redemption", amount=3, pending=True,
                            idempotency_key="h2", reference=NASTY[3], now=at(4),
                            **common)  # fmt: skip
        await void_pending(
            s, pending_seq=h2.seq, idempotency_key="void", reference=NASTY[4], now=at(5), **common
        )
        await reverse(s, seq=posted.seq, idempotency_key="rev", now=at(6), **common)
        await transfer(s, debit=bob, credit="redemption", amount=2, pending=True,
                       expires_at=at(8), idempotency_key="h3", now=at(7), **common)  # fmt: skip
    async with transaction(factory) as s:
        assert await sweep_expired(s, at(9), ledger_id=lid) == 1
    for i in range(21):  # enough plain appends to complete subtrees several levels up
        async with transaction(factory) as s:
            await transfer(s, debit="issuance", credit=bob, amount=i + 1,
                           idempotency_key=f"more {i}", now=at(10 + i), **common)  # fmt: skip


async def _stored(factory: Factory, lid: str) -> tuple[list[Entry], dict, bytes, int]:
    async with factory() as s:
        conn = await s.connection()
        entries = [
            Entry.from_row(r)
            for r in await conn.execute(select(E).where(E.c.ledger_id == lid).order_by(E.c.seq))
        ]
        nodes = {
            (r.level, r.idx): bytes(r.hash)
            for r in await conn.execute(select(N).where(N.c.ledger_id == lid))
        }
        tree = (await conn.execute(select(T).where(T.c.ledger_id == lid))).one()
    return entries, nodes, bytes(tree.frontier), tree.size


def _python_tree(entries: list[Entry]) -> tuple[dict, bytes]:
    expected: dict[tuple[int, int], bytes] = {}
    frontier: list[bytes] = []
    for i, e in enumerate(entries):
        frontier, done = merkle.append_leaf(frontier, i, merkle.leaf_hash(encode_entry(e)))
        expected.update({(lv, ix): h for lv, ix, h in done})
    return expected, b"".join(frontier)


async def test_a_write_hashes_nothing_and_the_integrator_builds_the_python_tree(
    session_factory: Factory,
) -> None:
    lid = "dépt/ü"
    await _every_kind(session_factory, lid)
    entries, nodes, frontier, size = await _stored(session_factory, lid)
    assert {e.kind for e in entries} == set(KINDS) and len(entries) == 30
    assert (nodes, frontier, size) == ({}, b"", 0)  # sequenced, not yet integrated

    keys = KeyRing.ephemeral()
    async with transaction(session_factory) as s:
        tree = await integration.integrate(s, lid, keys, now=at(99))
    assert tree is not None and tree.size == 30
    entries, nodes, frontier, size = await _stored(session_factory, lid)
    expected_nodes, expected_frontier = _python_tree(entries)
    assert (nodes, frontier, size) == (expected_nodes, expected_frontier, 30)
    async with session_factory() as s:
        head = await integration.newest_head(s, lid)
        lines = [line async for line in export_lines(s, lid)]
    assert head is not None and head.tree_size == 30 and head.verify(keys)
    assert head.root_hash == merkle.frontier_root(merkle.split_frontier(frontier))
    assert verify_export(lines, head, keys) == []


@pytest.mark.parametrize("batch", [1, 3, 7])
async def test_batches_of_any_size_build_the_same_tree(
    session_factory: Factory, dept: str, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(13):
        async with transaction(session_factory) as s:
            await credit(s, "alice", i + 1, f"d{i}", now=at(i))
    monkeypatch.setattr(integration, "BATCH", batch)
    for upto in (2, 2, 5, 11, None):  # some calls catch up in several batches, one does nothing
        async with transaction(session_factory) as s:
            await integration.integrate(s, dept, upto=upto)
    entries, nodes, frontier, size = await _stored(session_factory, dept)
    assert (nodes, frontier, size) == (*_python_tree(entries), 13)


async def test_a_head_covers_only_what_is_integrated_and_a_request_integrates_on_demand(
    session_factory: Factory, dept: str
) -> None:
    keys = KeyRing.ephemeral()
    for i in range(3):
        async with transaction(session_factory) as s:
            await credit(s, "alice", 1, f"d{i}", now=at(i))
    async with transaction(session_factory) as s:
        assert await integration.ledgers_behind(s) == [dept]
        await integration.integrate(s, dept, keys, now=at(10))
        assert await integration.ledgers_behind(s) == []
    for i in range(3, 5):
        async with transaction(session_factory) as s:
            await credit(s, "bob", 1, f"d{i}", now=at(i + 10))
    async with transaction(session_factory) as s:
        newest = await integration.newest_head(s, dept)
        assert newest is not None and newest.tree_size == 3  # the kept head: 3 integrated
        assert await integration.ledgers_behind(s) == [dept]
        head = await tree_head(s, dept, keys, now=at(20))  # asked for: integrates first
    assert head.tree_size == 5 and head.verify(keys)
    async with session_factory() as s:
        assert await integration.newest_head(s, dept) == head
        assert await integration.stored_head(s, dept, 3) == newest


async def test_an_integrator_skips_a_tree_another_one_holds(
    pg_session_factory: Factory,
) -> None:
    async with transaction(pg_session_factory) as s:
        await transfer(s, ledger_id="dept-x", debit="issuance", credit="user:a", amount=1,
                       idempotency_key="d1", actor="t", open_with=(0, 1))  # fmt: skip
    async with pg_session_factory() as holder, holder.begin():
        await (await holder.connection()).execute(
            text("SELECT 1 FROM ledger_trees WHERE ledger_id = 'dept-x' FOR UPDATE")
        )
        async with transaction(pg_session_factory) as s:
            assert await integration.integrate(s, "dept-x", skip_locked=True) is None
    async with transaction(pg_session_factory) as s:
        tree = await integration.integrate(s, "dept-x", skip_locked=True)
    assert tree is not None and tree.size == 1


async def test_a_transfer_opens_its_ledger_and_accounts_with_the_flags_it_names(
    session_factory: Factory,
) -> None:
    async with transaction(session_factory) as s:
        with pytest.raises(LedgerNotFound):
            await transfer(s, ledger_id="new", debit="issuance", credit="user:a", amount=5,
                           idempotency_key="k0", actor="t")  # fmt: skip
    async with transaction(session_factory) as s:
        entry = await transfer(s, ledger_id="new", debit="issuance", credit="user:a", amount=5,
                               idempotency_key="k1", actor="t",
                               open_with=(AccountFlags.NONE, EMPLOYEE))  # fmt: skip
    assert (entry.seq, entry.debit_flags, entry.credit_flags) == (1, 0, int(EMPLOYEE))
    async with transaction(session_factory) as s:
        with pytest.raises(AccountNotFound):  # redemption was never opened
            await transfer(s, ledger_id="new", debit="user:a", credit="redemption", amount=1,
                           idempotency_key="k2", actor="t")  # fmt: skip
    async with transaction(session_factory) as s:
        with pytest.raises(AccountFlagsConflict):  # user:a exists with other flags
            await transfer(s, ledger_id="new", debit="user:a", credit="redemption", amount=1,
                           idempotency_key="k3", actor="t", open_with=(0, 0))  # fmt: skip
    async with transaction(session_factory) as s:
        conn = await s.connection()
        trees = await conn.execute(
            select(func.count()).select_from(T).where(T.c.ledger_id == "new")
        )
        assert trees.scalar_one() == 1


def _functions(path: Path) -> dict[str, str]:
    """Each function of a SQL file and its body (between the $$)."""
    sql = path.read_text()
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"CREATE OR REPLACE FUNCTION (\w+)\(.*?\$\$(.*?)\$\$", sql, re.S)
    }


async def test_the_installed_functions_are_the_sql_files(pg_engine: AsyncEngine) -> None:
    """A file edited without a migration that loads it again would leave the database
    running the old code: this fails until one does."""
    wanted = {
        **_functions(ROOT / "ledger/sql/ledger_append.sql"),
        **_functions(ROOT / "exchange/sql/writes.sql"),
    }
    assert "ledger_append" in wanted and "exchange_log_dropoff" in wanted
    async with pg_engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT proname, prosrc FROM pg_proc WHERE proname = ANY(:names)"),
            {"names": list(wanted)},
        )
        installed = {r.proname: r.prosrc for r in rows}
    assert installed == wanted


def test_the_sql_constants_are_the_python_ones() -> None:
    constants = dict(
        re.findall(
            r"(\w+) CONSTANT \w+ := (\d+);", (ROOT / "ledger/sql/ledger_append.sql").read_text()
        )
    )
    assert constants == {
        "debits_must_not_exceed_credits": str(int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)),
        "credits_must_not_exceed_debits": str(int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)),
        "max_int": str(MAX_INT),
    }


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"integration_interval_seconds": 0.05})


async def test_the_service_signs_a_head_over_a_new_entry_within_its_interval(
    client: Client, world: World, session_factory: Factory
) -> None:
    """The sweeping process integrates in the background: nobody asks for a head here."""
    await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    response = await drop(client, world.headers["emp-a"], station["code"], "ink_cartridge", 2)
    assert response.status_code == 201, response.text
    seq = response.json()["ledger_seq"]
    keys = client.app.state.settings.keyring
    async with asyncio.timeout(30):  # the interval is 0.05 s; the machine may be busy
        while True:
            async with session_factory() as s:
                head = await integration.newest_head(s, world.dept_a)
            if head is not None and head.tree_size >= seq:
                break
            await asyncio.sleep(0.05)
    assert head.verify(keys)

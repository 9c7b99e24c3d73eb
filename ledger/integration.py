"""Integration: entries join the Merkle tree in batches, off the writers' path.

A write only sequences its entry (ledger/transfers.py): seq, balances, the entry row, all
under the ledger's head lock. Hashing it into the tree comes later, as Certificate
Transparency logs and Trillian do it: the integrator reads the entries past the tree's size
in seq order, hashes each into its leaf, merges the leaves into the frontier, stores every
subtree they complete and signs a head of the new size, which is kept
(``ledger_tree_heads``). Hashing and node writes are paid once per batch instead of inside
every writer's critical section, and the integrator's lock (the ``ledger_trees`` row) is
one that writers never take.

Sequenced entries are committed in seq order (the head lock is held until commit), so the
entries a snapshot sees past the tree's size are always a gapless run; the integrator still
checks that and stops at a gap.

When: the sweeping process integrates every ledger that is behind every
``EXCHANGE_INTEGRATION_INTERVAL_SECONDS`` (1 s by default), so a signed head covers an entry
within about that long; and a request for a tree head or a proof past what is integrated
integrates first, in its own transaction. A head never covers an entry that is not
integrated: heads are signed only over the tree as stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger import merkle
from ledger.db import Db, connection_of
from ledger.encoding import Entry, encode_entry, to_us
from ledger.models import LedgerEntry, LedgerHead, LedgerMerkleNode, LedgerTree, LedgerTreeHead
from ledger.signing import KeyRing
from ledger.transfers import utcnow
from ledger.treehead import TreeHead, sign_tree_head

E = LedgerEntry.__table__
H = LedgerHead.__table__
T = LedgerTree.__table__
N = LedgerMerkleNode.__table__
S = LedgerTreeHead.__table__

BATCH = 5_000  # entries read and hashed at a time
THREAD_FROM = 256  # batches this large are hashed on a thread, off the event loop

_TREE = select(T.c.size, T.c.frontier).where(T.c.ledger_id == bindparam("ledger_id"))
_SEQUENCED = select(H.c.size).where(H.c.ledger_id == bindparam("ledger_id"))
_TREE_AND_LOG = (
    select(H.c.size.label("sequenced"), T.c.size, T.c.frontier)
    .join(T, T.c.ledger_id == H.c.ledger_id)
    .where(H.c.ledger_id == bindparam("ledger_id"))
)
_ENTRIES = (
    select(E)
    .where(E.c.ledger_id == bindparam("ledger_id"), E.c.seq > bindparam("after"))
    .where(E.c.seq <= bindparam("upto"))
    .order_by(E.c.seq)
    .limit(bindparam("batch"))
)
_SAVE_TREE = (
    update(T)
    .where(T.c.ledger_id == bindparam("of_ledger"))
    .values(size=bindparam("new_size"), frontier=bindparam("new_frontier"))
)
_HEAD_AT = select(S).where(
    S.c.ledger_id == bindparam("ledger_id"), S.c.tree_size == bindparam("size")
)
_NEWEST_HEAD = (
    select(S).where(S.c.ledger_id == bindparam("ledger_id")).order_by(S.c.tree_size.desc()).limit(1)
)
# Ledgers with entries not in the tree yet, or whose tree has no signed head of its size.
_BEHIND = (
    select(T.c.ledger_id)
    .join(H, H.c.ledger_id == T.c.ledger_id)
    .where(
        (H.c.size > T.c.size)
        | (
            (T.c.size > 0)
            & ~exists().where(and_(S.c.ledger_id == T.c.ledger_id, S.c.tree_size == T.c.size))
        )
    )
    .order_by(T.c.ledger_id)
)


@dataclass(frozen=True)
class Tree:
    """The integrated tree of a ledger: how many entries it holds and its frontier."""

    ledger_id: str
    size: int
    frontier: list[bytes]

    @property
    def root(self) -> bytes:
        return merkle.frontier_root(self.frontier)


def head_from_row(row: Any) -> TreeHead:
    return TreeHead(
        row.ledger_id,
        row.tree_size,
        bytes(row.root_hash),
        row.timestamp_us,
        row.key_id,
        bytes(row.signature),
    )


async def tree(db: Db, ledger_id: str) -> Tree:
    """The ledger's integrated tree (empty for a ledger not created yet)."""
    conn = await connection_of(db)
    row = (await conn.execute(_TREE, {"ledger_id": ledger_id})).one_or_none()
    if row is None:
        return Tree(ledger_id, 0, [])
    return Tree(ledger_id, row.size, merkle.split_frontier(bytes(row.frontier)))


async def tree_and_log(db: Db, ledger_id: str) -> tuple[Tree, int] | None:
    """The integrated tree and how many entries the log holds; None: no such ledger."""
    conn = await connection_of(db)
    row = (await conn.execute(_TREE_AND_LOG, {"ledger_id": ledger_id})).one_or_none()
    if row is None:
        return None
    return Tree(ledger_id, row.size, merkle.split_frontier(bytes(row.frontier))), row.sequenced


async def integrate(
    db: Db,
    ledger_id: str,
    keys: KeyRing | None = None,
    *,
    upto: int | None = None,
    skip_locked: bool = False,
    now: datetime | None = None,
) -> Tree | None:
    """Bring the tree up to the ledger's sequenced size (or ``upto``, if smaller) and, given
    ``keys``, sign and keep a head of the new size if it has none. Runs in the caller's
    transaction, holding the tree's row until it ends. Returns the tree; None if
    ``skip_locked`` and another integrator holds it."""
    conn = await connection_of(db)
    row = (
        await conn.execute(_TREE.with_for_update(skip_locked=skip_locked), {"ledger_id": ledger_id})
    ).one_or_none()
    if row is None:
        if skip_locked and await _exists(conn, ledger_id):
            return None  # another integrator has it
        return Tree(ledger_id, 0, [])
    size, frontier = row.size, merkle.split_frontier(bytes(row.frontier))
    sequenced = (await conn.execute(_SEQUENCED, {"ledger_id": ledger_id})).scalar_one()
    target = sequenced if upto is None else min(upto, sequenced)
    grown = False
    while size < target:
        params = {"ledger_id": ledger_id, "after": size, "upto": target, "batch": BATCH}
        entries = [Entry.from_row(r) for r in await conn.execute(_ENTRIES, params)]
        run = _gapless_run(entries, size)
        if not run:
            break
        if len(run) >= THREAD_FROM:
            frontier, nodes = await asyncio.to_thread(_merge, frontier, size, run)
        else:
            frontier, nodes = _merge(frontier, size, run)
        await conn.execute(
            N.insert(),
            [{"ledger_id": ledger_id, "level": lv, "idx": ix, "hash": h} for lv, ix, h in nodes],
        )
        size += len(run)
        grown = True
        if len(run) < len(entries):
            break
    if grown:
        await conn.execute(
            _SAVE_TREE,
            {"of_ledger": ledger_id, "new_size": size, "new_frontier": b"".join(frontier)},
        )
    integrated = Tree(ledger_id, size, frontier)
    if keys is not None and size > 0:
        await _sign(conn, integrated, keys, now)
    return integrated


async def _exists(conn: AsyncConnection, ledger_id: str) -> bool:
    return (await conn.execute(_TREE, {"ledger_id": ledger_id})).one_or_none() is not None


def _gapless_run(entries: Sequence[Entry], size: int) -> list[Entry]:
    """The entries that continue the tree without a gap (all of them, as writers commit in
    seq order; a gap would mean a bug, so integration stops there rather than skip)."""
    run = []
    for expected, entry in enumerate(entries, start=size + 1):
        if entry.seq != expected:
            break
        run.append(entry)
    return run


def _merge(
    frontier: list[bytes], size: int, entries: Sequence[Entry]
) -> tuple[list[bytes], list[tuple[int, int, bytes]]]:
    nodes: list[tuple[int, int, bytes]] = []
    for entry in entries:
        frontier, completed = merkle.append_leaf(
            frontier, size, merkle.leaf_hash(encode_entry(entry))
        )
        nodes.extend(completed)
        size += 1
    return frontier, nodes


async def _sign(
    conn: AsyncConnection, integrated: Tree, keys: KeyRing, now: datetime | None
) -> None:
    params = {"ledger_id": integrated.ledger_id, "size": integrated.size}
    if (await conn.execute(_HEAD_AT, params)).one_or_none() is not None:
        return
    head = sign_tree_head(
        keys.active, integrated.ledger_id, integrated.size, integrated.root, to_us(now or utcnow())
    )
    await conn.execute(
        S.insert(),
        {
            "ledger_id": head.ledger_id,
            "tree_size": head.tree_size,
            "root_hash": head.root_hash,
            "timestamp_us": head.timestamp_us,
            "key_id": head.key_id,
            "signature": head.signature,
        },
    )


async def newest_head(db: Db, ledger_id: str) -> TreeHead | None:
    conn = await connection_of(db)
    row = (await conn.execute(_NEWEST_HEAD, {"ledger_id": ledger_id})).one_or_none()
    return None if row is None else head_from_row(row)


async def stored_head(db: Db, ledger_id: str, tree_size: int) -> TreeHead | None:
    conn = await connection_of(db)
    row = (await conn.execute(_HEAD_AT, {"ledger_id": ledger_id, "size": tree_size})).one_or_none()
    return None if row is None else head_from_row(row)


async def ledgers_behind(db: Db) -> list[str]:
    """Ledgers with entries to integrate or a tree without a signed head of its size."""
    conn = await connection_of(db)
    return list((await conn.execute(_BEHIND)).scalars())

"""Tree heads and proofs served from the stored perfect subtrees.

A proof needs at most O(log n) stored nodes; they are fetched with one primary-key query,
whatever the size of the log. The tree holds the entries the integrator has taken in
(ledger/integration.py); a head or proof asked for past that integrates first, so callers
always get what they asked for, never a proof over entries the tree does not hold."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger import integration, merkle
from ledger.db import Db, connection_of
from ledger.encoding import MAX_INT, Entry, to_us
from ledger.errors import LedgerNotFound, TreeSizeOutOfRange
from ledger.models import LedgerHead, LedgerMerkleNode
from ledger.receipts import Receipt
from ledger.signing import KeyRing
from ledger.transfers import utcnow
from ledger.treehead import TreeHead, sign_tree_head

H = LedgerHead.__table__
N = LedgerMerkleNode.__table__

FETCH_CHUNK = 300  # nodes per query


@dataclass(frozen=True)
class InclusionProof:
    ledger_id: str
    seq: int
    tree_size: int
    leaf_hash: bytes
    path: list[bytes]

    @property
    def leaf_index(self) -> int:
        return self.seq - 1  # seq 1 is leaf 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ledger_id": self.ledger_id,
            "seq": self.seq,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "audit_path": [h.hex() for h in self.path],
        }


@dataclass(frozen=True)
class ConsistencyProof:
    ledger_id: str
    first: int
    second: int
    path: list[bytes]

    def to_json(self) -> dict[str, Any]:
        return {
            "ledger_id": self.ledger_id,
            "first": self.first,
            "second": self.second,
            "consistency_path": [h.hex() for h in self.path],
        }


async def _tree_of(
    conn: AsyncConnection, ledger_id: str, size: int | None, keys: KeyRing | None = None
) -> tuple[int, integration.Tree]:
    """The size asked for (None: every entry written so far) and the integrated tree, which
    holds at least that many entries: integrated on demand, in the caller's transaction.
    With ``keys``, a head of the integrated size is signed and kept if it has none."""
    found = await integration.tree_and_log(conn, ledger_id)
    if found is None:
        raise LedgerNotFound(ledger_id)
    tree, sequenced = found
    if size is None:
        size = sequenced
    elif not 0 <= size <= sequenced:
        raise TreeSizeOutOfRange(f"tree_size {size} is not between 0 and {sequenced}")
    if tree.size < size or (keys is not None and tree.size < sequenced):
        integrated = await integration.integrate(conn, ledger_id, keys)
        assert integrated is not None
        tree = integrated
    if tree.size < size:
        raise RuntimeError(f"ledger {ledger_id!r}: entries {tree.size + 1}..{size} not integrated")
    return size, tree


async def _fetch(
    conn: AsyncConnection, ledger_id: str, wanted: set[merkle.Node]
) -> dict[merkle.Node, bytes]:
    # One full-key equality per node, OR-ed: both databases turn that into one primary-key
    # probe per node. (SQLite scans the whole ledger for a row-value IN list.) A proof needs
    # one query; many proofs at once (a page of receipts) a few, as SQLite nests each OR
    # one level deeper and stops at 1,000.
    ordered = sorted(wanted)
    found: dict[merkle.Node, bytes] = {}
    for start in range(0, len(ordered), FETCH_CHUNK):
        rows = await conn.execute(
            select(N.c.level, N.c.idx, N.c.hash).where(
                or_(
                    *(
                        and_(N.c.ledger_id == ledger_id, N.c.level == level, N.c.idx == idx)
                        for level, idx in ordered[start : start + FETCH_CHUNK]
                    )
                )
            )
        )
        found.update(((r.level, r.idx), bytes(r.hash)) for r in rows)
    return found


async def fetch_nodes(
    conn: AsyncConnection, ledger_id: str, wanted: set[merkle.Node]
) -> dict[merkle.Node, bytes]:
    """The stored nodes ``wanted``, all of which must exist."""
    found = await _fetch(conn, ledger_id, wanted)
    if len(found) != len(wanted):
        raise RuntimeError(f"ledger {ledger_id!r}: Merkle nodes missing: {wanted - set(found)}")
    return found


async def root_hash(db: Db, ledger_id: str, tree_size: int | None = None) -> tuple[int, bytes]:
    """(size, root) of the whole log, or of its first ``tree_size`` entries."""
    conn = await connection_of(db)
    size, tree = await _tree_of(conn, ledger_id, tree_size)
    if size == tree.size:
        return size, tree.root
    if size == 0:
        return 0, merkle.EMPTY_ROOT
    nodes = await fetch_nodes(conn, ledger_id, set(merkle.range_nodes(0, size)))
    return size, merkle.range_hash(0, size, nodes)


async def tree_head(
    db: Db,
    ledger_id: str,
    keys: KeyRing,
    *,
    tree_size: int | None = None,
    now: datetime | None = None,
) -> TreeHead:
    """The newest signed head of the whole log (integrating and signing first, if entries
    were written since), or a head of an earlier size: the kept one, or signed now."""
    conn = await connection_of(db)
    size, tree = await _tree_of(conn, ledger_id, tree_size, keys)
    if size > 0 and (kept := await integration.stored_head(conn, ledger_id, size)) is not None:
        return kept
    root = tree.root if size == tree.size else (await root_hash(conn, ledger_id, size))[1]
    return sign_tree_head(keys.active, ledger_id, size, root, to_us(now or utcnow()))


async def inclusion_proof(
    db: Db, ledger_id: str, seq: int, tree_size: int | None = None
) -> InclusionProof:
    """Audit path of entry ``seq`` in the tree of ``tree_size`` (default: the whole log)."""
    conn = await connection_of(db)
    if tree_size is not None and 1 <= seq <= tree_size <= MAX_INT:
        # Against a known head: one query. The nodes include a subtree ending at tree_size,
        # so finding them all shows the tree has reached that size.
        ranges = merkle.inclusion_ranges(seq - 1, tree_size)
        wanted = merkle.nodes_for(ranges) | {(0, seq - 1)}
        nodes = await _fetch(conn, ledger_id, wanted)
        if len(nodes) == len(wanted):
            return InclusionProof(
                ledger_id,
                seq,
                tree_size,
                nodes[(0, seq - 1)],
                merkle.proof_from_nodes(ranges, nodes),
            )
    if tree_size is not None and tree_size > MAX_INT:
        raise TreeSizeOutOfRange(f"tree_size {tree_size} is past any log")
    size, _ = await _tree_of(conn, ledger_id, tree_size)
    if not 1 <= seq <= size:
        raise TreeSizeOutOfRange(f"seq {seq} is not in a tree of size {size}")
    ranges = merkle.inclusion_ranges(seq - 1, size)
    nodes = await fetch_nodes(conn, ledger_id, merkle.nodes_for(ranges) | {(0, seq - 1)})
    return InclusionProof(
        ledger_id, seq, size, nodes[(0, seq - 1)], merkle.proof_from_nodes(ranges, nodes)
    )


async def inclusion_proofs(
    db: Db, ledger_id: str, seqs: Iterable[int], tree_size: int
) -> dict[int, InclusionProof]:
    """Audit paths of several entries to one integrated ``tree_size`` (a kept head's), their
    nodes read together: a page of receipts costs one query, not one per entry."""
    conn = await connection_of(db)
    ranges = {seq: merkle.inclusion_ranges(seq - 1, tree_size) for seq in seqs}
    wanted = set().union(*(merkle.nodes_for(r) | {(0, s - 1)} for s, r in ranges.items()))
    nodes = await fetch_nodes(conn, ledger_id, wanted)
    return {
        seq: InclusionProof(
            ledger_id, seq, tree_size, nodes[(0, seq - 1)], merkle.proof_from_nodes(r, nodes)
        )
        for seq, r in ranges.items()
    }


async def consistency_proof(
    db: Db, ledger_id: str, first: int, second: int | None = None
) -> ConsistencyProof:
    conn = await connection_of(db)
    size, _ = await _tree_of(conn, ledger_id, second)
    if not 1 <= first <= size:
        raise TreeSizeOutOfRange(f"first {first} is not between 1 and {size}")
    ranges = merkle.consistency_ranges(first, size)
    nodes = await fetch_nodes(conn, ledger_id, merkle.nodes_for(ranges))
    return ConsistencyProof(ledger_id, first, size, merkle.proof_from_nodes(ranges, nodes))


async def receipts(db: Db, ledger_id: str, entries: Sequence[Entry]) -> list[Receipt]:
    """Receipts of ``entries`` against the newest signed head: one query for the head, one
    (a few, for a long page) for every audit path. Entries past the head are pending."""
    conn = await connection_of(db)
    head = await integration.newest_head(conn, ledger_id)
    covered = [e.seq for e in entries if head is not None and e.seq <= head.tree_size]
    found = {}
    if covered and head is not None:
        found = await inclusion_proofs(conn, ledger_id, covered, head.tree_size)
    return [
        Receipt(e, head, found[e.seq]) if e.seq in found else Receipt(e, None, None)
        for e in entries
    ]


async def complete_receipt(db: Db, entry: Entry, keys: KeyRing) -> Receipt:
    """The receipt of ``entry``, never pending: integrates and signs first if the newest head
    does not cover it yet, as a request for a tree head does."""
    conn = await connection_of(db)
    head = await integration.newest_head(conn, entry.ledger_id)
    if head is None or head.tree_size < entry.seq:
        head = await tree_head(conn, entry.ledger_id, keys)
    proof = await inclusion_proof(conn, entry.ledger_id, entry.seq, head.tree_size)
    return Receipt(entry, head, proof)

"""Tree heads and proofs served from the stored perfect subtrees.

A proof needs at most O(log n) stored nodes; they are fetched with one primary-key query,
whatever the size of the log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.asyncio import AsyncSession as SASession

from ledger import merkle
from ledger.encoding import MAX_INT, to_us
from ledger.errors import LedgerNotFound, TreeSizeOutOfRange
from ledger.models import LedgerHead, LedgerMerkleNode
from ledger.signing import KeyRing
from ledger.transfers import utcnow
from ledger.treehead import TreeHead, sign_tree_head

H = LedgerHead.__table__
N = LedgerMerkleNode.__table__


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


async def _head(conn: AsyncConnection, ledger_id: str) -> Any:
    row = (
        await conn.execute(select(H.c.size, H.c.frontier).where(H.c.ledger_id == ledger_id))
    ).one_or_none()
    if row is None:
        raise LedgerNotFound(ledger_id)
    return row


async def _fetch(
    conn: AsyncConnection, ledger_id: str, wanted: set[merkle.Node]
) -> dict[merkle.Node, bytes]:
    if not wanted:
        return {}
    # One full-key equality per node, OR-ed: both databases turn that into one primary-key
    # probe per node. (SQLite scans the whole ledger for a row-value IN list.)
    rows = await conn.execute(
        select(N.c.level, N.c.idx, N.c.hash).where(
            or_(
                *(
                    and_(N.c.ledger_id == ledger_id, N.c.level == level, N.c.idx == idx)
                    for level, idx in sorted(wanted)
                )
            )
        )
    )
    return {(r.level, r.idx): bytes(r.hash) for r in rows}


async def fetch_nodes(
    conn: AsyncConnection, ledger_id: str, wanted: set[merkle.Node]
) -> dict[merkle.Node, bytes]:
    """The stored nodes ``wanted``, all of which must exist."""
    found = await _fetch(conn, ledger_id, wanted)
    if len(found) != len(wanted):
        raise RuntimeError(f"ledger {ledger_id!r}: Merkle nodes missing: {wanted - set(found)}")
    return found


async def _size_in_range(conn: AsyncConnection, ledger_id: str, size: int | None) -> int:
    head = await _head(conn, ledger_id)
    if size is None:
        return head.size
    if not 0 <= size <= head.size:
        raise TreeSizeOutOfRange(f"tree_size {size} is not between 0 and {head.size}")
    return size


async def root_hash(
    session: SASession, ledger_id: str, tree_size: int | None = None
) -> tuple[int, bytes]:
    """(size, root) of the tree now, or at an earlier size."""
    conn = await session.connection()
    head = await _head(conn, ledger_id)
    if tree_size is None or tree_size == head.size:
        return head.size, merkle.frontier_root(merkle.split_frontier(head.frontier))
    if not 0 <= tree_size <= head.size:
        raise TreeSizeOutOfRange(f"tree_size {tree_size} is not between 0 and {head.size}")
    if tree_size == 0:
        return 0, merkle.EMPTY_ROOT
    nodes = await fetch_nodes(conn, ledger_id, set(merkle.range_nodes(0, tree_size)))
    return tree_size, merkle.range_hash(0, tree_size, nodes)


async def tree_head(
    session: SASession,
    ledger_id: str,
    keys: KeyRing,
    *,
    tree_size: int | None = None,
    now: datetime | None = None,
) -> TreeHead:
    """A freshly signed head of the log (its current size unless ``tree_size`` is given)."""
    size, root = await root_hash(session, ledger_id, tree_size)
    return sign_tree_head(keys.active, ledger_id, size, root, to_us(now or utcnow()))


async def inclusion_proof(
    session: SASession, ledger_id: str, seq: int, tree_size: int | None = None
) -> InclusionProof:
    """Audit path of entry ``seq`` in the tree of ``tree_size`` (default: the current size).

    Given a size, this is a single query: the proof's nodes include the leaf and a subtree
    ending at ``tree_size``, so finding them all shows the log has reached that size."""
    conn = await session.connection()
    size = tree_size if tree_size is not None else await _size_in_range(conn, ledger_id, None)
    if size > MAX_INT:  # no log is that long, and the node indexes would overflow BIGINT
        await _size_in_range(conn, ledger_id, size)
    if not 1 <= seq <= size:
        raise TreeSizeOutOfRange(f"seq {seq} is not in a tree of size {size}")
    ranges = merkle.inclusion_ranges(seq - 1, size)
    wanted = merkle.nodes_for(ranges) | {(0, seq - 1)}
    nodes = await _fetch(conn, ledger_id, wanted)
    if len(nodes) != len(wanted):
        await _size_in_range(conn, ledger_id, size)  # names the ledger or the size that is wrong
        raise RuntimeError(f"ledger {ledger_id!r}: Merkle nodes missing: {wanted - set(nodes)}")
    return InclusionProof(
        ledger_id, seq, size, nodes[(0, seq - 1)], merkle.proof_from_nodes(ranges, nodes)
    )


async def consistency_proof(
    session: SASession, ledger_id: str, first: int, second: int | None = None
) -> ConsistencyProof:
    conn = await session.connection()
    size = await _size_in_range(conn, ledger_id, second)
    if not 1 <= first <= size:
        raise TreeSizeOutOfRange(f"first {first} is not between 1 and {size}")
    ranges = merkle.consistency_ranges(first, size)
    nodes = await fetch_nodes(conn, ledger_id, merkle.nodes_for(ranges))
    return ConsistencyProof(ledger_id, first, size, merkle.proof_from_nodes(ranges, nodes))

"""RFC 9162 Merkle tree arithmetic, independent of any database.

The log stores every *perfect, aligned* subtree hash as it completes: node ``(level, index)``
covers leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 are the leaf hashes.
Any range the RFC's recursive definitions ask for (``MTH(D[a:b])``) splits into at most
``log2(n)`` such nodes, so a proof needs O(log n) stored nodes, fetched in one query.

The right edge of the tree (the "frontier") is the list of perfect subtrees whose sizes are
the set bits of the tree size, largest first; appending a leaf merges the equal-sized tail,
and the root of the whole tree is their right fold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Node = tuple[int, int]  # (level, index)

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k, for n > 1 (RFC 9162 §2.1.1)."""
    return 1 << ((n - 1).bit_length() - 1)


# --- frontier ------------------------------------------------------------------------------


def frontier_levels(size: int) -> list[int]:
    """Levels of the frontier's subtrees for a tree of ``size`` leaves, largest first."""
    return [level for level in range(size.bit_length() - 1, -1, -1) if size >> level & 1]


def split_frontier(blob: bytes) -> list[bytes]:
    return [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


def append_leaf(
    frontier: list[bytes], size: int, leaf: bytes
) -> tuple[list[bytes], list[tuple[int, int, bytes]]]:
    """Append one leaf hash to a tree of ``size`` leaves.

    Returns the new frontier and the nodes completed by the append, ``(level, index, hash)``,
    starting with the leaf itself.
    """
    frontier = list(frontier)
    completed = [(0, size, leaf)]
    node, level = leaf, 0
    while size >> level & 1:
        node = node_hash(frontier.pop(), node)
        level += 1
        completed.append((level, size >> level, node))
    frontier.append(node)
    return frontier, completed


def append_leaves(frontier: Sequence[bytes], size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The frontier after appending ``leaves`` to a tree of ``size`` leaves.

    The same tree as ``append_leaf`` one leaf at a time, hashed a level at a time instead:
    one pass pairing the level's nodes, so a verifier pays the node hashes and little else.
    """
    frontier = list(frontier)
    peaks: list[bytes] = []  # the new frontier's small end, smallest first
    nodes = list(leaves)
    pos = size  # index, within its level, of nodes[0]
    while nodes:
        if pos & 1:  # nodes[0] is a right child: its left sibling is the frontier's last peak
            nodes.insert(0, frontier.pop())
            pos -= 1
        if len(nodes) & 1:
            peaks.append(nodes.pop())
        pairs = zip(nodes[0::2], nodes[1::2], strict=True)
        nodes = [_sha256(b"\x01" + left + right).digest() for left, right in pairs]
        pos >>= 1
    frontier.extend(reversed(peaks))
    return frontier


def subtree_roots(start: int, leaves: Sequence[bytes]) -> list[tuple[int, bytes]]:
    """The leaves at ``start``, ``start + 1``… as the fewest perfect aligned subtrees, left to
    right, each as ``(level, root)``: what a tree that has ``start`` leaves already needs to
    take them in (``append_subtree``), hashed without knowing that tree."""
    out: list[tuple[int, bytes]] = []
    pos, end = start, start + len(leaves)
    while pos < end:
        level = (pos & -pos).bit_length() - 1 if pos else (end - pos).bit_length()
        while pos + (1 << level) > end:
            level -= 1
        (root,) = append_leaves([], 0, leaves[pos - start : pos - start + (1 << level)])
        out.append((level, root))
        pos += 1 << level
    return out


def append_subtree(frontier: Sequence[bytes], size: int, level: int, root: bytes) -> list[bytes]:
    """The frontier after appending a perfect subtree of ``2**level`` leaves to a tree of
    ``size`` leaves, ``size`` a multiple of ``2**level`` (``append_leaf`` one level up)."""
    frontier = list(frontier)
    size >>= level
    while size & 1:
        root = node_hash(frontier.pop(), root)
        size >>= 1
    frontier.append(root)
    return frontier


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for peak in reversed(frontier[:-1]):
        root = node_hash(peak, root)
    return root


def root_of_leaves(leaves: Iterable[bytes]) -> bytes:
    """Root of a whole tree from its leaf hashes, in one pass with O(log n) memory."""
    stack: list[bytes] = []
    size = 0
    for leaf in leaves:
        node = leaf
        s = size
        while s & 1:
            node = node_hash(stack.pop(), node)
            s >>= 1
        stack.append(node)
        size += 1
    return frontier_root(stack)


# --- ranges -> stored nodes ----------------------------------------------------------------


def range_nodes(start: int, end: int) -> list[Node]:
    """The perfect aligned subtrees that make up leaves ``[start, end)``, left to right.

    Valid for the ranges RFC 9162's recursion produces: ``start`` is a multiple of a power of
    two that is at least ``end - start``.
    """
    nodes: list[Node] = []
    pos = start
    remaining = end - start
    for level in range(remaining.bit_length() - 1, -1, -1):
        if remaining >> level & 1:
            assert pos % (1 << level) == 0, (start, end)
            nodes.append((level, pos >> level))
            pos += 1 << level
    return nodes


def range_hash(start: int, end: int, nodes: Mapping[Node, bytes]) -> bytes:
    """MTH(D[start:end]) from stored perfect subtrees (right fold of the pieces)."""
    pieces = [nodes[n] for n in range_nodes(start, end)]
    return frontier_root(pieces)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Ranges whose MTH form the audit path of leaf ``index`` in a tree of ``size`` (RFC 9162
    §2.1.3.1), in proof order (nearest the leaf first)."""
    if not 0 <= index < size:
        raise ValueError("index out of range")
    out: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if index < start + k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start = start + k
    out.reverse()
    return out


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """Ranges whose MTH form the consistency proof between sizes ``first`` and ``second``
    (RFC 9162 §2.1.4.1 SUBPROOF), in proof order."""
    if not 0 < first <= second:
        raise ValueError("need 0 < first <= second")
    if first == second:
        return []
    out: list[tuple[int, int]] = []
    m, start, end, complete = first, 0, second, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                out.append((start, end))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            m -= k
            start += k
            complete = False
    out.reverse()
    return out


def nodes_for(ranges: Iterable[tuple[int, int]]) -> set[Node]:
    needed: set[Node] = set()
    for start, end in ranges:
        needed.update(range_nodes(start, end))
    return needed


def proof_from_nodes(ranges: Sequence[tuple[int, int]], nodes: Mapping[Node, bytes]) -> list[bytes]:
    return [range_hash(start, end, nodes) for start, end in ranges]


def proof_in_memory(ranges: Sequence[tuple[int, int]], leaves: Sequence[bytes]) -> list[bytes]:
    """Same proof from a list of leaf hashes (for callers that hold the whole log)."""
    cache: dict[Node, bytes] = {}

    def get(node: Node) -> bytes:
        if node not in cache:
            level, idx = node
            if level == 0:
                cache[node] = leaves[idx]
            else:
                cache[node] = node_hash(get((level - 1, 2 * idx)), get((level - 1, 2 * idx + 1)))
        return cache[node]

    return [frontier_root([get(n) for n in range_nodes(s, e)]) for s, e in ranges]


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) -----------------------------------------


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a proof leads to; raises ValueError if the proof has the wrong shape."""
    if not 0 <= index < size:
        raise ValueError("index out of range")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    try:
        return root_from_inclusion_proof(index, size, leaf, proof) == root
    except ValueError:
        return False


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the old root is itself the first node
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root

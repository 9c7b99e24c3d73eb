"""ledger.merkle against the naive RFC 9162 transcription, for every tree size 1..300."""

from __future__ import annotations

import random

import pytest

from ledger import merkle
from tests.ledger import rfc9162

SIZES = range(1, 301)


@pytest.fixture(scope="module")
def data() -> list[bytes]:
    rng = random.Random(9162)
    return [rng.randbytes(rng.randrange(0, 80)) for _ in range(300)]


@pytest.fixture(scope="module")
def leaves(data: list[bytes]) -> list[bytes]:
    return [merkle.leaf_hash(d) for d in data]


@pytest.fixture(scope="module")
def stored(leaves: list[bytes]) -> dict[merkle.Node, bytes]:
    """Every perfect subtree, as the database keeps them while the log grows."""
    frontier: list[bytes] = []
    nodes: dict[merkle.Node, bytes] = {}
    for i, leaf in enumerate(leaves):
        frontier, completed = merkle.append_leaf(frontier, i, leaf)
        nodes.update(((lv, ix), h) for lv, ix, h in completed)
    return nodes


def test_empty_tree_root_is_hash_of_nothing() -> None:
    assert merkle.root_of_leaves([]) == rfc9162.mth([]) == merkle.frontier_root([])


def test_appending_leaves_keeps_frontier_root_and_stored_nodes_equal_to_rfc(
    data: list[bytes], leaves: list[bytes]
) -> None:
    frontier: list[bytes] = []
    stored: dict[merkle.Node, bytes] = {}
    for n in SIZES:
        frontier, completed = merkle.append_leaf(frontier, n - 1, leaves[n - 1])
        assert completed[0] == (0, n - 1, leaves[n - 1])
        for level, idx, h in completed:
            assert (level, idx) not in stored
            lo = idx << level
            assert h == rfc9162.mth(data[lo : lo + (1 << level)])
            stored[(level, idx)] = h
        expected = rfc9162.mth(data[:n])
        assert merkle.frontier_root(frontier) == expected
        assert merkle.root_of_leaves(leaves[:n]) == expected
        assert merkle.range_hash(0, n, stored) == expected
        assert len(frontier) == bin(n).count("1")


def test_appending_leaves_in_batches_gives_the_same_frontier_as_one_at_a_time(
    data: list[bytes], leaves: list[bytes]
) -> None:
    """Every size up to 300 grown in one batch from earlier sizes (all of them for small
    trees, a sample for large ones), and grown in random batches: the frontier of
    `append_leaf` one by one, and so the RFC root."""
    one_by_one: list[list[bytes]] = [[]]
    for i, leaf in enumerate(leaves):
        one_by_one.append(merkle.append_leaf(one_by_one[-1], i, leaf)[0])
    rng = random.Random(5)
    for n in SIZES:
        starts = range(n + 1) if n <= 64 else sorted(rng.sample(range(n + 1), 24))
        for start in starts:
            grown = merkle.append_leaves(one_by_one[start], start, leaves[start:n])
            assert grown == one_by_one[n], (start, n)
        assert merkle.frontier_root(one_by_one[n]) == rfc9162.mth(data[:n])
    for _ in range(200):
        frontier: list[bytes] = []
        size = 0
        while size < 300:
            step = rng.choice((0, 1, 2, 3, 7, 8, 16, 33, 64, 100))
            frontier = merkle.append_leaves(frontier, size, leaves[size : size + step])
            size = min(300, size + step)
        assert frontier == one_by_one[300]


def test_a_tree_takes_in_the_subtrees_of_leaves_hashed_without_it(
    data: list[bytes], leaves: list[bytes]
) -> None:
    """The leaves after ``start``, hashed as aligned subtrees by someone who knows only
    ``start`` (a second process of `exchange ledger verify`), appended to the frontier of
    the first ``start`` leaves: the frontier of all of them, and the RFC root."""
    rng = random.Random(7)
    for n in SIZES:
        starts = range(n + 1) if n <= 64 else sorted(rng.sample(range(n + 1), 12))
        whole = merkle.append_leaves([], 0, leaves[:n])
        for start in starts:
            frontier, size = merkle.append_leaves([], 0, leaves[:start]), start
            for level, root in merkle.subtree_roots(start, leaves[start:n]):
                frontier = merkle.append_subtree(frontier, size, level, root)
                size += 1 << level
            assert (size, frontier) == (n, whole), (start, n)
        assert merkle.frontier_root(whole) == rfc9162.mth(data[:n])


def test_inclusion_proofs_match_rfc_path_for_every_leaf_of_every_size(
    data: list[bytes], leaves: list[bytes], stored: dict[merkle.Node, bytes]
) -> None:
    for n in SIZES:
        root = rfc9162.mth(data[:n])
        for m in range(n):
            ranges = merkle.inclusion_ranges(m, n)
            got = merkle.proof_from_nodes(ranges, stored)
            assert got == rfc9162.path(m, data[:n]), (m, n)
            assert merkle.verify_inclusion(m, n, leaves[m], got, root)
            # O(log n): at most one stored node per bit of n per level crossed
            assert len(merkle.nodes_for(ranges)) <= 2 * n.bit_length()


def test_consistency_proofs_match_rfc_proof_for_every_pair_up_to_300(
    data: list[bytes], leaves: list[bytes], stored: dict[merkle.Node, bytes]
) -> None:
    roots = [rfc9162.mth(data[:n]) for n in range(301)]
    rng = random.Random(4)
    for n in SIZES:
        # every first size for small trees, a random sample of them for large ones
        firsts = range(1, n + 1) if n <= 64 else sorted(rng.sample(range(1, n + 1), 24))
        for m in firsts:
            ranges = merkle.consistency_ranges(m, n)
            got = merkle.proof_from_nodes(ranges, stored)
            assert got == merkle.proof_in_memory(ranges, leaves)
            assert got == rfc9162.proof(m, data[:n]), (m, n)
            assert merkle.verify_consistency(m, n, roots[m], roots[n], got)


def test_inclusion_verification_rejects_a_wrong_leaf_index_or_path(leaves: list[bytes]) -> None:
    n, m = 37, 11
    root = merkle.root_of_leaves(leaves[:n])
    good = merkle.proof_in_memory(merkle.inclusion_ranges(m, n), leaves)
    assert merkle.verify_inclusion(m, n, leaves[m], good, root)
    assert not merkle.verify_inclusion(m + 1, n, leaves[m], good, root)
    assert not merkle.verify_inclusion(m, n, leaves[m + 1], good, root)
    assert not merkle.verify_inclusion(m, n, leaves[m], good[:-1], root)
    assert not merkle.verify_inclusion(m, n, leaves[m], [*good, good[0]], root)
    bad = list(good)
    bad[2] = bytes(32)
    assert not merkle.verify_inclusion(m, n, leaves[m], bad, root)


def test_consistency_verification_rejects_a_forked_history(leaves: list[bytes]) -> None:
    m, n = 13, 40
    proof = merkle.proof_in_memory(merkle.consistency_ranges(m, n), leaves)
    old = merkle.root_of_leaves(leaves[:m])
    new = merkle.root_of_leaves(leaves[:n])
    assert merkle.verify_consistency(m, n, old, new, proof)
    forked = merkle.root_of_leaves([*leaves[: m - 1], leaves[200]])
    assert not merkle.verify_consistency(m, n, forked, new, proof)
    assert not merkle.verify_consistency(m, n, old, new, proof[1:])

"""A deliberately naive, recursive transcription of RFC 9162 §2.1 (MTH, PATH, PROOF,
SUBPROOF), written independently of ledger/merkle.py to check it."""

from __future__ import annotations

import hashlib

_memo: dict[tuple[bytes, ...], bytes] = {}


def mth(d: list[bytes]) -> bytes:
    # Memoised only so that checking every leaf of every size up to 300 stays fast.
    key = tuple(d)
    if key not in _memo:
        _memo[key] = _mth(d)
    return _memo[key]


def _mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def proof(m: int, d: list[bytes]) -> list[bytes]:
    return subproof(m, d, True)


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]

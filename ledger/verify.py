"""Offline verification of an exported log against a signed tree head and the public keys.

Needs no database: it reads the JSON Lines export, recomputes every Merkle leaf from the
line's bytes, the root, checks the head's signature, replays every balance and checks every
ledger rule, and reports each break as a finding naming the entry and the rule.

The export is read 64 KiB at a time (a block's decoded entries stay in the processor's
cache while they are replayed), msgspec decodes a block in one call straight into typed
structs, and the replay (`ledger.replay`) compares each entry's stated counters with the
account's last stated ones. Given a file and a second core, each of two processes hashes
and replays one half; the first checks what the second assumed at the seam (or replays the
second half itself), and the Merkle subtrees of the second half join the first's tree.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import msgspec

from ledger import merkle
from ledger.errors import UnknownKey
from ledger.replay import Assumptions, Entry, Finding, Replay
from ledger.signing import KeyRing, PublicKeySet
from ledger.treehead import TreeHead

BLOCK_SIZE = 1 << 16  # bytes of the export read, decoded and hashed at a time
# A second process costs tens of milliseconds to start; below this size it saves less.
PARALLEL_FROM = 8 << 20

_sha256 = hashlib.sha256


@dataclass(frozen=True)
class Verification:
    """What a verification of files found: every finding, and how many entries it read
    (None when it stopped before the export, at an unreadable tree head or key set)."""

    entries: int | None
    findings: list[Finding]


_decoder = msgspec.json.Decoder(Entry)


class _Block:
    """Whole lines of the export: ``data`` as read, split into ``lines`` only when a caller
    needs them (the hashing does; the decoding, mostly, does not)."""

    __slots__ = ("_lines", "data")

    def __init__(self, data: bytes, lines: list[bytes] | None = None) -> None:
        self.data = data
        self._lines = lines

    @property
    def lines(self) -> list[bytes]:
        """The non-empty lines, without their newlines: an export's entries."""
        if self._lines is None:
            self._lines = [line for line in self.data.split(b"\n") if line]
        return self._lines

    def entries(self) -> list[Entry | msgspec.DecodeError]:
        """Each line decoded, or why it could not be.

        The block is decoded in one call, which reads whitespace-separated values; only when
        that fails, or finds another number of values than newlines (an empty line, a line
        that is not one value), is it decoded line by line. A crafted file could still pair
        lines with the wrong values (one spread over two lines beside a line of two), but it
        would not hash to a signed root: with a tree head the root check binds the lines;
        without one, nothing binds them anyway."""
        data = self.data
        try:
            found: list[Entry | msgspec.DecodeError] = _decoder.decode_lines(data)
            if len(found) == data.count(b"\n") + (not data.endswith(b"\n")):
                return found
        except msgspec.DecodeError:
            pass
        out: list[Entry | msgspec.DecodeError] = []
        for line in self.lines:
            try:
                out.append(_decoder.decode(line))
            except msgspec.DecodeError as exc:
                out.append(exc)
        return out


def _line_blocks(lines: Iterable[bytes], batch: int = 4096) -> Iterator[_Block]:
    buf: list[bytes] = []
    for raw in lines:
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line:
            buf.append(line)
            if len(buf) == batch:
                yield _Block(b"\n".join(buf), buf)
                buf = []
    if buf:
        yield _Block(b"\n".join(buf), buf)


def _file_blocks(f: BinaryIO, size: int, stop: int | None = None) -> Iterator[_Block]:
    """The file's blocks from where it is to ``stop`` (a line's start) or its end."""
    rest = b""
    while chunk := f.read(size if stop is None else min(size, stop - f.tell())):
        cut = chunk.rfind(b"\n") + 1
        if cut:
            yield _Block(b"".join((rest, memoryview(chunk)[:cut])))
            rest = chunk[cut:]
        else:  # a line longer than a block
            rest += chunk
    if rest:
        yield _Block(rest)


class _Tree:
    """The Merkle tree over the first ``limit`` lines, grown a block at a time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.frontier: list[bytes] = []

    def fed(self, blocks: Iterable[_Block]) -> Iterator[_Block]:
        """The blocks, each hashed into the tree as it passes."""
        for block in blocks:
            if self.size < self.limit:
                lines = block.lines[: self.limit - self.size]
                leaves = [_sha256(b"\x00" + line).digest() for line in lines]
                self.frontier = merkle.append_leaves(self.frontier, self.size, leaves)
                self.size += len(lines)
            yield block

    def join(self, subtrees: list[tuple[int, bytes]]) -> None:
        """Take in the subtrees of the lines right after these (none if the tree was
        complete before them)."""
        for level, root in subtrees:
            self.frontier = merkle.append_subtree(self.frontier, self.size, level, root)
            self.size += 1 << level

    def root(self) -> bytes:
        return merkle.frontier_root(self.frontier)


def _second_half(
    path: str, start: int, ledger_id: str | None, limit: int, block_size: int
) -> tuple[Assumptions, list[tuple[int, bytes]]]:
    """The second process's share: replay the file from byte ``start`` (a line's start) as
    entries that follow unseen ones, and hash its lines among the first ``limit`` into the
    subtrees the first process's tree takes in."""
    with open(path, "rb") as f, _collector_paused():
        unseen = sum(b.data.count(b"\n") for b in _file_blocks(f, block_size, start))
        replay = Replay(ledger_id, unseen)
        leaves: list[bytes] = []
        for block in _file_blocks(f, block_size):
            if unseen + len(leaves) < limit:
                lines = block.lines[: limit - unseen - len(leaves)]
                leaves.extend([_sha256(b"\x00" + line).digest() for line in lines])
            replay.feed(block.entries())
    return replay.assumptions(), merkle.subtree_roots(unseen, leaves)


def verify_export(
    lines: Iterable[bytes],
    head: TreeHead | None = None,
    keys: PublicKeySet | None = None,
) -> list[Finding]:
    """Every finding over an export given as its lines (with or without newlines)."""
    return _verify(_line_blocks(lines), head, keys).findings


def _verify(
    blocks: Iterable[_Block], head: TreeHead | None, keys: PublicKeySet | None
) -> Verification:
    """Replay the blocks, hash the head's lines, and check them against the head."""
    tree = _Tree(head.tree_size if head else 0)
    replay = Replay(head.ledger_id if head else None)
    with _collector_paused():
        for block in tree.fed(blocks):
            replay.feed(block.entries())
    return _result(replay, tree, head, keys)


def _result(
    replay: Replay, tree: _Tree, head: TreeHead | None, keys: PublicKeySet | None
) -> Verification:
    count, findings = replay.finish()
    if head is not None:
        findings.extend(_check_head(head, keys, count, tree.root()))
    return Verification(count, findings)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The replay keeps a million small tuples and dict entries, none of which can form a
    reference cycle; the cyclic collector would walk them again and again as they grow (5-20%
    of the replay, measured). Reference counting still frees everything."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _check_head(
    head: TreeHead, keys: PublicKeySet | None, count: int, root: bytes
) -> list[Finding]:
    out: list[Finding] = []
    if count < head.tree_size:
        out.append(
            Finding(None, "tree_size", f"head covers {head.tree_size} entries, export has {count}")
        )
    elif root != head.root_hash:
        out.append(
            Finding(
                None,
                "root",
                f"first {head.tree_size} entries hash to {root.hex()}, "
                f"the tree head says {head.root_hash.hex()}",
            )
        )
    if keys is None:
        out.append(Finding(None, "signature", "no public keys given; signature not checked"))
        return out
    try:
        if not head.verify(keys):
            out.append(
                Finding(
                    None,
                    "signature",
                    f"tree head signature does not verify under key {head.key_id}",
                )
            )
    except UnknownKey:
        out.append(Finding(None, "signature", f"tree head signed by unknown key {head.key_id}"))
    except ValueError as exc:
        out.append(Finding(None, "signature", f"malformed tree head: {exc}"))
    return out


def verify_files(
    export: Path,
    head_json: Path | None,
    keys_json: Path | None,
    processes: int | None = None,
) -> Verification:
    """The CLI's entry point: paths to the export, the tree head JSON and the JWKS.

    ``processes`` 2 replays and hashes the second half of the export in a second process
    while this one does the first (`ledger.replay`), 1 does everything here; by default, 2
    for a large export on a machine with two cores or more. Both give the same findings."""
    head: TreeHead | None = None
    keys: PublicKeySet | None = None
    if head_json is not None:
        try:
            head = TreeHead.from_json(json.loads(Path(head_json).read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            return Verification(None, [Finding(None, "tree_head", f"cannot read tree head: {exc}")])
    if keys_json is not None:
        try:
            keys = KeyRing.from_jwks(json.loads(Path(keys_json).read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            return Verification(None, [Finding(None, "keys", f"cannot read keys: {exc}")])
    size = Path(export).stat().st_size
    if processes is None:
        processes = 2 if size >= PARALLEL_FROM and _cores() > 1 else 1
    with open(export, "rb") as f:
        split = _middle_line(f, size) if processes > 1 else size
        if split >= size:
            return _verify(_file_blocks(f, BLOCK_SIZE), head, keys)
        limit = head.tree_size if head else 0
        tree = _Tree(limit)
        replay = Replay(head.ledger_id if head else None)
        with ProcessPoolExecutor(1) as pool:
            job = (str(export), split, replay.ledger_id, limit, BLOCK_SIZE)
            later = pool.submit(_second_half, *job)
            with _collector_paused():
                for block in tree.fed(_file_blocks(f, BLOCK_SIZE, split)):
                    replay.feed(block.entries())
                assumed, subtrees = later.result()
                if replay.join(assumed):
                    tree.join(subtrees)
                else:  # not clean, or not as it assumed: this replay carries on over the rest
                    for block in tree.fed(_file_blocks(f, BLOCK_SIZE)):
                        replay.feed(block.entries())
        return _result(replay, tree, head, keys)


def _middle_line(f: BinaryIO, size: int) -> int:
    """Where the first line that starts past the file's middle starts (``size``: none)."""
    f.seek(size // 2)
    while chunk := f.read(1 << 16):
        cut = chunk.find(b"\n")
        if cut >= 0:
            split = f.tell() - len(chunk) + cut + 1
            break
    else:
        split = size
    f.seek(0)
    return split


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # the cores this process may run on (Linux)
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1

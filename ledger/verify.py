"""Offline verification of an exported log against a signed tree head and the public keys.

Needs no database: it reads the JSON Lines export, recomputes every Merkle leaf from the
line's bytes, the root, checks the head's signature, replays every balance and checks every
ledger rule, and reports each break as a finding naming the entry and the rule.

A million entries take a few seconds (bench/README.md): the export is read a block at a time,
msgspec decodes a block in one call straight into typed structs, the replay compares each
entry's stated counters with the account's last stated ones (no per-entry lists), and the
Merkle tree is hashed a level at a time. Given a file and a second core, the tree is hashed
in a second process while this one decodes and replays; the two meet at the root.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from ledger import merkle
from ledger.encoding import VERSION
from ledger.errors import UnknownKey
from ledger.signing import KeyRing, PublicKeySet
from ledger.treehead import TreeHead

DMNEC, CMNED = 1, 2  # AccountFlags, repeated so the verifier stands on its own
BLOCK_SIZE = 1 << 20  # bytes of the export read, decoded and hashed at a time
# A second process costs tens of milliseconds to start; below this size it saves less.
PARALLEL_FROM = 8 << 20

_sha256 = hashlib.sha256
_ZERO = (0, 0, 0, 0)


@dataclass(frozen=True)
class Finding:
    seq: int | None  # the entry's seq (or line number for unreadable lines); None: whole log
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"entry seq {self.seq}" if self.seq is not None else "log"
        return f"{where}: [{self.rule}] {self.message}"


@dataclass(frozen=True)
class Verification:
    """What a verification of files found: every finding, and how many entries it read
    (None when it stopped before the export, at an unreadable tree head or key set)."""

    entries: int | None
    findings: list[Finding]


class _Entry(msgspec.Struct, gc=False):
    """A line as the verifier reads it: the fields of the canonical encoding that the rules
    read (the text fields `actor` and `reference` only count through the leaf hash), typed. A
    line that lacks one, or holds another type, is a `format` finding. Not tracked by the
    cyclic garbage collector, which would otherwise walk the structs over and over while the
    decoder allocates."""

    amount: int
    credit_account: str
    credit_after: tuple[int, int, int, int]
    credit_flags: int
    debit_account: str
    debit_after: tuple[int, int, int, int]
    debit_flags: int
    expires_at: int | None
    idempotency_key: str
    kind: str
    ledger_id: str
    ref_seq: int | None
    seq: int
    time: int
    version: int


_decoder = msgspec.json.Decoder(_Entry)


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

    def entries(self) -> list[_Entry | msgspec.DecodeError]:
        """Each line decoded, or why it could not be.

        The block is decoded in one call, which reads whitespace-separated values; only when
        that fails, or finds another number of values than newlines (an empty line, a line
        that is not one value), is it decoded line by line. A crafted file could still pair
        lines with the wrong values (one spread over two lines beside a line of two), but it
        would not hash to a signed root: with a tree head the root check binds the lines;
        without one, nothing binds them anyway."""
        data = self.data
        try:
            found: list[_Entry | msgspec.DecodeError] = _decoder.decode_lines(data)
            if len(found) == data.count(b"\n") + (not data.endswith(b"\n")):
                return found
        except msgspec.DecodeError:
            pass
        out: list[_Entry | msgspec.DecodeError] = []
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


def _file_blocks(f: BinaryIO, size: int) -> Iterator[_Block]:
    rest = b""
    while chunk := f.read(size):
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

    def root(self) -> bytes:
        return merkle.frontier_root(self.frontier)


def _file_root(path: str, limit: int, block_size: int) -> bytes:
    """The root over the file's first ``limit`` lines (all of them if it has fewer); the
    second process's share of a verification."""
    tree = _Tree(limit)
    with open(path, "rb") as f:
        for _ in tree.fed(_file_blocks(f, block_size)):
            if tree.size == limit:
                break
    return tree.root()


def verify_export(
    lines: Iterable[bytes],
    head: TreeHead | None = None,
    keys: PublicKeySet | None = None,
) -> list[Finding]:
    """Every finding over an export given as its lines (with or without newlines)."""
    return _verify(_line_blocks(lines), head, keys).findings


def _verify(
    blocks: Iterable[_Block],
    head: TreeHead | None,
    keys: PublicKeySet | None,
    tree_root: Callable[[], bytes] | None = None,
) -> Verification:
    """Replay the blocks and check them against the head. ``tree_root`` gives the root of
    the head's lines when something else hashes them; without it they are hashed here."""
    if head is None:
        with _collector_paused():
            return Verification(*_replay(blocks, None))
    if tree_root is None:
        tree = _Tree(head.tree_size)
        blocks = tree.fed(blocks)
        tree_root = tree.root
    with _collector_paused():
        count, findings = _replay(blocks, head.ledger_id)
    findings.extend(_check_head(head, keys, count, tree_root()))
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


def _replay(blocks: Iterable[_Block], ledger_id: str | None) -> tuple[int, list[Finding]]:
    """Every entry against the rules, in order: how many entries there were, and what broke.

    An account's counters after an entry are what the entry states: when the replay gives
    other numbers that is a `balance` finding, and the replay carries on from the stated
    ones, so one bad entry is one finding rather than one for every later entry of the
    account."""
    findings: list[Finding] = []
    add = findings.append
    count = 0
    last_time = 0
    # Each account as [code, flags as first seen, counters after its latest entry]. The
    # code kept here is the one the posted and pending maps share, so that a million
    # entries do not keep two million copies of a few thousand account names alive.
    accounts: dict[str, list[Any]] = {}
    open_pendings: dict[int, tuple[str, str, int, int | None]] = {}  # seq -> dr, cr, amount, exp
    posted: dict[int, tuple[str, str, int]] = {}  # reversible entries: seq -> (dr, cr, amount)
    reversed_by: dict[int, int] = {}
    resolved_by: dict[int, int] = {}
    keys_seen: dict[str, int] = {}

    for e in chain.from_iterable(block.entries() for block in blocks):
        count += 1
        if not isinstance(e, _Entry):
            add(Finding(count, "format", f"line {count} is not a ledger entry ({e})"))
            continue
        seq = e.seq
        if e.version != VERSION:
            add(Finding(seq, "format", f"unknown encoding version {e.version!r}"))
        if seq != count:
            add(Finding(seq, "sequence", f"found at line {count}: sequence must be gapless from 1"))
        lid = e.ledger_id
        if ledger_id is None:
            ledger_id = lid
        elif lid != ledger_id:
            add(Finding(seq, "ledger", f"belongs to ledger {lid!r}, not {ledger_id!r}"))
        t = e.time
        if t < last_time:
            add(Finding(seq, "time_order", f"time {t} is before the previous entry's {last_time}"))
        else:
            last_time = t
        key = e.idempotency_key
        if key in keys_seen:
            add(Finding(seq, "idempotency", f"key {key!r} already used by seq {keys_seen[key]}"))
        keys_seen[key] = seq
        amount = e.amount
        if amount <= 0:
            add(Finding(seq, "amount", f"amount {amount!r} is not a positive integer"))
            continue
        dr_code = e.debit_account
        cr_code = e.credit_account
        if dr_code == cr_code:
            add(Finding(seq, "accounts", "debit and credit account are the same"))
            continue

        dr = accounts.get(dr_code)
        if dr is None:
            dr = accounts[dr_code] = [dr_code, e.debit_flags, _ZERO]
        elif dr[1] != e.debit_flags:
            add(
                Finding(seq, "flags", f"account {dr_code!r} flags {e.debit_flags}, earlier {dr[1]}")
            )
        cr = accounts.get(cr_code)
        if cr is None:
            cr = accounts[cr_code] = [cr_code, e.credit_flags, _ZERO]
        elif cr[1] != e.credit_flags:
            add(
                Finding(
                    seq, "flags", f"account {cr_code!r} flags {e.credit_flags}, earlier {cr[1]}"
                )
            )
        dr_code = dr[0]
        cr_code = cr[0]

        # What the entry does to the counters [debits_pending, debits_posted,
        # credits_pending, credits_posted]: the debit account's first two move by
        # (dp, dpo), the credit account's last two by (cp, cpo).
        kind = e.kind
        ref = e.ref_seq
        if kind == "direct":
            if ref is not None:
                add(Finding(seq, "format", "a direct transfer refers to no other entry"))
            posted[seq] = (dr_code, cr_code, amount)
            dp, dpo, cp, cpo = 0, amount, 0, amount
        elif kind == "pending":
            open_pendings[seq] = (dr_code, cr_code, amount, e.expires_at)
            dp, dpo, cp, cpo = amount, 0, amount, 0
        elif kind == "post" or kind == "void":
            p = open_pendings.pop(ref, None)  # type: ignore[arg-type]
            if p is None:
                why = (
                    f"already resolved by seq {resolved_by[ref]}"
                    if ref in resolved_by
                    else "not a pending transfer"
                )
                add(Finding(seq, "pending", f"{kind} of seq {ref}: {why}"))
                continue
            resolved_by[ref] = seq  # type: ignore[index]
            p_dr, p_cr, held, expires = p
            if (p_dr, p_cr) != (dr_code, cr_code):
                add(Finding(seq, "pending", f"{kind} accounts differ from pending seq {ref}"))
            if kind == "post":
                if amount > held:
                    add(
                        Finding(
                            seq, "pending", f"posts {amount} of pending seq {ref} holding {held}"
                        )
                    )
                if expires is not None and t >= expires:
                    add(Finding(seq, "pending", f"posts pending seq {ref} after it expired"))
                posted[seq] = (dr_code, cr_code, amount)
                dp, dpo, cp, cpo = -held, amount, -held, amount
            else:
                if amount != held:
                    add(Finding(seq, "pending", f"voids {amount}, pending seq {ref} held {held}"))
                dp, dpo, cp, cpo = -held, 0, -held, 0
        elif kind == "reversal":
            target = posted.get(ref)  # type: ignore[arg-type]
            if target is None:
                add(Finding(seq, "reversal", f"reverses seq {ref}, not a posted transfer"))
            elif ref in reversed_by:
                add(
                    Finding(
                        seq, "reversal", f"seq {ref} already reversed by seq {reversed_by[ref]}"
                    )
                )
            elif target != (cr_code, dr_code, amount):
                add(Finding(seq, "reversal", f"does not mirror seq {ref} {target}"))
            if ref is not None:
                reversed_by.setdefault(ref, seq)
            dp, dpo, cp, cpo = 0, amount, 0, amount
        else:
            add(Finding(seq, "format", f"unknown kind {kind!r}"))
            continue

        # Both sides written out rather than a function called twice: this is the hot loop.
        b = dr[2]
        after = dr[2] = e.debit_after
        replay = (b[0] + dp, b[1] + dpo, b[2], b[3])
        f = dr[1]
        if (
            replay != after
            or (f & DMNEC and after[0] + after[1] > after[3])
            or (f & CMNED and after[2] + after[3] > after[1])
        ):
            _balance_findings(add, seq, "debit", dr, replay)
        b = cr[2]
        after = cr[2] = e.credit_after
        replay = (b[0], b[1], b[2] + cp, b[3] + cpo)
        f = cr[1]
        if (
            replay != after
            or (f & DMNEC and after[0] + after[1] > after[3])
            or (f & CMNED and after[2] + after[3] > after[1])
        ):
            _balance_findings(add, seq, "credit", cr, replay)

    posted_sum = sum(a[2][3] - a[2][1] for a in accounts.values())
    pending_sum = sum(a[2][2] - a[2][0] for a in accounts.values())
    if posted_sum or pending_sum:
        add(
            Finding(None, "sum_zero", f"accounts sum to {posted_sum} posted, {pending_sum} pending")
        )
    return count, findings


def _balance_findings(
    add: Callable[[Finding], None],
    seq: int,
    side: str,
    account: list[Any],
    replay: tuple[int, int, int, int],
) -> None:
    """What is wrong with one account after an entry: its stated counters (already the
    account's) against the replay, and against its flags."""
    code, flags, after = account
    if replay != after:
        add(
            Finding(
                seq,
                "balance",
                f"{side} account {code!r} stated {list(after)}, replay gives {list(replay)}",
            )
        )
    if flags & DMNEC and after[0] + after[1] > after[3]:
        add(Finding(seq, "flags", f"account {code!r} debits exceed its credits"))
    if flags & CMNED and after[2] + after[3] > after[1]:
        add(Finding(seq, "flags", f"account {code!r} credits exceed its debits"))


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

    ``processes`` 2 hashes the Merkle tree in a second process while this one decodes and
    replays, 1 does everything here; by default, 2 for a large export on a machine with
    two cores or more. Both give the same findings."""
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
    if processes is None:
        processes = 2 if Path(export).stat().st_size >= PARALLEL_FROM and _cores() > 1 else 1
    with open(export, "rb") as f:
        blocks = _file_blocks(f, BLOCK_SIZE)
        if head is None or processes < 2:
            return _verify(blocks, head, keys)
        with ProcessPoolExecutor(1) as pool:
            root = pool.submit(_file_root, str(export), head.tree_size, BLOCK_SIZE)
            return _verify(blocks, head, keys, root.result)


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # the cores this process may run on (Linux)
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1

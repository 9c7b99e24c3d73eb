"""Offline verification of an exported log against a signed tree head and the public keys.

Needs no database: it reads the JSON Lines export, recomputes every Merkle leaf from the
line's bytes, the root, checks the head's signature, replays every balance and checks every
ledger rule, and reports each break as a finding naming the entry and the rule.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger import merkle
from ledger.encoding import VERSION
from ledger.errors import UnknownKey
from ledger.signing import KeyRing, PublicKeySet
from ledger.treehead import TreeHead

DMNEC, CMNED = 1, 2  # AccountFlags, repeated so the verifier stands on its own


@dataclass(frozen=True)
class Finding:
    seq: int | None  # the entry's seq (or line number for unreadable lines); None: whole log
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"entry seq {self.seq}" if self.seq is not None else "log"
        return f"{where}: [{self.rule}] {self.message}"


@dataclass
class _Pending:
    debit: str
    credit: str
    amount: int
    expires_at: int | None


def verify_export(
    lines: Iterable[bytes],
    head: TreeHead | None = None,
    keys: PublicKeySet | None = None,
) -> list[Finding]:
    findings: list[Finding] = []
    add = findings.append
    sha256 = hashlib.sha256
    node_hash = merkle.node_hash

    stack: list[bytes] = []  # Merkle frontier over the lines covered by the head
    covered = head.tree_size if head is not None else -1
    count = 0
    ledger_id: str | None = head.ledger_id if head is not None else None
    last_time = 0
    accounts: dict[str, list[int]] = {}  # code -> [dp, dpo, cp, cpo, flags]
    open_pendings: dict[int, _Pending] = {}
    posted: dict[int, tuple[str, str, int]] = {}  # reversible entries: seq -> (dr, cr, amount)
    reversed_by: dict[int, int] = {}
    resolved_by: dict[int, int] = {}
    keys_seen: dict[str, int] = {}

    for line, e in _decoded(lines):
        count += 1
        if count <= covered:
            node = sha256(b"\x00" + line).digest()
            s = count - 1
            while s & 1:
                node = node_hash(stack.pop(), node)
                s >>= 1
            stack.append(node)
        try:
            if isinstance(e, ValueError):
                raise e
            seq = e["seq"]
            kind = e["kind"]
            dr_code = e["debit_account"]
            cr_code = e["credit_account"]
            amount = e["amount"]
            t = e["time"]
            ref = e["ref_seq"]
            dr_after = e["debit_after"]
            cr_after = e["credit_after"]
            dr_flags = e["debit_flags"]
            cr_flags = e["credit_flags"]
            key = e["idempotency_key"]
            lid = e["ledger_id"]
            if e["version"] != VERSION:
                add(Finding(seq, "format", f"unknown encoding version {e['version']!r}"))
        except (ValueError, KeyError, TypeError) as exc:
            add(Finding(count, "format", f"line {count} is not a ledger entry ({exc})"))
            continue

        if seq != count:
            add(Finding(seq, "sequence", f"found at line {count}: sequence must be gapless from 1"))
        if ledger_id is None:
            ledger_id = lid
        elif lid != ledger_id:
            add(Finding(seq, "ledger", f"belongs to ledger {lid!r}, not {ledger_id!r}"))
        if t < last_time:
            add(Finding(seq, "time_order", f"time {t} is before the previous entry's {last_time}"))
        last_time = max(last_time, t)
        if key in keys_seen:
            add(Finding(seq, "idempotency", f"key {key!r} already used by seq {keys_seen[key]}"))
        keys_seen[key] = seq
        if not isinstance(amount, int) or amount <= 0:
            add(Finding(seq, "amount", f"amount {amount!r} is not a positive integer"))
            continue
        if dr_code == cr_code:
            add(Finding(seq, "accounts", "debit and credit account are the same"))
            continue

        dr = accounts.get(dr_code)
        if dr is None:
            dr = accounts[dr_code] = [0, 0, 0, 0, dr_flags]
        cr = accounts.get(cr_code)
        if cr is None:
            cr = accounts[cr_code] = [0, 0, 0, 0, cr_flags]
        if dr[4] != dr_flags:
            add(Finding(seq, "flags", f"account {dr_code!r} flags {dr_flags}, earlier {dr[4]}"))
        if cr[4] != cr_flags:
            add(Finding(seq, "flags", f"account {cr_code!r} flags {cr_flags}, earlier {cr[4]}"))

        if kind == "direct" or kind == "reversal":
            if kind == "reversal":
                target = posted.get(ref) if isinstance(ref, int) else None
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
                if isinstance(ref, int):
                    reversed_by.setdefault(ref, seq)
            elif ref is not None:
                add(Finding(seq, "format", "a direct transfer refers to no other entry"))
            dr[1] += amount
            cr[3] += amount
            if kind == "direct":
                posted[seq] = (dr_code, cr_code, amount)
        elif kind == "pending":
            dr[0] += amount
            cr[2] += amount
            open_pendings[seq] = _Pending(dr_code, cr_code, amount, e["expires_at"])
        elif kind == "post" or kind == "void":
            p = open_pendings.pop(ref, None) if isinstance(ref, int) else None
            if p is None:
                why = (
                    f"already resolved by seq {resolved_by[ref]}"
                    if ref in resolved_by
                    else "not a pending transfer"
                )
                add(Finding(seq, "pending", f"{kind} of seq {ref}: {why}"))
                continue
            resolved_by[ref] = seq
            if (p.debit, p.credit) != (dr_code, cr_code):
                add(Finding(seq, "pending", f"{kind} accounts differ from pending seq {ref}"))
            if kind == "post":
                if amount > p.amount:
                    add(
                        Finding(
                            seq,
                            "pending",
                            f"posts {amount} of pending seq {ref} holding {p.amount}",
                        )
                    )
                if p.expires_at is not None and t >= p.expires_at:
                    add(Finding(seq, "pending", f"posts pending seq {ref} after it expired"))
                posted[seq] = (dr_code, cr_code, amount)
                dr[1] += amount
                cr[3] += amount
            elif amount != p.amount:
                add(Finding(seq, "pending", f"voids {amount}, pending seq {ref} held {p.amount}"))
            dr[0] -= p.amount
            cr[2] -= p.amount
        else:
            add(Finding(seq, "format", f"unknown kind {kind!r}"))
            continue

        for code, acct, after, side in (
            (dr_code, dr, dr_after, "debit"),
            (cr_code, cr, cr_after, "credit"),
        ):
            if acct[:4] != after:
                add(
                    Finding(
                        seq,
                        "balance",
                        f"{side} account {code!r} stated {after}, replay gives {acct[:4]}",
                    )
                )
                # Carry on from the stated balance so one bad entry is one finding, not one
                # for every later entry of the account.
                if isinstance(after, list) and len(after) == 4:
                    acct[:4] = after
            f = acct[4]
            if f & DMNEC and acct[0] + acct[1] > acct[3]:
                add(Finding(seq, "flags", f"account {code!r} debits exceed its credits"))
            if f & CMNED and acct[2] + acct[3] > acct[1]:
                add(Finding(seq, "flags", f"account {code!r} credits exceed its debits"))

    posted_sum = sum(a[3] - a[1] for a in accounts.values())
    pending_sum = sum(a[2] - a[0] for a in accounts.values())
    if posted_sum or pending_sum:
        add(
            Finding(None, "sum_zero", f"accounts sum to {posted_sum} posted, {pending_sum} pending")
        )

    if head is not None:
        findings.extend(_check_head(head, keys, count, merkle.frontier_root(stack)))
    return findings


def _decoded(lines: Iterable[bytes], batch: int = 512) -> Iterator[tuple[bytes, Any]]:
    """Each non-empty line without its newline, with its parsed JSON (or the parse error).

    Parsing a batch of lines as one JSON array is about twice as fast as one parse per line,
    and parsing is most of a verifier's work. A crafted file could make lines pair up with the
    wrong objects here, but it would not hash to a signed root: with a tree head the root check
    binds the lines; without one, nothing binds them anyway."""
    buf: list[bytes] = []
    for raw in lines:
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line:
            buf.append(line)
            if len(buf) == batch:
                yield from _parse(buf)
                buf = []
    if buf:
        yield from _parse(buf)


def _parse(buf: list[bytes]) -> list[tuple[bytes, Any]]:
    try:
        objs = json.loads(b"[" + b",".join(buf) + b"]")
        if len(objs) == len(buf):
            return list(zip(buf, objs, strict=True))
    except ValueError:
        pass
    out: list[tuple[bytes, Any]] = []
    for line in buf:  # find which line is broken
        try:
            out.append((line, json.loads(line)))
        except ValueError as exc:
            out.append((line, exc))
    return out


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


def verify_files(export: Path, head_json: Path | None, keys_json: Path | None) -> list[Finding]:
    """The CLI's entry point: paths to the export, the tree head JSON and the JWKS."""
    head: TreeHead | None = None
    keys: PublicKeySet | None = None
    if head_json is not None:
        try:
            head = TreeHead.from_json(json.loads(Path(head_json).read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            return [Finding(None, "tree_head", f"cannot read tree head: {exc}")]
    if keys_json is not None:
        try:
            keys = KeyRing.from_jwks(json.loads(Path(keys_json).read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            return [Finding(None, "keys", f"cannot read keys: {exc}")]
    with open(export, "rb") as f:
        return verify_export(f, head, keys)


def summary(findings: list[Finding]) -> dict[str, Any]:
    return {"ok": not findings, "findings": [str(f) for f in findings]}

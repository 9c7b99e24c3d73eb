"""Offline verification: a clean export verifies; each kind of tampering is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _pytest.monkeypatch import MonkeyPatch
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from ledger import export_lines, post_pending, reverse, transfer, tree_head, verify, void_pending
from ledger.replay import Replay
from ledger.signing import KeyRing, b64url, b64url_decode
from ledger.treehead import TreeHead
from ledger.verify import Finding, Verification, _Block, verify_export, verify_files
from tests.ledger.conftest import at, credit

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.ephemeral()


async def exported(
    session_factory: Factory, dept: str, ring: KeyRing
) -> tuple[list[bytes], TreeHead]:
    """A log with every kind of entry, its export and a signed head."""
    async with transaction(session_factory) as s:
        d1 = await credit(s, "alice", 100, "d1", now=at(0))
        await credit(s, "bob", 40, "d2", now=at(1))
        h = await transfer(
            s,
            ledger_id=dept,
            debit="user:alice",
            credit="redemption",
            amount=60,
            idempotency_key="o1",
            actor="alice",
            pending=True,
            expires_at=at(30),
            now=at(2),
        )
        await post_pending(
            s,
            ledger_id=dept,
            pending_seq=h.seq,
            amount=50,
            idempotency_key="p1",
            actor="c",
            now=at(3),
        )
        h2 = await transfer(
            s,
            ledger_id=dept,
            debit="user:bob",
            credit="redemption",
            amount=10,
            idempotency_key="o2",
            actor="bob",
            pending=True,
            now=at(4),
        )
        await void_pending(
            s, ledger_id=dept, pending_seq=h2.seq, idempotency_key="v2", actor="bob", now=at(5)
        )
        await reverse(
            s, ledger_id=dept, seq=d1 + 1, idempotency_key="r1", actor="auditor", now=at(6)
        )
        await credit(s, "alice", 7, "d3", now=at(7))
    async with session_factory() as s:
        lines = [line async for line in export_lines(s, dept)]
        head = await tree_head(s, dept, ring, now=at(8))
    return lines, head


def rules(findings: list[Finding]) -> set[tuple[int | None, str]]:
    return {(f.seq, f.rule) for f in findings}


def edit(line: bytes, **changes: object) -> bytes:
    obj = json.loads(line)
    obj.update(changes)
    return (
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    )


async def test_clean_export_verifies_with_no_findings(
    session_factory: Factory, dept: str, ring: KeyRing, tmp_path: Path
) -> None:
    lines, head = await exported(session_factory, dept, ring)
    assert len(lines) == 8
    assert verify_export(lines, head, ring) == []
    (tmp_path / "export.jsonl").write_bytes(b"".join(lines))
    (tmp_path / "head.json").write_text(json.dumps(head.to_json()))
    (tmp_path / "keys.json").write_text(json.dumps(ring.jwks()))
    assert verify_files(
        tmp_path / "export.jsonl", tmp_path / "head.json", tmp_path / "keys.json"
    ) == Verification(8, [])


async def test_an_altered_amount_is_caught_at_its_entry_and_in_the_root(
    session_factory: Factory, dept: str, ring: KeyRing
) -> None:
    lines, head = await exported(session_factory, dept, ring)
    lines[1] = edit(lines[1], amount=400)
    found = verify_export(lines, head, ring)
    assert rules(found) >= {(2, "balance"), (None, "root")}
    assert (
        "entry seq 2: [balance] credit account 'user:bob' stated [0, 0, 0, 40], "
        "replay gives [0, 0, 0, 400]" in map(str, found)
    )


async def test_an_altered_balance_is_caught(
    session_factory: Factory, dept: str, ring: KeyRing
) -> None:
    lines, head = await exported(session_factory, dept, ring)
    lines[7] = edit(lines[7], credit_after=[0, 50, 0, 1000])
    assert rules(verify_export(lines, head, ring)) >= {(8, "balance"), (None, "root")}


async def test_reordered_entries_are_caught(
    session_factory: Factory, dept: str, ring: KeyRing
) -> None:
    lines, head = await exported(session_factory, dept, ring)
    lines[2], lines[3] = lines[3], lines[2]
    found = rules(verify_export(lines, head, ring))
    assert {(4, "sequence"), (3, "sequence"), (None, "root")} <= found


async def test_a_dropped_entry_is_caught(
    session_factory: Factory, dept: str, ring: KeyRing
) -> None:
    lines, head = await exported(session_factory, dept, ring)
    del lines[4]
    assert {(6, "sequence"), (None, "tree_size")} <= rules(verify_export(lines, head, ring))


async def test_a_tampered_signature_or_head_is_caught(
    session_factory: Factory, dept: str, ring: KeyRing
) -> None:
    lines, head = await exported(session_factory, dept, ring)
    sig = bytearray(head.signature)
    sig[0] ^= 1
    bad = TreeHead.from_json({**head.to_json(), "signature": b64url(bytes(sig))})
    assert rules(verify_export(lines, bad, ring)) == {(None, "signature")}
    grown = TreeHead.from_json({**head.to_json(), "tree_size": 7})
    assert rules(verify_export(lines, grown, ring)) == {(None, "root"), (None, "signature")}
    other = KeyRing.ephemeral()
    assert rules(verify_export(lines, head, other)) == {(None, "signature")}
    assert b64url_decode(b64url(head.signature)) == head.signature


def entry(
    seq: int,
    kind: str,
    debit: str,
    credit: str,
    amount: int,
    dr: list[int],
    cr: list[int],
    ref: int | None = None,
    dflags: int = 0,
    cflags: int = 1,
) -> bytes:
    obj = {
        "actor": "x",
        "amount": amount,
        "credit_account": credit,
        "credit_after": cr,
        "credit_flags": cflags,
        "debit_account": debit,
        "debit_after": dr,
        "debit_flags": dflags,
        "expires_at": None,
        "idempotency_key": f"k{seq}",
        "kind": kind,
        "ledger_id": "d",
        "ref_seq": ref,
        "reference": "",
        "seq": seq,
        "time": seq,
        "version": 1,
    }
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def test_rule_breaks_in_a_self_consistent_forged_log_are_named() -> None:
    """A log the service could never write, with true balances: only the rules catch it."""
    log = [
        entry(1, "direct", "iss", "u", 10, [0, 10, 0, 0], [0, 0, 0, 10]),
        entry(
            2, "reversal", "u", "iss", 10, [0, 10, 0, 10], [0, 10, 0, 10], ref=1, dflags=1, cflags=0
        ),
        entry(
            3, "reversal", "u", "iss", 10, [0, 20, 0, 10], [0, 10, 0, 20], ref=1, dflags=1, cflags=0
        ),
        entry(4, "post", "iss", "u", 5, [0, 15, 0, 20], [0, 20, 0, 15], ref=1),
        entry(5, "pending", "u", "shop", 3, [3, 20, 0, 10], [0, 0, 3, 0], dflags=1, cflags=0),
        entry(6, "void", "u", "shop", 2, [0, 20, 0, 10], [0, 0, 0, 0], ref=5, dflags=1, cflags=0),
    ]
    found = verify_export(log)
    assert (3, "reversal") in rules(found)  # double reversal
    assert (3, "flags") in rules(found)  # u's debits now exceed its credits
    assert (4, "pending") in rules(found)  # post of a direct transfer
    assert (6, "pending") in rules(found)  # void of a different amount
    assert "entry seq 3: [reversal] seq 1 already reversed by seq 2" in map(str, found)


async def test_an_unreadable_line_is_named_and_the_rest_still_checked(
    session_factory: Factory, dept: str, ring: KeyRing
) -> None:
    lines, head = await exported(session_factory, dept, ring)
    lines[2] = lines[2][:40] + b"\n"
    found = verify_export(lines, head, ring)
    assert (3, "format") in rules(found) and (None, "root") in rules(found)
    assert any(f.seq == 4 for f in found)  # the hold's post no longer finds its pending


def test_a_field_of_another_type_is_a_format_finding_that_names_the_field() -> None:
    good = entry(1, "direct", "iss", "u", 10, [0, 10, 0, 0], [0, 0, 0, 10])
    for field, value in (("amount", "10"), ("time", "1"), ("debit_after", [0, 10, 0])):
        found = verify_export([edit(good, **{field: value})])
        assert rules(found) == {(1, "format")}, field
        assert f"$.{field}" in found[0].message, found
    missing = json.loads(good)
    del missing["ref_seq"]
    assert rules(verify_export([json.dumps(missing).encode()])) == {(1, "format")}


async def busy_export(
    session_factory: Factory, dept: str, ring: KeyRing
) -> tuple[list[bytes], TreeHead, TreeHead]:
    """64 entries of every kind and two signed heads, of all of them and of the first 40.
    Seq 1-20 are direct credits; then holds posted or voided, pending credits posted, and
    reversals of some of the first credits."""
    async with transaction(session_factory) as s:
        for i in range(20):
            await credit(s, ("alice", "bob")[i % 2], 50 + i, f"d{i}", now=at(i))
        for i in range(10):
            user = f"user:{('alice', 'bob')[i % 2]}"
            now = at(20 + i)
            common = {"ledger_id": dept, "actor": "x", "now": now}
            hold = await transfer(
                s,
                debit=user,
                credit="redemption",
                amount=5,
                idempotency_key=f"h{i}",
                pending=True,
                expires_at=at(100),
                **common,
            )
            if i % 2:
                await post_pending(
                    s, pending_seq=hold.seq, amount=4, idempotency_key=f"p{i}", **common
                )
            else:
                await void_pending(s, pending_seq=hold.seq, idempotency_key=f"v{i}", **common)
            dropoff = await transfer(
                s,
                debit="issuance",
                credit=user,
                amount=7,
                idempotency_key=f"c{i}",
                pending=True,
                **common,
            )
            await post_pending(s, pending_seq=dropoff.seq, idempotency_key=f"cp{i}", **common)
            if i % 3 == 0:
                await reverse(s, seq=i + 1, idempotency_key=f"r{i}", **common)
    async with session_factory() as s:
        lines = [line async for line in export_lines(s, dept)]
        head = await tree_head(s, dept, ring, now=at(40))
        earlier = await tree_head(s, dept, ring, tree_size=40, now=at(40))
    return lines, head, earlier


async def test_two_processes_give_the_findings_of_one_on_tampered_exports(
    session_factory: Factory, dept: str, ring: KeyRing, tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    """Two processes each hash and replay half of the export: every finding, and so
    the first broken entry, is the same as one process's and the in-memory verifier's, for
    blocks shorter than a line, of a few lines, and of the default size."""
    lines, head, earlier = await busy_export(session_factory, dept, ring)
    n = len(lines)
    assert n == 64 and {json.loads(x)["kind"] for x in lines} == {
        "direct",
        "pending",
        "post",
        "void",
        "reversal",
    }
    key_of_10 = json.loads(lines[9])["idempotency_key"]

    def at_line(i: int, *new: bytes) -> list[bytes]:
        """The export with line i (from 1) replaced by ``new``."""
        return [*lines[: i - 1], *new, *lines[i:]]

    cases: list[tuple[str, list[bytes], TreeHead, tuple[int | None, str] | None]] = [
        ("untouched", lines, head, None),
        ("untouched, head of the first 40", lines, earlier, None),
        ("an amount altered", at_line(5, edit(lines[4], amount=999)), head, (5, "balance")),
        (
            "two entries swapped",
            [*lines[:5], lines[6], lines[5], *lines[7:]],
            head,
            (7, "sequence"),
        ),
        ("an entry dropped", at_line(8), head, (9, "sequence")),
        ("a line cut short", at_line(10, lines[9][:50] + b"\n"), head, (10, "format")),
        (
            "a key used twice",
            at_line(30, edit(lines[29], idempotency_key=key_of_10)),
            head,
            (30, "idempotency"),
        ),
        (
            "a blank line, a CRLF line",
            at_line(12, b"\n", lines[11][:-1] + b"\r\n"),
            head,
            (None, "root"),
        ),
        ("a line past the head that is no entry", [*lines, b"[]\n"], head, (n + 1, "format")),
        ("the export cut short of the head", lines[:-5], head, (None, "tree_size")),
    ]
    export, head_json, keys_json = tmp_path / "e.jsonl", tmp_path / "h.json", tmp_path / "k.json"
    keys_json.write_text(json.dumps(ring.jwks()))
    for block_size in (64, 1000, verify.BLOCK_SIZE):
        monkeypatch.setattr(verify, "BLOCK_SIZE", block_size)
        for name, tampered, signed, first in cases:
            export.write_bytes(b"".join(tampered))
            head_json.write_text(json.dumps(signed.to_json()))
            alone = verify_files(export, head_json, keys_json, processes=1)
            paired = verify_files(export, head_json, keys_json, processes=2)
            entries = sum(1 for x in tampered if x != b"\n")
            in_memory = Verification(entries, verify_export(tampered, signed, ring))
            assert paired == alone == in_memory, (name, block_size)
            if first is None:
                assert alone.findings == [], (name, alone)
            else:
                assert (alone.findings[0].seq, alone.findings[0].rule) == first, (name, alone)


def one_replay(lines: list[bytes], ledger_id: str) -> tuple[int, list[Finding]]:
    replay = Replay(ledger_id)
    replay.feed(_Block(b"".join(lines)).entries())
    return replay.finish()


def two_halves(
    lines: list[bytes], ledger_id: str, m: int
) -> tuple[tuple[int, list[Finding]], bool]:
    """The first m lines replayed, the rest replayed as following m unseen entries, joined
    (or, when the join refuses, the first replay carrying on): the result, and whether the
    join took the second half."""
    first, second = Replay(ledger_id), Replay(ledger_id, m)
    first.feed(_Block(b"".join(lines[:m])).entries())
    second.feed(_Block(b"".join(lines[m:])).entries())
    joined = first.join(second.assumptions())
    if not joined:
        first.feed(_Block(b"".join(lines[m:])).entries())
    return first.finish(), joined


async def test_a_replay_split_anywhere_gives_the_findings_of_one_replay(
    session_factory: Factory, dept: str, ring: KeyRing
) -> None:
    """Every line of a log with every kind of entry broken in each way the rules see, the
    replay split just before, at and after it (a second half that starts on a post of a
    pending transfer from the first, a reversal of an entry from the first, a key or an
    account first used in the first…): the findings of one replay, every time. The
    untouched log joins at most splits, so the second process does do the work."""
    lines, _, _ = await busy_export(session_factory, dept, ring)
    n = len(lines)
    clean = one_replay(lines, dept)
    assert clean == (n, [])
    joins = [two_halves(lines, dept, m)[1] for m in range(1, n)]
    assert all(two_halves(lines, dept, m)[0] == clean for m in range(1, n))
    assert sum(joins) > 0.8 * len(joins), joins

    def broken(line: bytes) -> list[bytes]:
        e = json.loads(line)
        other_ref = (e["ref_seq"] or 2) - 1 or 3
        variants = [
            {"amount": e["amount"] + 1},
            {"debit_after": [e["debit_after"][0] + 1, *e["debit_after"][1:]]},
            {"credit_after": [*e["credit_after"][:3], e["credit_after"][3] - 1]},
            {"ref_seq": other_ref},
            {"ref_seq": None},
            {"idempotency_key": json.loads(lines[0])["idempotency_key"]},
            {"kind": {"post": "void", "void": "post"}.get(e["kind"], "reversal")},
            {"debit_flags": e["debit_flags"] ^ 1},
            {"time": 0},
            {"seq": e["seq"] + 1},
            {"expires_at": 1},
            {"ledger_id": "elsewhere"},
        ]
        return [edit(line, **changes) for changes in variants] + [line[:30] + b"\n"]

    cases = caught = 0
    for i in range(n):
        for bad in broken(lines[i]):
            tampered = [*lines[:i], bad, *lines[i + 1 :]]
            expected = one_replay(tampered, dept)
            cases, caught = cases + 1, caught + bool(expected[1])
            for m in {1, i - 1, i, i + 1, i + 2, n // 2, n - 1} & set(range(1, n)):
                assert two_halves(tampered, dept, m)[0] == expected, (i, m, bad)
    assert caught > 0.8 * cases  # the rest change what no rule reads (a direct's expiry…)

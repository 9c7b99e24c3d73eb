"""Balances now and in the past, listings with keyset pagination and filters, export."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from ledger import (
    balance,
    export_lines,
    list_entries,
    post_pending,
    seq_at_time,
    transfer,
    void_pending,
)
from ledger import errors as E
from ledger.encoding import encode_entry, rfc3339
from tests.ledger.conftest import at, credit

Factory = async_sessionmaker[AsyncSession]


async def history(session_factory: Factory, dept: str) -> None:
    """seq 1..8 at minutes 0..7: credits to alice and bob, alice's order posted, bob's voided."""
    async with transaction(session_factory) as s:
        await credit(s, "alice", 100, "d1", now=at(0))  # 1
        await credit(s, "bob", 50, "d2", now=at(1))  # 2
        await credit(s, "alice", 30, "d3", now=at(2))  # 3
        h = await transfer(
            s,
            ledger_id=dept,
            debit="user:alice",
            credit="redemption",
            amount=60,
            idempotency_key="o1",
            actor="alice",
            reference="order:o1",
            pending=True,
            now=at(3),
        )  # 4
        h2 = await transfer(
            s,
            ledger_id=dept,
            debit="user:bob",
            credit="redemption",
            amount=20,
            idempotency_key="o2",
            actor="bob",
            reference="order:o2",
            pending=True,
            now=at(4),
        )  # 5
        await post_pending(
            s, ledger_id=dept, pending_seq=h.seq, idempotency_key="p1", actor="c", now=at(5)
        )  # 6
        await void_pending(
            s, ledger_id=dept, pending_seq=h2.seq, idempotency_key="v2", actor="c", now=at(6)
        )  # 7
        await credit(s, "bob", 5, "d4", now=at(7))  # 8


async def test_balance_as_of_any_seq_or_time(session_factory: Factory, dept: str) -> None:
    await history(session_factory, dept)
    async with session_factory() as s:
        expected = {
            0: (0, 0),
            1: (100, 100),
            3: (130, 130),
            4: (130, 70),
            5: (130, 70),
            6: (70, 70),
            8: (70, 70),
        }
        for seq, (posted, available) in expected.items():
            b = await balance(s, dept, "user:alice", as_of_seq=seq)
            assert (b.posted, b.available, b.as_of_seq) == (posted, available, seq), seq
        b = await balance(s, dept, "user:bob", as_of=at(4.5))
        assert (b.posted, b.held, b.as_of_seq) == (50, 20, 5)
        assert await seq_at_time(s, dept, at(-1)) == 0
        assert await seq_at_time(s, dept, at(7)) == 8
        now = await balance(s, dept, "user:bob")
        assert (now.posted, now.available, now.as_of_seq) == (55, 55, None)
        with pytest.raises(E.AccountNotFound):
            await balance(s, dept, "user:nobody", as_of_seq=3)


async def test_account_history_pages_by_seq_without_gaps_or_repeats(
    session_factory: Factory, dept: str
) -> None:
    await history(session_factory, dept)
    async with session_factory() as s:
        seen, after = [], None
        while True:
            page = await list_entries(s, dept, account="user:alice", limit=2, after=after)
            seen += [e.seq for e in page.entries]
            if page.next is None:
                break
            after = page.next
        assert seen == [1, 3, 4, 6]
        whole = await list_entries(s, dept, limit=500)
        assert [e.seq for e in whole.entries] == list(range(1, 9)) and whole.next is None


async def test_listing_filters_by_reference_kind_and_time(
    session_factory: Factory, dept: str
) -> None:
    await history(session_factory, dept)
    async with session_factory() as s:
        by_ref = await list_entries(s, dept, reference="order:o1")
        assert [(e.seq, e.kind) for e in by_ref.entries] == [(4, "pending"), (6, "post")]
        by_kind = await list_entries(s, dept, kind="void")
        assert [e.seq for e in by_kind.entries] == [7]
        window = await list_entries(s, dept, since=at(2), until=at(5))
        assert [e.seq for e in window.entries] == [3, 4, 5]
        both = await list_entries(s, dept, account="user:bob", kind="direct")
        assert [e.seq for e in both.entries] == [2, 8]
        with pytest.raises(E.InvalidRequest):
            await list_entries(s, dept, limit=501)
        for cursor in ("abc", "²", "9" * 30):  # "²".isdigit(); 9…9 is past BIGINT
            with pytest.raises(E.InvalidRequest):
                await list_entries(s, dept, after=cursor)
        with pytest.raises(E.InvalidRequest):
            await balance(s, dept, "user:alice", as_of_seq=2**70)


async def test_export_streams_each_entry_as_its_canonical_bytes(
    session_factory: Factory, dept: str
) -> None:
    await history(session_factory, dept)
    async with session_factory() as s:
        lines = [line async for line in export_lines(s, dept, batch=3)]
        entries = (await list_entries(s, dept)).entries
        assert [line async for line in export_lines(s, dept, upto=5)] == lines[:5]
    assert lines == [encode_entry(e) + b"\n" for e in entries]
    first = json.loads(lines[0])
    assert first == {
        "actor": "steward",
        "amount": 100,
        "credit_account": "user:alice",
        "credit_after": [0, 0, 0, 100],
        "credit_flags": 1,
        "debit_account": "issuance",
        "debit_after": [0, 100, 0, 0],
        "debit_flags": 0,
        "expires_at": None,
        "idempotency_key": "d1",
        "kind": "direct",
        "ledger_id": dept,
        "ref_seq": None,
        "reference": "dropoff:d1",
        "seq": 1,
        "time": first["time"],
        "version": 1,
    }
    assert rfc3339(first["time"]) == "2026-06-01T08:00:00.000000Z"
    assert lines[0].startswith(b'{"actor":"steward","amount":100,')


def test_canonical_encoding_escapes_only_what_rfc8785_escapes() -> None:
    from types import SimpleNamespace

    e = SimpleNamespace(
        ledger_id="部门",
        seq=1,
        kind="direct",
        time_us=0,
        debit_account="a",
        credit_account="b",
        amount=1,
        ref_seq=None,
        expires_at_us=None,
        reference='稻米 "5kg"\n\u0001/',
        actor="é",
        idempotency_key="k",
        debit_flags=0,
        credit_flags=0,
        dr_debits_pending=0,
        dr_debits_posted=1,
        dr_credits_pending=0,
        dr_credits_posted=0,
        cr_debits_pending=0,
        cr_debits_posted=0,
        cr_credits_pending=0,
        cr_credits_posted=1,
    )
    raw = encode_entry(e)  # type: ignore[arg-type]
    assert '"reference":"稻米 \\"5kg\\"\\n\\u0001/"'.encode() in raw
    assert '"ledger_id":"部门"'.encode() in raw and b" " not in raw.replace("稻米 ".encode(), b"")

"""Truly concurrent writers on PostgreSQL: one connection per task, all released at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from ledger import balance, ledger_size, post_pending, sweep_expired, transfer
from ledger import errors as E
from tests.ledger.conftest import DEPT, at, credit, open_dept

Factory = async_sessionmaker[AsyncSession]


async def race(
    factory: Factory, n: int, work: Callable[[AsyncSession, int], Awaitable[Any]]
) -> list[Any]:
    """Run ``work`` in n transactions on n connections, started together; returns each
    result or the exception it raised."""
    ready = 0
    go = asyncio.Event()

    async def one(i: int) -> Any:
        nonlocal ready
        async with factory() as s:
            await (await s.connection()).execute(text("SELECT 1"))  # connection and BEGIN held
            ready += 1
            if ready == n:
                go.set()
            await go.wait()
            try:
                result = await work(s, i)
                await s.commit()
                return result
            except E.LedgerError as exc:
                await s.rollback()
                return exc

    return await asyncio.gather(*(one(i) for i in range(n)))


async def seqs(factory: Factory) -> list[int]:
    async with factory() as s:
        rows = await (await s.connection()).execute(
            text("SELECT seq FROM ledger_entries WHERE ledger_id = :d ORDER BY seq"), {"d": DEPT}
        )
        return [r[0] for r in rows]


async def test_64_concurrent_spenders_never_overdraw_and_exactly_the_affordable_succeed(
    pg_session_factory: Factory,
) -> None:
    async with transaction(pg_session_factory) as s:
        await open_dept(s)
        await credit(s, "alice", 1000, "d1")

    async def spend(s: AsyncSession, i: int) -> Any:
        # half place holds (orders), half spend directly; 25 points each: 40 are affordable
        return await transfer(
            s,
            ledger_id=DEPT,
            debit="user:alice",
            credit="redemption",
            amount=25,
            idempotency_key=f"o{i}",
            actor="alice",
            pending=i % 2 == 0,
        )

    results = await race(pg_session_factory, 64, spend)
    ok = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(ok) == 40 and len(refused) == 24
    assert all(isinstance(r, E.ExceedsCredits) for r in refused)
    async with pg_session_factory() as s:
        alice = await balance(s, DEPT, "user:alice")
        assert alice.available == 0 and alice.debits_posted + alice.debits_pending == 1000
        assert await ledger_size(s, DEPT) == 41
    assert await seqs(pg_session_factory) == list(range(1, 42))


async def test_20_concurrent_retries_of_one_key_make_one_transfer(
    pg_session_factory: Factory,
) -> None:
    async with transaction(pg_session_factory) as s:
        await open_dept(s)

    async def retry(s: AsyncSession, i: int) -> Any:
        return await transfer(
            s,
            ledger_id=DEPT,
            debit="issuance",
            credit="user:bob",
            amount=30,
            idempotency_key="dropoff:42",
            actor="bob",
            reference="dropoff:42",
        )

    results = await race(pg_session_factory, 20, retry)
    assert {r.seq for r in results} == {1}
    async with pg_session_factory() as s:
        assert (await balance(s, DEPT, "user:bob")).posted == 30
        assert await ledger_size(s, DEPT) == 1


async def test_transfers_both_ways_between_two_accounts_do_not_deadlock(
    pg_session_factory: Factory,
) -> None:
    async with transaction(pg_session_factory) as s:
        await open_dept(s)
        await credit(s, "alice", 1000, "d1")
        await credit(s, "bob", 1000, "d2")

    async def swap(s: AsyncSession, i: int) -> Any:
        a, b = ("alice", "bob") if i % 2 else ("bob", "alice")
        return await transfer(
            s,
            ledger_id=DEPT,
            debit=f"user:{a}",
            credit=f"user:{b}",
            amount=1 + i,
            idempotency_key=f"t{i}",
            actor=a,
        )

    results = await race(pg_session_factory, 48, swap)
    assert not [r for r in results if isinstance(r, Exception)]
    assert await seqs(pg_session_factory) == list(range(1, 51))
    async with pg_session_factory() as s:
        total = sum([(await balance(s, DEPT, f"user:{u}")).posted for u in ("alice", "bob")])
    assert total == 2000


async def test_writers_of_many_ledgers_each_get_gapless_sequences(
    pg_session_factory: Factory,
) -> None:
    depts = [f"dept-{k}" for k in range(4)]
    async with transaction(pg_session_factory) as s:
        for d in depts:
            await open_dept(s, d)

    async def write(s: AsyncSession, i: int) -> Any:
        return await credit(s, "alice", 1, f"k{i}", dept=depts[i % 4])

    await race(pg_session_factory, 64, write)
    async with pg_session_factory() as s:
        conn = await s.connection()
        for d in depts:
            rows = await conn.execute(
                text("SELECT seq FROM ledger_entries WHERE ledger_id = :d ORDER BY seq"), {"d": d}
            )
            assert [r[0] for r in rows] == list(range(1, 17))


async def test_a_post_racing_the_expiry_sweep_resolves_the_hold_exactly_once(
    pg_session_factory: Factory,
) -> None:
    async with transaction(pg_session_factory) as s:
        await open_dept(s)
        await credit(s, "alice", 100, "d1", now=at(0))
        h = await transfer(
            s,
            ledger_id=DEPT,
            debit="user:alice",
            credit="redemption",
            amount=40,
            idempotency_key="o1",
            actor="alice",
            pending=True,
            expires_at=at(10),
            now=at(0),
        )

    async def act(s: AsyncSession, i: int) -> Any:
        if i % 2:
            return await sweep_expired(s, at(10))
        return await post_pending(
            s, ledger_id=DEPT, pending_seq=h.seq, idempotency_key=f"p{i}", actor="c", now=at(9)
        )

    results = await race(pg_session_factory, 10, act)
    posts = [r for r in results if not isinstance(r, (int, Exception))]
    swept = sum(r for r in results if isinstance(r, int))
    assert len(posts) + swept == 1
    async with pg_session_factory() as s:
        alice = await balance(s, DEPT, "user:alice")
        assert alice.held == 0 and alice.available in (60, 100)


async def test_concurrent_sweeps_void_each_expired_hold_once_and_count_it_once(
    pg_session_factory: Factory,
) -> None:
    async with transaction(pg_session_factory) as s:
        await open_dept(s)
        await credit(s, "alice", 100, "d1", now=at(0))
        for i in range(5):
            await transfer(
                s,
                ledger_id=DEPT,
                debit="user:alice",
                credit="redemption",
                amount=10,
                idempotency_key=f"o{i}",
                actor="alice",
                pending=True,
                expires_at=at(5),
                now=at(0),
            )

    results = await race(pg_session_factory, 12, lambda s, i: sweep_expired(s, at(6)))
    assert sum(results) == 5
    assert await seqs(pg_session_factory) == list(range(1, 12))
    async with pg_session_factory() as s:
        alice = await balance(s, DEPT, "user:alice")
        assert (alice.held, alice.available) == (0, 100)

"""Accounts and transfers: the rules of ledger/README.md, one test per rule."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from ledger import (
    AccountFlags,
    Balance,
    balance,
    get_entry,
    ledger_size,
    open_account,
    post_pending,
    reverse,
    sweep_expired,
    transfer,
    void_pending,
)
from ledger import errors as E
from ledger.encoding import Entry
from tests.ledger.conftest import EMPLOYEE, at, credit

Factory = async_sessionmaker[AsyncSession]


async def bal(factory: Factory, dept: str, account: str) -> Balance:
    async with factory() as s:
        return await balance(s, dept, account)


async def hold(s: AsyncSession, dept: str, user: str, amount: int, key: str, **kw: object) -> Entry:
    return await transfer(
        s,
        ledger_id=dept,
        debit=f"user:{user}",
        credit="redemption",
        amount=amount,
        idempotency_key=key,
        actor=f"user:{user}",
        reference=f"order:{key}",
        pending=True,
        **kw,  # type: ignore[arg-type]
    )


async def test_direct_credit_moves_points_and_sums_to_zero(
    session_factory: Factory, dept: str
) -> None:
    async with transaction(session_factory) as s:
        seq = await credit(s, "alice", 120, "d1")
    assert seq == 1
    alice = await bal(session_factory, dept, "user:alice")
    issuance = await bal(session_factory, dept, "issuance")
    assert (alice.posted, alice.available) == (120, 120)
    assert issuance.posted == -120  # issuance may go negative: that is what was issued
    assert alice.posted + issuance.posted == 0


async def test_employee_cannot_spend_more_than_available_and_nothing_is_written(
    session_factory: Factory, dept: str
) -> None:
    async with transaction(session_factory) as s:
        await credit(s, "alice", 50, "d1")
    with pytest.raises(E.ExceedsCredits) as err:
        async with transaction(session_factory) as s:
            await hold(s, dept, "alice", 51, "o1")
    assert (err.value.code, err.value.available, err.value.amount) == (
        "ledger.exceeds_credits",
        50,
        51,
    )
    async with session_factory() as s:
        assert await ledger_size(s, dept) == 1


async def test_holds_are_unavailable_and_pending_credits_not_spendable(
    session_factory: Factory, dept: str
) -> None:
    async with transaction(session_factory) as s:
        await credit(s, "alice", 100, "d1")
        await transfer(
            s,
            ledger_id=dept,
            debit="issuance",
            credit="user:alice",
            amount=40,
            idempotency_key="d2",
            actor="alice",
            pending=True,
        )
        await hold(s, dept, "alice", 70, "o1")
    alice = await bal(session_factory, dept, "user:alice")
    assert (alice.available, alice.held, alice.pending_credit) == (30, 70, 40)
    with pytest.raises(E.ExceedsCredits):
        async with transaction(session_factory) as s:
            await hold(s, dept, "alice", 31, "o2")


async def test_post_settles_part_of_a_hold_and_releases_the_rest(
    session_factory: Factory, dept: str
) -> None:
    async with transaction(session_factory) as s:
        await credit(s, "alice", 100, "d1")
        h = await hold(s, dept, "alice", 60, "o1")
        p = await post_pending(
            s, ledger_id=dept, pending_seq=h.seq, amount=45, idempotency_key="pick1", actor="coord"
        )
    assert (p.kind, p.ref_seq, p.amount, p.reference) == ("post", h.seq, 45, "order:o1")
    alice = await bal(session_factory, dept, "user:alice")
    assert (alice.posted, alice.held, alice.available) == (55, 0, 55)
    assert (await bal(session_factory, dept, "redemption")).posted == 45


async def test_void_releases_a_hold_and_a_pending_is_resolved_only_once(
    session_factory: Factory, dept: str
) -> None:
    async with transaction(session_factory) as s:
        await credit(s, "alice", 100, "d1")
        h = await hold(s, dept, "alice", 60, "o1")
        v = await void_pending(
            s, ledger_id=dept, pending_seq=h.seq, idempotency_key="cancel1", actor="alice"
        )
    assert (v.kind, v.amount) == ("void", 60)
    assert (await bal(session_factory, dept, "user:alice")).available == 100
    for op in (post_pending, void_pending):
        with pytest.raises(E.PendingAlreadyResolved) as err:
            async with transaction(session_factory) as s:
                await op(
                    s,
                    ledger_id=dept,
                    pending_seq=h.seq,
                    idempotency_key=f"again-{op.__name__}",
                    actor="x",
                )
        assert err.value.by_seq == v.seq


async def test_post_more_than_pending_is_refused(session_factory: Factory, dept: str) -> None:
    async with transaction(session_factory) as s:
        await credit(s, "alice", 100, "d1")
        h = await hold(s, dept, "alice", 10, "o1")
    with pytest.raises(E.ExceedsPendingAmount):
        async with transaction(session_factory) as s:
            await post_pending(
                s, ledger_id=dept, pending_seq=h.seq, amount=11, idempotency_key="p", actor="c"
            )


async def test_post_and_void_need_a_pending_transfer(session_factory: Factory, dept: str) -> None:
    async with transaction(session_factory) as s:
        seq = await credit(s, "alice", 100, "d1")
    with pytest.raises(E.NotPending):
        async with transaction(session_factory) as s:
            await post_pending(s, ledger_id=dept, pending_seq=seq, idempotency_key="p", actor="c")
    with pytest.raises(E.TransferNotFound):
        async with transaction(session_factory) as s:
            await void_pending(s, ledger_id=dept, pending_seq=99, idempotency_key="v", actor="c")


async def test_expired_pending_cannot_be_posted_and_the_sweep_voids_it(
    session_factory: Factory, dept: str
) -> None:
    async with transaction(session_factory) as s:
        await credit(s, "alice", 100, "d1", now=at(0))
        h = await hold(s, dept, "alice", 30, "o1", expires_at=at(30), now=at(0))
        keep = await hold(s, dept, "alice", 20, "o2", expires_at=at(90), now=at(0))
    with pytest.raises(E.PendingExpired):
        async with transaction(session_factory) as s:
            await post_pending(
                s, ledger_id=dept, pending_seq=h.seq, idempotency_key="late", actor="c", now=at(30)
            )
    async with transaction(session_factory) as s:
        assert await sweep_expired(s, at(31)) == 1
    async with transaction(session_factory) as s:
        assert await sweep_expired(s, at(32)) == 0
        v = await get_entry(s, dept, h.seq + 2)
        assert (v.kind, v.ref_seq, v.actor) == ("void", h.seq, "ledger:sweep")
    alice = await bal(session_factory, dept, "user:alice")
    assert (alice.available, alice.held) == (80, 20)
    async with transaction(session_factory) as s:
        await post_pending(
            s, ledger_id=dept, pending_seq=keep.seq, idempotency_key="ok", actor="c", now=at(40)
        )


async def test_reversal_undoes_a_posted_transfer_once(session_factory: Factory, dept: str) -> None:
    async with transaction(session_factory) as s:
        seq = await credit(s, "alice", 100, "d1")
        r = await reverse(
            s,
            ledger_id=dept,
            seq=seq,
            idempotency_key="fix1",
            actor="auditor",
            reference="adjust: wrong weight",
        )
    assert (r.kind, r.debit_account, r.credit_account, r.amount, r.ref_seq) == (
        "reversal",
        "user:alice",
        "issuance",
        100,
        seq,
    )
    assert (await bal(session_factory, dept, "user:alice")).posted == 0
    with pytest.raises(E.AlreadyReversed) as err:
        async with transaction(session_factory) as s:
            await reverse(s, ledger_id=dept, seq=seq, idempotency_key="fix2", actor="auditor")
    assert err.value.by_seq == r.seq
    with pytest.raises(E.NotReversible):
        async with transaction(session_factory) as s:
            await reverse(s, ledger_id=dept, seq=r.seq, idempotency_key="fix3", actor="auditor")


async def test_reversal_of_points_already_spent_is_refused(
    session_factory: Factory, dept: str
) -> None:
    async with transaction(session_factory) as s:
        seq = await credit(s, "alice", 100, "d1")
        h = await hold(s, dept, "alice", 80, "o1")
        await post_pending(s, ledger_id=dept, pending_seq=h.seq, idempotency_key="pick", actor="c")
    with pytest.raises(E.ExceedsCredits):
        async with transaction(session_factory) as s:
            await reverse(s, ledger_id=dept, seq=seq, idempotency_key="fix", actor="auditor")


async def test_same_key_same_request_returns_the_original_entry(
    session_factory: Factory, dept: str
) -> None:
    async with transaction(session_factory) as s:
        first = await credit(s, "alice", 100, "d1")
    async with transaction(session_factory) as s:
        again = await credit(s, "alice", 100, "d1", now=at(5))
        assert again == first
        assert await ledger_size(s, dept) == 1
    assert (await bal(session_factory, dept, "user:alice")).posted == 100


async def test_same_key_different_request_names_the_key(
    session_factory: Factory, dept: str
) -> None:
    async with transaction(session_factory) as s:
        await credit(s, "alice", 100, "d1")
    with pytest.raises(E.IdempotencyConflict) as err:
        async with transaction(session_factory) as s:
            await credit(s, "alice", 101, "d1")
    assert (
        err.value.key == "d1"
        and "'d1'" in err.value.message
        and "amount 100 != 101" in err.value.message
    )


async def test_retried_post_void_and_reversal_return_the_original(
    session_factory: Factory, dept: str
) -> None:
    async with transaction(session_factory) as s:
        await credit(s, "alice", 100, "d1")
        h1 = await hold(s, dept, "alice", 10, "o1")
        h2 = await hold(s, dept, "alice", 10, "o2")
        p = await post_pending(
            s, ledger_id=dept, pending_seq=h1.seq, idempotency_key="p1", actor="c"
        )
        v = await void_pending(
            s, ledger_id=dept, pending_seq=h2.seq, idempotency_key="v1", actor="c"
        )
        r = await reverse(s, ledger_id=dept, seq=p.seq, idempotency_key="r1", actor="c")
    async with transaction(session_factory) as s:
        assert (
            await post_pending(
                s, ledger_id=dept, pending_seq=h1.seq, idempotency_key="p1", actor="c"
            )
            == p
        )
        assert (
            await void_pending(
                s, ledger_id=dept, pending_seq=h2.seq, idempotency_key="v1", actor="c"
            )
            == v
        )
        assert await reverse(s, ledger_id=dept, seq=p.seq, idempotency_key="r1", actor="c") == r
        with pytest.raises(E.IdempotencyConflict):
            await post_pending(
                s, ledger_id=dept, pending_seq=h1.seq, amount=5, idempotency_key="p1", actor="c"
            )
        with pytest.raises(E.IdempotencyConflict):
            await void_pending(
                s, ledger_id=dept, pending_seq=h1.seq, idempotency_key="v1", actor="c"
            )


async def test_accounts_must_exist_and_keep_their_flags(
    session_factory: Factory, dept: str
) -> None:
    with pytest.raises(E.AccountNotFound):
        async with transaction(session_factory) as s:
            await credit(s, "carol", 1, "d1")
    with pytest.raises(E.AccountFlagsConflict):
        async with transaction(session_factory) as s:
            await open_account(s, dept, "user:alice", AccountFlags.NONE)
    async with transaction(session_factory) as s:
        again = await open_account(s, dept, "user:alice", EMPLOYEE)
    assert again.flags == EMPLOYEE
    with pytest.raises(E.LedgerNotFound):
        async with transaction(session_factory) as s:
            await credit(s, "alice", 1, "x", dept="no-such-dept")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": 2**53}, "amount"),
        ({"amount": True}, "amount"),
        ({"credit": "issuance"}, "credit"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"reference": "x" * 257}, "reference"),
        ({"reference": "\ud800"}, "reference"),
        ({"expires_at": at(1)}, "expires_at"),
        ({"pending": True, "expires_at": at(1)}, "expires_at"),  # already past
        ({"pending": True, "expires_at": datetime(2099, 1, 1)}, "expires_at"),  # naive
    ],
)
async def test_malformed_requests_are_refused_naming_the_field(
    session_factory: Factory, dept: str, kwargs: dict, field: str
) -> None:
    args = {
        "ledger_id": dept,
        "debit": "issuance",
        "credit": "user:alice",
        "amount": 5,
        "idempotency_key": "k",
        "actor": "a",
        **kwargs,
    }
    with pytest.raises(E.InvalidRequest) as err:
        async with transaction(session_factory) as s:
            await transfer(s, **args)
    assert err.value.field == field


async def test_time_never_runs_backwards_within_a_log(session_factory: Factory, dept: str) -> None:
    async with transaction(session_factory) as s:
        await credit(s, "alice", 1, "d1", now=at(10))
        await credit(s, "alice", 1, "d2", now=at(5))  # a clock behind the last writer's
        e1, e2 = await get_entry(s, dept, 1), await get_entry(s, dept, 2)
    assert e2.time_us == e1.time_us


async def test_a_failed_transfer_leaves_the_callers_transaction_usable(
    session_factory: Factory, dept: str
) -> None:
    async with transaction(session_factory) as s:
        await credit(s, "alice", 10, "d1")
        with pytest.raises(E.ExceedsCredits):
            await hold(s, dept, "alice", 11, "o1")
        h = await hold(s, dept, "alice", 10, "o2")
    assert h.seq == 2

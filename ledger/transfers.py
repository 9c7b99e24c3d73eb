"""Transfers: direct, pending, post, void, reversal; and the expiry sweep.

Every write runs inside the caller's transaction and never commits. It first locks the
ledger's head row (``SELECT ... FOR UPDATE``), which serialises the writers of one ledger,
makes sequence numbers gapless and the idempotency check race-free, and gives one fixed
lock order (head, then accounts) so writers never deadlock. Writers to different ledgers
never touch the same rows. Nothing here retries: at READ COMMITTED there is nothing that
could raise a serialization failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.asyncio import AsyncSession as SASession

from ledger import merkle
from ledger.accounts import AccountFlags
from ledger.encoding import MAX_INT, encode_entry, to_us
from ledger.errors import (
    AccountNotFound,
    AlreadyReversed,
    ExceedsCredits,
    ExceedsDebits,
    ExceedsPendingAmount,
    IdempotencyConflict,
    InvalidRequest,
    LedgerNotFound,
    NotPending,
    NotReversible,
    PendingAlreadyResolved,
    PendingExpired,
    TransferNotFound,
)
from ledger.models import (
    ACCOUNT_MAX,
    ACTOR_MAX,
    IDEMPOTENCY_KEY_MAX,
    LEDGER_ID_MAX,
    REFERENCE_MAX,
    LedgerAccount,
    LedgerEntry,
    LedgerHead,
    LedgerMerkleNode,
    LedgerOpenPending,
)
from ledger.validation import check_amount, check_text

DIRECT, PENDING, POST, VOID, REVERSAL = "direct", "pending", "post", "void", "reversal"
SWEEP_ACTOR = "ledger:sweep"

H = LedgerHead.__table__
A = LedgerAccount.__table__
E = LedgerEntry.__table__
N = LedgerMerkleNode.__table__
OP = LedgerOpenPending.__table__

# Statements built once; SQLAlchemy caches their compiled form.
_LOCK_HEAD = (
    select(H.c.size, H.c.frontier, H.c.last_time_us)
    .where(H.c.ledger_id == bindparam("lid"))
    .with_for_update()
)
_BY_KEY = select(E).where(
    E.c.ledger_id == bindparam("lid"), E.c.idempotency_key == bindparam("key")
)
_BY_SEQ = select(E).where(E.c.ledger_id == bindparam("lid"), E.c.seq == bindparam("seq"))
_BY_REF = select(E.c.seq, E.c.kind).where(
    E.c.ledger_id == bindparam("lid"), E.c.ref_seq == bindparam("seq")
)
_ACCOUNTS = select(A).where(
    A.c.ledger_id == bindparam("lid"), A.c.code.in_([bindparam("d"), bindparam("c")])
)
_UPDATE_ACCOUNT = (
    update(A)
    .where(A.c.ledger_id == bindparam("b_lid"), A.c.code == bindparam("b_code"))
    .values(
        debits_pending=bindparam("b_dp"),
        debits_posted=bindparam("b_dpo"),
        credits_pending=bindparam("b_cp"),
        credits_posted=bindparam("b_cpo"),
    )
)
_UPDATE_HEAD = (
    update(H)
    .where(H.c.ledger_id == bindparam("b_lid"))
    .values(
        size=bindparam("b_size"),
        frontier=bindparam("b_frontier"),
        last_time_us=bindparam("b_time"),
    )
)
_INSERT_ENTRY = E.insert()
_INSERT_NODES = N.insert()
_INSERT_OPEN = OP.insert()
_DELETE_OPEN = delete(OP).where(OP.c.ledger_id == bindparam("lid"), OP.c.seq == bindparam("seq"))
_OPEN = select(OP.c.expires_at_us).where(
    OP.c.ledger_id == bindparam("lid"), OP.c.seq == bindparam("seq")
)


Resolver = Callable[[AsyncConnection, int], Awaitable["_Plan"]]
Comparer = Callable[[AsyncConnection, LedgerEntry], Awaitable[list[str]]]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Plan:
    """What a request resolves to once its references are read: the entry to append."""

    kind: str
    debit: str
    credit: str
    amount: int
    reference: str
    ref_seq: int | None = None
    expires_at_us: int | None = None
    # Changes to the four counters (debits_pending, debits_posted, credits_pending,
    # credits_posted) of the debit and the credit account.
    debit_delta: tuple[int, int, int, int] = (0, 0, 0, 0)
    credit_delta: tuple[int, int, int, int] = (0, 0, 0, 0)


def _check_common(ledger_id: str, key: str, actor: str, reference: str | None) -> None:
    check_text("ledger_id", ledger_id, LEDGER_ID_MAX)
    check_text("idempotency_key", key, IDEMPOTENCY_KEY_MAX)
    check_text("actor", actor, ACTOR_MAX)
    if reference is not None:
        check_text("reference", reference, REFERENCE_MAX, allow_empty=True)


async def transfer(
    session: SASession,
    *,
    ledger_id: str,
    debit: str,
    credit: str,
    amount: int,
    idempotency_key: str,
    actor: str,
    reference: str = "",
    pending: bool = False,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> LedgerEntry:
    """Move ``amount`` from ``debit`` to ``credit``: at once (direct), or as a pending
    transfer (a hold) that a later post settles or a void releases. Returns the entry; the
    entry's ``seq`` is the transfer's id."""
    _check_common(ledger_id, idempotency_key, actor, reference)
    check_text("debit", debit, ACCOUNT_MAX)
    check_text("credit", credit, ACCOUNT_MAX)
    check_amount("amount", amount)
    if debit == credit:
        raise InvalidRequest("credit", "must differ from the debit account")
    if expires_at is not None and not pending:
        raise InvalidRequest("expires_at", "only pending transfers expire")
    expires_us = to_us(expires_at) if expires_at is not None else None
    if pending:
        plan = _Plan(
            PENDING, debit, credit, amount, reference, None, expires_us,
            (amount, 0, 0, 0), (0, 0, amount, 0),
        )  # fmt: skip
    else:
        plan = _Plan(DIRECT, debit, credit, amount, reference, None, None,
                     (0, amount, 0, 0), (0, 0, 0, amount))  # fmt: skip

    async def resolve(conn: AsyncConnection, time_us: int) -> _Plan:
        return plan

    return await _write(session, ledger_id, idempotency_key, actor, now, plan.kind, resolve,
                        _same_transfer(plan))  # fmt: skip


async def post_pending(
    session: SASession,
    *,
    ledger_id: str,
    pending_seq: int,
    idempotency_key: str,
    actor: str,
    amount: int | None = None,
    reference: str | None = None,
    now: datetime | None = None,
) -> LedgerEntry:
    """Settle a pending transfer: all of it (``amount=None``) or part of it; the rest is
    released. ``reference`` defaults to the pending transfer's."""
    _check_common(ledger_id, idempotency_key, actor, reference)
    if amount is not None:
        check_amount("amount", amount)

    async def resolve(conn: AsyncConnection, time_us: int) -> _Plan:
        p, expires_us = await _open_pending(conn, ledger_id, pending_seq)
        if expires_us is not None and time_us >= expires_us:
            raise PendingExpired(pending_seq)
        posted = p.amount if amount is None else amount
        if posted > p.amount:
            raise ExceedsPendingAmount(pending_seq, p.amount, posted)
        ref = p.reference if reference is None else reference
        return _Plan(POST, p.debit_account, p.credit_account, posted, ref, pending_seq, None,
                     (-p.amount, posted, 0, 0), (0, 0, -p.amount, posted))  # fmt: skip

    async def same(conn: AsyncConnection, e: LedgerEntry) -> list[str]:
        diffs = _diff(e, kind=POST, ref_seq=pending_seq, reference=reference)
        if amount is not None and e.amount != amount:
            diffs.append(f"amount {e.amount} != {amount}")
        elif amount is None and e.kind == POST and e.ref_seq is not None:
            p = await _entry(conn, ledger_id, e.ref_seq)
            if p.amount != e.amount:
                diffs.append(f"amount {e.amount} was a partial post of {p.amount}")
        return diffs

    return await _write(session, ledger_id, idempotency_key, actor, now, POST, resolve, same)


async def void_pending(
    session: SASession,
    *,
    ledger_id: str,
    pending_seq: int,
    idempotency_key: str,
    actor: str,
    reference: str | None = None,
    now: datetime | None = None,
) -> LedgerEntry:
    """Release a pending transfer entirely (cancelled order, rejected drop-off, expiry)."""
    _check_common(ledger_id, idempotency_key, actor, reference)

    async def resolve(conn: AsyncConnection, time_us: int) -> _Plan:
        p, _ = await _open_pending(conn, ledger_id, pending_seq)
        ref = p.reference if reference is None else reference
        return _Plan(VOID, p.debit_account, p.credit_account, p.amount, ref, pending_seq, None,
                     (-p.amount, 0, 0, 0), (0, 0, -p.amount, 0))  # fmt: skip

    async def same(conn: AsyncConnection, e: LedgerEntry) -> list[str]:
        return _diff(e, kind=VOID, ref_seq=pending_seq, reference=reference)

    return await _write(session, ledger_id, idempotency_key, actor, now, VOID, resolve, same)


async def reverse(
    session: SASession,
    *,
    ledger_id: str,
    seq: int,
    idempotency_key: str,
    actor: str,
    reference: str | None = None,
    now: datetime | None = None,
) -> LedgerEntry:
    """Undo a posted transfer (direct or post) with a new transfer the other way, pointing
    at it. Each posted transfer can be reversed once; the reversal obeys the flags like any
    transfer, so points already spent cannot be taken back."""
    _check_common(ledger_id, idempotency_key, actor, reference)

    async def resolve(conn: AsyncConnection, time_us: int) -> _Plan:
        t = await _entry(conn, ledger_id, seq)
        if t.kind not in (DIRECT, POST):
            raise NotReversible(seq, t.kind)
        by = (await conn.execute(_BY_REF, {"lid": ledger_id, "seq": seq})).one_or_none()
        if by is not None:
            raise AlreadyReversed(seq, by.seq)
        ref = t.reference if reference is None else reference
        return _Plan(REVERSAL, t.credit_account, t.debit_account, t.amount, ref, seq, None,
                     (0, t.amount, 0, 0), (0, 0, 0, t.amount))  # fmt: skip

    async def same(conn: AsyncConnection, e: LedgerEntry) -> list[str]:
        return _diff(e, kind=REVERSAL, ref_seq=seq, reference=reference)

    return await _write(session, ledger_id, idempotency_key, actor, now, REVERSAL, resolve, same)


async def sweep_expired(
    session: SASession,
    now: datetime | None = None,
    *,
    ledger_id: str | None = None,
    actor: str = SWEEP_ACTOR,
) -> int:
    """Void every pending transfer whose expiry has passed; returns how many were voided.

    Ledgers are visited in id order and each void locks its ledger's head, so a sweep over
    several ledgers in one transaction takes locks in one global order and cannot deadlock
    with other writers (who each hold one head)."""
    now = now or utcnow()
    now_us = to_us(now)
    conn = await session.connection()
    stmt = select(OP.c.ledger_id, OP.c.seq).where(OP.c.expires_at_us <= now_us)
    if ledger_id is not None:
        stmt = stmt.where(OP.c.ledger_id == ledger_id)
    rows = (await conn.execute(stmt.order_by(OP.c.ledger_id, OP.c.seq))).all()
    voided = 0
    for row in rows:
        try:
            await void_pending(
                session,
                ledger_id=row.ledger_id,
                pending_seq=row.seq,
                idempotency_key=f"ledger:expire:{row.seq}",
                actor=actor,
                now=now,
            )
        except PendingAlreadyResolved:
            continue  # resolved by someone else between our read and our lock
        voided += 1
    return voided


# --- internals -----------------------------------------------------------------------------


def _same_transfer(plan: _Plan) -> Comparer:
    async def same(conn: AsyncConnection, e: LedgerEntry) -> list[str]:
        return _diff(
            e,
            kind=plan.kind,
            debit_account=plan.debit,
            credit_account=plan.credit,
            amount=plan.amount,
            reference=plan.reference,
            expires_at_us=plan.expires_at_us,
        )

    return same


def _diff(e: LedgerEntry, **wanted: Any) -> list[str]:
    """Fields of the stored entry that differ from the retried request (None: not given)."""
    return [
        f"{name} {getattr(e, name)!r} != {value!r}"
        for name, value in wanted.items()
        if (value is not None or name == "expires_at_us") and getattr(e, name) != value
    ]


async def _entry(conn: AsyncConnection, ledger_id: str, seq: int) -> LedgerEntry:
    row = (await conn.execute(_BY_SEQ, {"lid": ledger_id, "seq": seq})).one_or_none()
    if row is None:
        raise TransferNotFound(ledger_id, seq)
    return LedgerEntry(**row._mapping)


async def _open_pending(
    conn: AsyncConnection, ledger_id: str, seq: int
) -> tuple[LedgerEntry, int | None]:
    p = await _entry(conn, ledger_id, seq)
    if p.kind != PENDING:
        raise NotPending(seq, p.kind)
    open_row = (await conn.execute(_OPEN, {"lid": ledger_id, "seq": seq})).one_or_none()
    if open_row is None:
        by = (await conn.execute(_BY_REF, {"lid": ledger_id, "seq": seq})).one()
        raise PendingAlreadyResolved(seq, by.seq, by.kind)
    return p, open_row.expires_at_us


async def _write(
    session: SASession,
    ledger_id: str,
    key: str,
    actor: str,
    now: datetime | None,
    kind: str,
    resolve: Resolver,
    same: Comparer,
) -> LedgerEntry:
    conn = await session.connection()
    head = (await conn.execute(_LOCK_HEAD, {"lid": ledger_id})).one_or_none()
    if head is None:
        raise LedgerNotFound(ledger_id)
    # Under the head lock no other writer of this ledger can be between its own key check
    # and insert, so this read decides idempotency exactly.
    found = (await conn.execute(_BY_KEY, {"lid": ledger_id, "key": key})).one_or_none()
    if found is not None:
        existing = LedgerEntry(**found._mapping)
        diffs = await same(conn, existing)
        if diffs:
            raise IdempotencyConflict(key, existing.seq, "; ".join(diffs))
        return existing

    # Time never runs backwards within a log, so "as of a time" is "as of a seq".
    time_us = max(to_us(now or utcnow()), head.last_time_us)
    plan: _Plan = await resolve(conn, time_us)

    rows = {
        r.code: r
        for r in (
            await conn.execute(_ACCOUNTS, {"lid": ledger_id, "d": plan.debit, "c": plan.credit})
        )
    }
    for code in (plan.debit, plan.credit):
        if code not in rows:
            raise AccountNotFound(ledger_id, code)
    dr = _apply(rows[plan.debit], plan.debit_delta, plan.amount)
    cr = _apply(rows[plan.credit], plan.credit_delta, plan.amount)

    seq = head.size + 1
    entry = LedgerEntry(
        ledger_id=ledger_id,
        seq=seq,
        kind=plan.kind,
        time_us=time_us,
        debit_account=plan.debit,
        credit_account=plan.credit,
        amount=plan.amount,
        ref_seq=plan.ref_seq,
        expires_at_us=plan.expires_at_us,
        reference=plan.reference,
        actor=actor,
        idempotency_key=key,
        debit_flags=rows[plan.debit].flags,
        credit_flags=rows[plan.credit].flags,
        dr_debits_pending=dr[0],
        dr_debits_posted=dr[1],
        dr_credits_pending=dr[2],
        dr_credits_posted=dr[3],
        cr_debits_pending=cr[0],
        cr_debits_posted=cr[1],
        cr_credits_pending=cr[2],
        cr_credits_posted=cr[3],
    )
    leaf = merkle.leaf_hash(encode_entry(entry))
    frontier, completed = merkle.append_leaf(merkle.split_frontier(head.frontier), head.size, leaf)

    await conn.execute(
        _UPDATE_ACCOUNT,
        [
            {"b_lid": ledger_id, "b_code": plan.debit, "b_dp": dr[0], "b_dpo": dr[1],
             "b_cp": dr[2], "b_cpo": dr[3]},
            {"b_lid": ledger_id, "b_code": plan.credit, "b_dp": cr[0], "b_dpo": cr[1],
             "b_cp": cr[2], "b_cpo": cr[3]},
        ],
    )  # fmt: skip
    await conn.execute(_INSERT_ENTRY, entry.model_dump())
    await conn.execute(
        _INSERT_NODES,
        [{"ledger_id": ledger_id, "level": lv, "idx": ix, "hash": h} for lv, ix, h in completed],
    )
    if plan.kind == PENDING:
        await conn.execute(
            _INSERT_OPEN, {"ledger_id": ledger_id, "seq": seq, "expires_at_us": plan.expires_at_us}
        )
    elif plan.kind in (POST, VOID):
        await conn.execute(_DELETE_OPEN, {"lid": ledger_id, "seq": plan.ref_seq})
    await conn.execute(
        _UPDATE_HEAD,
        {"b_lid": ledger_id, "b_size": seq, "b_frontier": b"".join(frontier), "b_time": time_us},
    )
    return entry


def _apply(row: Any, delta: tuple[int, int, int, int], amount: int) -> tuple[int, int, int, int]:
    """New counters of an account after ``delta``, refused if they break its flags."""
    dp = row.debits_pending + delta[0]
    dpo = row.debits_posted + delta[1]
    cp = row.credits_pending + delta[2]
    cpo = row.credits_posted + delta[3]
    flags = row.flags
    if flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS and dp + dpo > cpo:
        available = row.credits_posted - row.debits_posted - row.debits_pending
        raise ExceedsCredits(row.code, available, amount)
    if flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS and cp + cpo > dpo:
        room = row.debits_posted - row.credits_posted - row.credits_pending
        raise ExceedsDebits(row.code, room, amount)
    if max(dp, dpo, cp, cpo) > MAX_INT:
        raise InvalidRequest("amount", "would overflow the account's counters")
    return dp, dpo, cp, cpo

"""Transfers: direct, pending, post, void, reversal; and the expiry sweep.

Every write runs inside the caller's transaction and never commits. It first locks the
ledger's head row (``SELECT ... FOR UPDATE``), which serialises the writers of one ledger,
makes sequence numbers gapless and the idempotency check race-free, and gives one fixed
lock order (head, then accounts) so writers never deadlock. Writers to different ledgers
never touch the same rows. Nothing here retries: at READ COMMITTED there is nothing that
could raise a serialization failure.

A write sequences its entry and nothing more: the Merkle tree takes it later, in a batch
(ledger/integration.py), so no hashing happens while the head is held.

On PostgreSQL the lock, the checks and all the writes are one call of ``ledger_append``
(ledger/sql/ledger_append.sql), so the head is held for that call plus the commit; the
Python path below runs there only to explain a replay or a refusal. SQLite runs the Python
path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.accounts import AccountFlags, create_ledger, insert_account
from ledger.db import Db, connection_of
from ledger.encoding import MAX_INT, Entry, to_us
from ledger.errors import (
    AccountFlagsConflict,
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
    LedgerOpenPending,
)
from ledger.validation import check_amount, check_text

DIRECT, PENDING, POST, VOID, REVERSAL = "direct", "pending", "post", "void", "reversal"
SWEEP_ACTOR = "ledger:sweep"

H = LedgerHead.__table__
A = LedgerAccount.__table__
E = LedgerEntry.__table__
OP = LedgerOpenPending.__table__

# Statements built once; SQLAlchemy caches their compiled form.
_LOCK_HEAD = (
    select(H.c.size, H.c.last_time_us)
    .where(H.c.ledger_id == bindparam("ledger_id"))
    .with_for_update()
)
_BY_SEQ = select(E).where(E.c.ledger_id == bindparam("ledger_id"), E.c.seq == bindparam("seq"))
_BY_REF = select(E.c.seq, E.c.kind).where(
    E.c.ledger_id == bindparam("ledger_id"), E.c.ref_seq == bindparam("seq")
)
_SEQ_BY_KEY = select(E.c.seq).where(
    E.c.ledger_id == bindparam("ledger_id"), E.c.idempotency_key == bindparam("key")
)
_ACCOUNTS_AND_KEY = select(A, _SEQ_BY_KEY.scalar_subquery().label("dup_seq")).where(
    A.c.ledger_id == bindparam("ledger_id"), A.c.code.in_([bindparam("debit"), bindparam("credit")])
)
_ACCOUNTS = select(A).where(
    A.c.ledger_id == bindparam("ledger_id"), A.c.code.in_([bindparam("debit"), bindparam("credit")])
)
_UPDATE_ACCOUNT = (
    update(A)
    .where(A.c.ledger_id == bindparam("of_ledger"), A.c.code == bindparam("of_account"))
    .values(
        debits_pending=bindparam("new_debits_pending"),
        debits_posted=bindparam("new_debits_posted"),
        credits_pending=bindparam("new_credits_pending"),
        credits_posted=bindparam("new_credits_posted"),
    )
)
_NEW_COUNTERS = (
    "new_debits_pending",
    "new_debits_posted",
    "new_credits_pending",
    "new_credits_posted",
)
_UPDATE_HEAD = (
    update(H)
    .where(H.c.ledger_id == bindparam("of_ledger"))
    .values(size=bindparam("new_size"), last_time_us=bindparam("new_time"))
)
_INSERT_ENTRY = E.insert()
_INSERT_OPEN = OP.insert()
_DELETE_OPEN = delete(OP).where(
    OP.c.ledger_id == bindparam("ledger_id"), OP.c.seq == bindparam("seq")
)
_OPEN = select(OP.c.expires_at_us).where(
    OP.c.ledger_id == bindparam("ledger_id"), OP.c.seq == bindparam("seq")
)


Resolver = Callable[[AsyncConnection, int], Awaitable["_Plan"]]
Comparer = Callable[[AsyncConnection, Entry], Awaitable[list[str]]]


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
    db: Db,
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
    open_with: tuple[int, int] | None = None,
) -> Entry:
    """Move ``amount`` from ``debit`` to ``credit``: at once (direct), or as a pending
    transfer (a hold) that a later post settles or a void releases. Returns the entry; the
    entry's ``seq`` is the transfer's id.

    ``open_with``: the flags of the debit and the credit account; either account, and the
    ledger, is opened with them if missing (an existing one with other flags is refused with
    AccountFlagsConflict). Without it both must exist."""
    _check_common(ledger_id, idempotency_key, actor, reference)
    check_text("debit", debit, ACCOUNT_MAX)
    check_text("credit", credit, ACCOUNT_MAX)
    check_amount("amount", amount)
    if debit == credit:
        raise InvalidRequest("credit", "must differ from the debit account")
    if expires_at is not None and not pending:
        raise InvalidRequest("expires_at", "only pending transfers expire")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidRequest("expires_at", "must be timezone-aware")
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
        if expires_us is not None and expires_us <= time_us:
            raise InvalidRequest("expires_at", "must be later than now")
        return plan

    if open_with is not None:
        open_with = (int(AccountFlags(open_with[0])), int(AccountFlags(open_with[1])))
    request = _request(plan.kind, debit, credit, amount, reference, None, expires_us, open_with)
    entry, _ = await _write(db, ledger_id, idempotency_key, actor, now, request, resolve,
                            _same_transfer(plan), (debit, credit), open_with)  # fmt: skip
    return entry


async def post_pending(
    db: Db,
    *,
    ledger_id: str,
    pending_seq: int,
    idempotency_key: str,
    actor: str,
    amount: int | None = None,
    reference: str | None = None,
    now: datetime | None = None,
) -> Entry:
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

    async def same(conn: AsyncConnection, e: Entry) -> list[str]:
        diffs = _diff(e, kind=POST, ref_seq=pending_seq, reference=reference)
        if amount is not None and e.amount != amount:
            diffs.append(f"amount {e.amount} != {amount}")
        elif amount is None and e.kind == POST and e.ref_seq is not None:
            p = await _entry(conn, ledger_id, e.ref_seq)
            if p.amount != e.amount:
                diffs.append(f"amount {e.amount} was a partial post of {p.amount}")
        return diffs

    request = _request(POST, None, None, amount, reference, pending_seq)
    entry, _ = await _write(db, ledger_id, idempotency_key, actor, now, request, resolve, same)
    return entry


async def void_pending(
    db: Db,
    *,
    ledger_id: str,
    pending_seq: int,
    idempotency_key: str,
    actor: str,
    reference: str | None = None,
    now: datetime | None = None,
) -> Entry:
    """Release a pending transfer entirely (cancelled order, rejected drop-off, expiry)."""
    entry, _ = await _void(db, ledger_id, pending_seq, idempotency_key, actor, reference, now)
    return entry


async def _void(
    db: Db,
    ledger_id: str,
    pending_seq: int,
    idempotency_key: str,
    actor: str,
    reference: str | None,
    now: datetime | None,
) -> tuple[Entry, bool]:
    _check_common(ledger_id, idempotency_key, actor, reference)

    async def resolve(conn: AsyncConnection, time_us: int) -> _Plan:
        p, _ = await _open_pending(conn, ledger_id, pending_seq)
        ref = p.reference if reference is None else reference
        return _Plan(VOID, p.debit_account, p.credit_account, p.amount, ref, pending_seq, None,
                     (-p.amount, 0, 0, 0), (0, 0, -p.amount, 0))  # fmt: skip

    async def same(conn: AsyncConnection, e: Entry) -> list[str]:
        return _diff(e, kind=VOID, ref_seq=pending_seq, reference=reference)

    request = _request(VOID, None, None, None, reference, pending_seq)
    return await _write(db, ledger_id, idempotency_key, actor, now, request, resolve, same)


async def reverse(
    db: Db,
    *,
    ledger_id: str,
    seq: int,
    idempotency_key: str,
    actor: str,
    reference: str | None = None,
    now: datetime | None = None,
) -> Entry:
    """Undo a posted transfer (direct or post) with a new transfer the other way, pointing
    at it. Each posted transfer can be reversed once; the reversal obeys the flags like any
    transfer, so points already spent cannot be taken back."""
    _check_common(ledger_id, idempotency_key, actor, reference)

    async def resolve(conn: AsyncConnection, time_us: int) -> _Plan:
        t = await _entry(conn, ledger_id, seq)
        if t.kind not in (DIRECT, POST):
            raise NotReversible(seq, t.kind)
        by = (await conn.execute(_BY_REF, {"ledger_id": ledger_id, "seq": seq})).one_or_none()
        if by is not None:
            raise AlreadyReversed(seq, by.seq)
        ref = t.reference if reference is None else reference
        return _Plan(REVERSAL, t.credit_account, t.debit_account, t.amount, ref, seq, None,
                     (0, t.amount, 0, 0), (0, 0, 0, t.amount))  # fmt: skip

    async def same(conn: AsyncConnection, e: Entry) -> list[str]:
        return _diff(e, kind=REVERSAL, ref_seq=seq, reference=reference)

    request = _request(REVERSAL, None, None, None, reference, seq)
    entry, _ = await _write(db, ledger_id, idempotency_key, actor, now, request, resolve, same)
    return entry


async def sweep_expired(
    db: Db,
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
    conn = await connection_of(db)
    stmt = select(OP.c.ledger_id, OP.c.seq).where(OP.c.expires_at_us <= now_us)
    if ledger_id is not None:
        stmt = stmt.where(OP.c.ledger_id == ledger_id)
    rows = (await conn.execute(stmt.order_by(OP.c.ledger_id, OP.c.seq))).all()
    voided = 0
    for row in rows:
        try:
            _, wrote = await _void(
                db, row.ledger_id, row.seq, f"ledger:expire:{row.seq}", actor, None, now
            )
        except PendingAlreadyResolved:
            continue  # resolved by someone else between our read and our lock
        # A concurrent sweep may have voided it under the same key: then this is a replay.
        voided += wrote
    return voided


# --- internals -----------------------------------------------------------------------------


def _same_transfer(plan: _Plan) -> Comparer:
    async def same(conn: AsyncConnection, e: Entry) -> list[str]:
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


def _diff(e: Entry, **wanted: Any) -> list[str]:
    """Fields of the stored entry that differ from the retried request (None: not given)."""
    return [
        f"{name} {getattr(e, name)!r} != {value!r}"
        for name, value in wanted.items()
        if (value is not None or name == "expires_at_us") and getattr(e, name) != value
    ]


async def _seq_by_key(conn: AsyncConnection, ledger_id: str, key: str) -> int | None:
    return (
        await conn.execute(_SEQ_BY_KEY, {"ledger_id": ledger_id, "key": key})
    ).scalar_one_or_none()


async def _entry(conn: AsyncConnection, ledger_id: str, seq: int) -> Entry:
    row = (await conn.execute(_BY_SEQ, {"ledger_id": ledger_id, "seq": seq})).one_or_none()
    if row is None:
        raise TransferNotFound(ledger_id, seq)
    return Entry.from_row(row)


async def _open_pending(
    conn: AsyncConnection, ledger_id: str, seq: int
) -> tuple[Entry, int | None]:
    p = await _entry(conn, ledger_id, seq)
    if p.kind != PENDING:
        raise NotPending(seq, p.kind)
    open_row = (await conn.execute(_OPEN, {"ledger_id": ledger_id, "seq": seq})).one_or_none()
    if open_row is None:
        by = (await conn.execute(_BY_REF, {"ledger_id": ledger_id, "seq": seq})).one()
        raise PendingAlreadyResolved(seq, by.seq, by.kind)
    return p, open_row.expires_at_us


def _request(
    kind: str,
    debit: str | None,
    credit: str | None,
    amount: int | None,
    reference: str | None,
    ref_seq: int | None,
    expires_at_us: int | None = None,
    open_with: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The parameters of ``ledger_append`` (PostgreSQL) for one request; None where the
    function takes the value from the entry referred to."""
    return {
        "kind": kind,
        "debit": debit,
        "credit": credit,
        "amount": amount,
        "reference": reference,
        "ref_seq": ref_seq,
        "expires_at_us": expires_at_us,
        "debit_flags": None if open_with is None else open_with[0],
        "credit_flags": None if open_with is None else open_with[1],
    }


# The whole append in one round trip: see ledger/sql/ledger_append.sql.
# Typed result columns: SQLAlchemy then builds the result's metadata once, not per call.
_PG_APPEND = text(
    "SELECT * FROM ledger_append(:ledger_id, :key, :actor, :kind, :debit, :credit, :amount,"
    " :reference, :ref_seq, :expires_at_us, :now_us, :debit_flags, :credit_flags)"
).columns(*E.columns)


async def _write(
    db: Db,
    ledger_id: str,
    key: str,
    actor: str,
    now: datetime | None,
    request: dict[str, Any],
    resolve: Resolver,
    same: Comparer,
    accounts: tuple[str, str] | None = None,
    open_with: tuple[int, int] | None = None,
) -> tuple[Entry, bool]:
    """Append the entry ``resolve`` plans, or find the one this key wrote before.
    Returns the entry and whether this call wrote it.

    On PostgreSQL ``ledger_append`` does the whole append in one statement. It writes
    nothing when the request is a replay or is refused; the Python path below, under the lock
    the function took, then finds the original entry or raises the precise error."""
    conn = await connection_of(db)
    now_us = to_us(now or utcnow())
    on_postgres = conn.dialect.name == "postgresql"
    if on_postgres:
        params = {**request, "ledger_id": ledger_id, "key": key, "actor": actor, "now_us": now_us}
        row = (await conn.execute(_PG_APPEND, params)).one_or_none()
        if row is not None:
            return Entry.from_row(row), True
    head = (await conn.execute(_LOCK_HEAD, {"ledger_id": ledger_id})).one_or_none()
    if head is None:
        if open_with is None:
            raise LedgerNotFound(ledger_id)
        await create_ledger(conn, ledger_id)
        head = (await conn.execute(_LOCK_HEAD, {"ledger_id": ledger_id})).one()
    # Everything below runs under the head lock, in statements started after it was granted,
    # so at READ COMMITTED they see every entry the previous holder committed: the key check
    # decides idempotency exactly and the balances are current.
    rows: list[Any] | None = None
    if accounts is not None:
        # Accounts known up front (direct and pending): read them and the key in one go.
        params = {"ledger_id": ledger_id, "key": key, "debit": accounts[0], "credit": accounts[1]}
        rows = list(await conn.execute(_ACCOUNTS_AND_KEY, params))
        dup = rows[0].dup_seq if rows else await _seq_by_key(conn, ledger_id, key)
    else:
        dup = await _seq_by_key(conn, ledger_id, key)
    if dup is not None:
        existing = await _entry(conn, ledger_id, dup)
        diffs = await same(conn, existing)
        if diffs:
            raise IdempotencyConflict(key, existing.seq, "; ".join(diffs))
        return existing, False

    # Time never runs backwards within a log, so "as of a time" is "as of a seq".
    time_us = max(now_us, head.last_time_us)
    plan: _Plan = await resolve(conn, time_us)
    if rows is None:
        params = {"ledger_id": ledger_id, "debit": plan.debit, "credit": plan.credit}
        rows = list(await conn.execute(_ACCOUNTS, params))
    by_code = {r.code: r for r in rows}
    for code, flags in zip((plan.debit, plan.credit), open_with or (None, None), strict=True):
        if code not in by_code:
            if flags is None:
                raise AccountNotFound(ledger_id, code)
            by_code[code] = await insert_account(conn, ledger_id, code, flags, now_us)
        elif flags is not None and by_code[code].flags != flags:
            raise AccountFlagsConflict(code, by_code[code].flags, flags)
    dr = _apply(by_code[plan.debit], plan.debit_delta, plan.amount)
    cr = _apply(by_code[plan.credit], plan.credit_delta, plan.amount)

    entry = Entry(
        ledger_id=ledger_id,
        seq=head.size + 1,
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
        debit_flags=by_code[plan.debit].flags,
        credit_flags=by_code[plan.credit].flags,
        dr_debits_pending=dr[0],
        dr_debits_posted=dr[1],
        dr_credits_pending=dr[2],
        dr_credits_posted=dr[3],
        cr_debits_pending=cr[0],
        cr_debits_posted=cr[1],
        cr_credits_pending=cr[2],
        cr_credits_posted=cr[3],
    )
    if on_postgres:
        # ledger_append refused what the rules above allow: the two must agree.
        raise RuntimeError(f"ledger_append and the Python rules disagree on {entry!r}")
    await _write_entry(conn, plan, entry, dr, cr)
    return entry, True


async def _write_entry(
    conn: AsyncConnection,
    plan: _Plan,
    entry: Entry,
    dr: tuple[int, int, int, int],
    cr: tuple[int, int, int, int],
) -> None:
    lid, seq = entry.ledger_id, entry.seq
    await conn.execute(
        _UPDATE_ACCOUNT,
        [
            {
                "of_ledger": lid,
                "of_account": code,
                **dict(zip(_NEW_COUNTERS, counters, strict=True)),
            }
            for code, counters in ((plan.debit, dr), (plan.credit, cr))
        ],
    )
    await conn.execute(_INSERT_ENTRY, entry.as_dict())
    if plan.kind == PENDING:
        await conn.execute(
            _INSERT_OPEN, {"ledger_id": lid, "seq": seq, "expires_at_us": plan.expires_at_us}
        )
    elif plan.kind in (POST, VOID):
        await conn.execute(_DELETE_OPEN, {"ledger_id": lid, "seq": plan.ref_seq})
    await conn.execute(_UPDATE_HEAD, {"of_ledger": lid, "new_size": seq, "new_time": entry.time_us})


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

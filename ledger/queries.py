"""Reading the log: entries, balances now and as of a seq or a time, keyset-paginated
listings, and the streaming JSON Lines export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, union_all

from ledger.accounts import Balance, get_account
from ledger.db import Db, connection_of
from ledger.encoding import MAX_INT, Entry, encode_entry, to_us
from ledger.errors import InvalidRequest, LedgerNotFound, TransferNotFound
from ledger.models import LedgerEntry, LedgerHead

E = LedgerEntry.__table__
H = LedgerHead.__table__

MAX_LIMIT = 500

_BY_SEQ = select(E).where(E.c.ledger_id == bindparam("ledger_id"), E.c.seq == bindparam("seq"))
_BY_KEY = select(E).where(
    E.c.ledger_id == bindparam("ledger_id"), E.c.idempotency_key == bindparam("key")
)
_LAST_AS_DEBIT = (
    select(E)
    .where(
        E.c.ledger_id == bindparam("ledger_id"),
        E.c.debit_account == bindparam("acct"),
        E.c.seq <= bindparam("seq"),
    )
    .order_by(E.c.seq.desc())
    .limit(1)
)
_LAST_AS_CREDIT = (
    select(E)
    .where(
        E.c.ledger_id == bindparam("ledger_id"),
        E.c.credit_account == bindparam("acct"),
        E.c.seq <= bindparam("seq"),
    )
    .order_by(E.c.seq.desc())
    .limit(1)
)
_SEQ_AT_TIME = (
    select(E.c.seq)
    .where(E.c.ledger_id == bindparam("ledger_id"), E.c.time_us <= bindparam("t"))
    .order_by(E.c.time_us.desc(), E.c.seq.desc())
    .limit(1)
)


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    next: str | None  # cursor for ``after``; None on the last page


async def ledger_size(db: Db, ledger_id: str) -> int:
    conn = await connection_of(db)
    size = (
        await conn.execute(select(H.c.size).where(H.c.ledger_id == ledger_id))
    ).scalar_one_or_none()
    if size is None:
        raise LedgerNotFound(ledger_id)
    return size


async def get_entry(db: Db, ledger_id: str, seq: int) -> Entry:
    conn = await connection_of(db)
    row = (await conn.execute(_BY_SEQ, {"ledger_id": ledger_id, "seq": seq})).one_or_none()
    if row is None:
        raise TransferNotFound(ledger_id, seq)
    return Entry.from_row(row)


async def entry_by_key(db: Db, ledger_id: str, key: str) -> Entry | None:
    conn = await connection_of(db)
    row = (await conn.execute(_BY_KEY, {"ledger_id": ledger_id, "key": key})).one_or_none()
    return None if row is None else Entry.from_row(row)


def _check_aware(field: str, at: datetime | None) -> None:
    """A time without an offset could mean any zone: refused, never guessed (RFC 3339 times
    always carry one)."""
    if at is not None and at.tzinfo is None:
        raise InvalidRequest(field, "a time with a UTC offset, e.g. 2026-06-14T08:00:00+08:00")


async def seq_at_time(db: Db, ledger_id: str, at: datetime) -> int:
    """The last seq written at or before ``at`` (0 if none): the log as of that time."""
    conn = await connection_of(db)
    seq = (await conn.execute(_SEQ_AT_TIME, {"ledger_id": ledger_id, "t": to_us(at)})).scalar()
    return seq or 0


async def balance(
    db: Db,
    ledger_id: str,
    account: str,
    *,
    as_of_seq: int | None = None,
    as_of: datetime | None = None,
) -> Balance:
    """An account's counters now, or right after entry ``as_of_seq``, or as of a time.

    Each entry carries its two accounts' counters after it, so a past balance is the newest
    entry at or before the seq that touches the account: one index probe per side."""
    _check_aware("as_of", as_of)
    current = await get_account(db, ledger_id, account)
    if as_of_seq is None and as_of is None:
        return current
    if as_of_seq is not None and as_of is not None:
        raise InvalidRequest("as_of", "give either as_of_seq or as_of, not both")
    seq = as_of_seq if as_of_seq is not None else await seq_at_time(db, ledger_id, as_of)  # type: ignore[arg-type]
    if not 0 <= seq <= MAX_INT:
        raise InvalidRequest("as_of_seq", f"must be between 0 and {MAX_INT}")
    conn = await connection_of(db)
    params = {"ledger_id": ledger_id, "acct": account, "seq": seq}
    d = (await conn.execute(_LAST_AS_DEBIT, params)).one_or_none()
    c = (await conn.execute(_LAST_AS_CREDIT, params)).one_or_none()
    counters = (0, 0, 0, 0)
    if d is not None and (c is None or d.seq > c.seq):
        counters = (d.dr_debits_pending, d.dr_debits_posted, d.dr_credits_pending,
                    d.dr_credits_posted)  # fmt: skip
    elif c is not None:
        counters = (c.cr_debits_pending, c.cr_debits_posted, c.cr_credits_pending,
                    c.cr_credits_posted)  # fmt: skip
    return Balance(ledger_id, account, current.flags, *counters, as_of_seq=seq)


def parse_cursor(after: str | None) -> int:
    if after is None or after == "":
        return 0
    if not (after.isascii() and after.isdigit()) or int(after) > MAX_INT:  # '²'.isdigit()
        raise InvalidRequest("after", "must be a cursor returned as next")
    return int(after)


async def list_entries(
    db: Db,
    ledger_id: str,
    *,
    account: str | None = None,
    reference: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: str | None = None,
    limit: int = 50,
    newest_first: bool = False,
) -> Page:
    """Entries in seq order (or, ``newest_first``, the reverse), filtered, ``limit`` at a
    time; ``after`` is the previous page's ``next``. ``since`` is inclusive, ``until``
    exclusive."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest("limit", f"must be between 1 and {MAX_LIMIT}")
    _check_aware("from", since)
    _check_aware("to", until)
    start = parse_cursor(after)
    conds = [E.c.ledger_id == ledger_id]
    if newest_first:
        order = E.c.seq.desc()
        if start:
            conds.append(E.c.seq < start)
    else:
        order = E.c.seq
        conds.append(E.c.seq > start)
    if reference is not None:
        conds.append(E.c.reference == reference)
    if kind is not None:
        conds.append(E.c.kind == kind)
    if since is not None:
        conds.append(E.c.time_us >= to_us(since))
    if until is not None:
        conds.append(E.c.time_us < to_us(until))
    if account is None:
        stmt = select(E).where(*conds).order_by(order).limit(limit + 1)
    else:
        # One index-ordered scan per side (debit, credit), merged: an OR would make the
        # database collect the account's whole history before it could sort and stop.
        sides = [
            select(E).where(*conds, side == account).order_by(order).limit(limit + 1)
            for side in (E.c.debit_account, E.c.credit_account)
        ]
        u = union_all(*(s.subquery().select() for s in sides)).subquery()
        stmt = select(u).order_by(u.c.seq.desc() if newest_first else u.c.seq).limit(limit + 1)
    conn = await connection_of(db)
    rows = (await conn.execute(stmt)).all()
    entries = [Entry.from_row(r) for r in rows[:limit]]
    nxt = str(entries[-1].seq) if len(rows) > limit else None
    return Page(entries, nxt)


async def export_lines(
    db: Db,
    ledger_id: str,
    *,
    upto: int | None = None,
    start: int = 0,
    batch: int = 1000,
) -> AsyncIterator[bytes]:
    """The log as JSON Lines: each line is exactly the entry's canonical bytes (so it hashes
    to the entry's Merkle leaf) followed by a newline. Entries ``start + 1`` to ``upto``
    (default: all), read in keyset batches so memory stays flat however long the log is."""
    size = await ledger_size(db, ledger_id)
    end = size if upto is None else min(upto, size)
    conn = await connection_of(db)
    last = start
    while last < end:
        stmt = (
            select(E)
            .where(E.c.ledger_id == ledger_id, E.c.seq > last, E.c.seq <= end)
            .order_by(E.c.seq)
            .limit(batch)
        )
        rows = (await conn.execute(stmt)).all()
        if not rows:
            break
        for r in rows:
            yield encode_entry(r) + b"\n"
        last = rows[-1].seq

"""Accounts: opening them with their flags, and the balance they report."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db import Db, connection_of
from ledger.errors import AccountFlagsConflict, AccountNotFound
from ledger.models import ACCOUNT_MAX, LEDGER_ID_MAX, LedgerAccount, LedgerHead, LedgerTree
from ledger.validation import check_text

A = LedgerAccount.__table__
H = LedgerHead.__table__
T = LedgerTree.__table__


class AccountFlags(IntFlag):
    """TigerBeetle's account flags. An account with neither may go either way: that is the
    issuance account, whose negative balance is the points issued."""

    NONE = 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1  # employees: never spend more than was credited
    CREDITS_MUST_NOT_EXCEED_DEBITS = 2


@dataclass(frozen=True)
class Balance:
    ledger_id: str
    account: str
    flags: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    as_of_seq: int | None = None  # None: the current balance

    @property
    def posted(self) -> int:
        """credits_posted - debits_posted: the settled balance (negative for issuance)."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What an employee can spend: posted credits less posted and held debits. Pending
        credits (unconfirmed drop-offs) are not spendable."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def held(self) -> int:
        return self.debits_pending

    @property
    def pending_credit(self) -> int:
        return self.credits_pending

    def to_json(self) -> dict[str, Any]:
        return {
            "ledger_id": self.ledger_id,
            "account": self.account,
            "flags": self.flags,
            "debits_pending": self.debits_pending,
            "debits_posted": self.debits_posted,
            "credits_pending": self.credits_pending,
            "credits_posted": self.credits_posted,
            "posted": self.posted,
            "available": self.available,
            "as_of_seq": self.as_of_seq,
        }


_ACCOUNT = select(A).where(A.c.ledger_id == bindparam("ledger_id"), A.c.code == bindparam("code"))


def _insert_ignore(conn: AsyncConnection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def balance_from_row(row: Any) -> Balance:
    return Balance(
        row.ledger_id,
        row.code,
        row.flags,
        row.debits_pending,
        row.debits_posted,
        row.credits_pending,
        row.credits_posted,
    )


async def create_ledger(conn: AsyncConnection, ledger_id: str) -> None:
    """Create a ledger's head and tree if missing. ON CONFLICT DO NOTHING: two first uses at
    once both succeed, without an error that would abort the caller's PostgreSQL
    transaction."""
    await conn.execute(
        _insert_ignore(conn, H), {"ledger_id": ledger_id, "size": 0, "last_time_us": 0}
    )
    await conn.execute(
        _insert_ignore(conn, T), {"ledger_id": ledger_id, "size": 0, "frontier": b""}
    )


async def insert_account(
    conn: AsyncConnection, ledger_id: str, code: str, flags: int, created_at_us: int
) -> Any:
    """Create an account with zero counters if missing; answers its row (which may have
    other flags, if someone else created it first)."""
    await conn.execute(
        _insert_ignore(conn, A),
        {
            "ledger_id": ledger_id,
            "code": code,
            "flags": flags,
            "debits_pending": 0,
            "debits_posted": 0,
            "credits_pending": 0,
            "credits_posted": 0,
            "created_at_us": created_at_us,
        },
    )
    return (await conn.execute(_ACCOUNT, {"ledger_id": ledger_id, "code": code})).one()


async def open_account(
    db: Db,
    ledger_id: str,
    code: str,
    flags: int = AccountFlags.NONE,
    *,
    created_at_us: int = 0,
) -> Balance:
    """Open an account (and its ledger on first use). Idempotent: opening it again with the
    same flags returns it; with other flags raises AccountFlagsConflict. Transfers can open
    their accounts themselves (``transfer(..., open_with=...)``)."""
    check_text("ledger_id", ledger_id, LEDGER_ID_MAX)
    check_text("account", code, ACCOUNT_MAX)
    flags = int(AccountFlags(flags))
    conn = await connection_of(db)
    row = (await conn.execute(_ACCOUNT, {"ledger_id": ledger_id, "code": code})).one_or_none()
    if row is None:
        await create_ledger(conn, ledger_id)
        row = await insert_account(conn, ledger_id, code, flags, created_at_us)
    if row.flags != flags:
        raise AccountFlagsConflict(code, row.flags, flags)
    return balance_from_row(row)


async def get_account(db: Db, ledger_id: str, code: str) -> Balance:
    conn = await connection_of(db)
    row = (await conn.execute(_ACCOUNT, {"ledger_id": ledger_id, "code": code})).one_or_none()
    if row is None:
        raise AccountNotFound(ledger_id, code)
    return balance_from_row(row)

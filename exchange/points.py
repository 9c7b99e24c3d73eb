"""Where points live on a department's ledger (ledger id = department id).

- `issuance`: points come from here; it may go negative (its negative balance is what the
  department has issued).
- `redemption`: points spent on products end here.
- `user:<user_id>`: an employee's points; debits may never exceed credits.

An employee's available points are posted credits less posted and held debits; pending
credits (drop-offs awaiting a steward) are shown but not spendable.

Accounts are opened by the first transfer that finds them missing (``open_with``), so a new
member needs no set-up and every later write pays nothing for it.
"""

from dataclasses import dataclass
from typing import Any

from catalog.models import utcnow
from ledger.accounts import AccountFlags, get_account, open_account
from ledger.db import Db
from ledger.encoding import to_us
from ledger.errors import AccountNotFound

ISSUANCE = "issuance"
REDEMPTION = "redemption"
FLAGS = {ISSUANCE: AccountFlags.NONE, REDEMPTION: AccountFlags.NONE}
USER_FLAGS = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS


def user_account(user_id: str) -> str:
    return f"user:{user_id}"


def dropoff_reference(dropoff_id: str) -> str:
    return f"dropoff:{dropoff_id}"


def order_reference(order_id: str) -> str:
    return f"order:{order_id}"


def earning(user_id: str) -> dict[str, Any]:
    """The accounts of points earned (issuance → user), for ``ledger.transfers.transfer``."""
    return {
        "debit": ISSUANCE,
        "credit": user_account(user_id),
        "open_with": (FLAGS[ISSUANCE], USER_FLAGS),
    }


def spending(user_id: str) -> dict[str, Any]:
    """The accounts of points spent (user → redemption)."""
    return {
        "debit": user_account(user_id),
        "credit": REDEMPTION,
        "open_with": (USER_FLAGS, FLAGS[REDEMPTION]),
    }


@dataclass(frozen=True)
class Points:
    available: int
    pending_credit: int
    held: int


async def open_accounts(db: Db, department_id: str, user_id: str) -> None:
    """Open (idempotently) the three accounts a drop-off or an order touches, as when a member
    joins (the benchmarks seed members this way; transfers open what they miss)."""
    now_us = to_us(utcnow())
    for code, flags in (*FLAGS.items(), (user_account(user_id), USER_FLAGS)):
        await open_account(db, department_id, code, flags, created_at_us=now_us)


async def points_of(db: Db, department_id: str, user_id: str) -> Points:
    try:
        balance = await get_account(db, department_id, user_account(user_id))
    except AccountNotFound:
        return Points(0, 0, 0)
    return Points(balance.available, balance.pending_credit, balance.held)

"""Where points live on a department's ledger (ledger id = department id).

- `issuance`: points come from here; it may go negative (its negative balance is what the
  department has issued).
- `redemption`: points spent on products end here.
- `user:<user_id>`: an employee's points; debits may never exceed credits.

An employee's available points are posted credits less posted and held debits; pending
credits (drop-offs awaiting a steward) are shown but not spendable.
"""

from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import utcnow
from ledger import transfers
from ledger.accounts import AccountFlags, get_account, open_account
from ledger.encoding import Entry, to_us
from ledger.errors import AccountNotFound, LedgerNotFound

ISSUANCE = "issuance"
REDEMPTION = "redemption"


def user_account(user_id: str) -> str:
    return f"user:{user_id}"


def dropoff_reference(dropoff_id: str) -> str:
    return f"dropoff:{dropoff_id}"


def order_reference(order_id: str) -> str:
    return f"order:{order_id}"


@dataclass(frozen=True)
class Points:
    available: int
    pending_credit: int
    held: int


async def open_accounts(session: AsyncSession, department_id: str, user_id: str) -> None:
    """Open (idempotently) the three accounts a drop-off or an order touches."""
    now_us = to_us(utcnow())
    await open_account(session, department_id, ISSUANCE, created_at_us=now_us)
    await open_account(session, department_id, REDEMPTION, created_at_us=now_us)
    await open_account(
        session,
        department_id,
        user_account(user_id),
        AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        created_at_us=now_us,
    )


async def transfer_for(
    session: AsyncSession, department_id: str, user_id: str, **transfer: Any
) -> Entry:
    """`ledger.transfers.transfer` on the department's ledger, for a transfer between the
    user's account and issuance or redemption.

    Accounts are opened once, on a user's first write, not on every write: the transfer
    itself finds out that they are missing (before it writes anything), so members who
    joined before this rule and new members alike get them without a migration, and every
    later write pays no statement for them.
    """
    try:
        return await transfers.transfer(session, ledger_id=department_id, **transfer)
    except (LedgerNotFound, AccountNotFound):
        await open_accounts(session, department_id, user_id)
        return await transfers.transfer(session, ledger_id=department_id, **transfer)


async def points_of(session: AsyncSession, department_id: str, user_id: str) -> Points:
    try:
        balance = await get_account(session, department_id, user_account(user_id))
    except AccountNotFound:
        return Points(0, 0, 0)
    return Points(balance.available, balance.pending_credit, balance.held)

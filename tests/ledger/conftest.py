"""Ledger-only fixtures: a department ledger with the usual accounts opened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from ledger import AccountFlags, open_account, transfer

DEPT = "dept-a"
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)

EMPLOYEE = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def open_dept(
    session: AsyncSession, dept: str = DEPT, users: tuple[str, ...] = ("alice", "bob")
) -> None:
    await open_account(session, dept, "issuance")
    await open_account(session, dept, "redemption")
    for u in users:
        await open_account(session, dept, f"user:{u}", EMPLOYEE)


async def credit(
    session: AsyncSession, user: str, amount: int, key: str, dept: str = DEPT, now: datetime = T0
) -> int:
    e = await transfer(
        session,
        ledger_id=dept,
        debit="issuance",
        credit=f"user:{user}",
        amount=amount,
        idempotency_key=key,
        actor="steward",
        reference=f"dropoff:{key}",
        now=now,
    )
    return e.seq


@pytest.fixture
async def dept(session_factory: async_sessionmaker[AsyncSession]) -> str:
    async with transaction(session_factory) as s:
        await open_dept(s)
    return DEPT

"""A write as one call of a server-side function, on PostgreSQL (exchange/sql/writes.sql).

Given a connection outside any transaction, a hot write (log a drop-off, decide one, place,
pick up or cancel an order) runs as one statement on the asyncpg connection: one round trip,
and the function's transaction commits with it, so the department's ledger head is held for
no round trip and no Python. The statement is prepared once per connection (asyncpg's
statement cache).

The function does the plain write or nothing: anything else (a replay, a refusal, a race
lost) comes back as SQLSTATE CE001, and the write's Python path answers in a transaction of
its own (``transaction``) — the same rules, which are all SQLite has. Given a session, or a
connection already in a transaction, a write runs its Python path in that transaction.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ledger.db import Db

DECLINED = "CE001"  # raised by exchange_decline(): not a plain write


async def call(db: Db, statement: str, *args: Any) -> asyncpg.Record | None:
    """The row the function wrote; None if ``db`` cannot take the call (not a PostgreSQL
    connection outside a transaction) or the function declined: take the Python path."""
    if not (
        isinstance(db, AsyncConnection)
        and db.dialect.name == "postgresql"
        and not db.in_transaction()
    ):
        return None
    pg: asyncpg.Connection = (await db.get_raw_connection()).driver_connection
    try:
        return await pg.fetchrow(statement, *args)
    except asyncpg.PostgresError as error:
        if error.sqlstate == DECLINED:
            return None
        raise


@asynccontextmanager
async def transaction(db: Db) -> AsyncIterator[AsyncConnection]:
    """The connection of the Python path, in a transaction: the caller's, or one begun here
    on the caller's connection and committed when the block ends."""
    if isinstance(db, AsyncSession):
        yield await db.connection()
    elif db.in_transaction():
        yield db
    else:
        async with db.begin():
            yield db

"""What the ledger's functions run on: the caller's session, or a connection, inside the
caller's transaction. The ledger never begins or commits one."""

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

Db = AsyncSession | AsyncConnection


async def connection_of(db: Db) -> AsyncConnection:
    return db if isinstance(db, AsyncConnection) else await db.connection()

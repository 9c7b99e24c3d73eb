"""Request counting in the database, so every worker and instance shares one count.

A key's window opens at its first request and lasts `seconds`; the next request after it
opens a new one. Each request is one atomic upsert: concurrent requests, whichever process
serves them, never read the same count twice.
"""

from datetime import datetime

from sqlalchemy import case, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import RateLimitHit


async def hit(session: AsyncSession, key: str, seconds: int, now: datetime) -> tuple[int, int]:
    """Counts one request under `key`: its number within the key's current window, and the
    whole seconds until that window closes."""
    epoch = int(now.timestamp())
    table = RateLimitHit.__table__  # type: ignore[attr-defined]
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    over = table.c.window_start + seconds <= epoch
    upsert = (
        dialect.insert(table)
        .values(key=key, window_start=epoch, hits=1, expires_at=epoch + seconds)
        .on_conflict_do_update(
            index_elements=["key"],
            set_={
                "hits": case((over, 1), else_=table.c.hits + 1),
                "window_start": case((over, epoch), else_=table.c.window_start),
                "expires_at": case((over, epoch + seconds), else_=table.c.expires_at),
            },
        )
        .returning(table.c.hits, table.c.window_start)
    )
    connection = await session.connection()
    hits, window_start = (await connection.execute(upsert)).one()
    # Forget closed windows (the index on expires_at keeps this a short range scan).
    await connection.execute(delete(table).where(table.c.expires_at < epoch))
    return hits, max(1, window_start + seconds - epoch)


async def release(session: AsyncSession, key: str) -> None:
    """Takes back one request counted under `key` (one that turned out not to count)."""
    table = RateLimitHit.__table__  # type: ignore[attr-defined]
    connection = await session.connection()
    await connection.execute(
        update(table).where(table.c.key == key, table.c.hits > 0).values(hits=table.c.hits - 1)
    )

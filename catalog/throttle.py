"""Fixed-window request counting in the database, so every worker and instance shares it.

One row per key and window, incremented by a single atomic upsert: concurrent requests,
whichever process serves them, never read the same count twice.
"""

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import RateLimitHit


async def hit(session: AsyncSession, key: str, seconds: int, now: datetime) -> tuple[int, int]:
    """Counts one request under `key`: its number within the current window of `seconds`,
    and the seconds until that window ends."""
    epoch = int(now.timestamp())
    window_start = epoch - epoch % seconds
    ends = window_start + seconds
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    table = RateLimitHit.__table__  # type: ignore[attr-defined]
    upsert = (
        dialect.insert(table)
        .values(
            key=key,
            window_start=window_start,
            hits=1,
            expires_at=datetime.fromtimestamp(ends, now.tzinfo) + timedelta(seconds=1),
        )
        .on_conflict_do_update(
            index_elements=["key", "window_start"], set_={"hits": table.c.hits + 1}
        )
        .returning(table.c.hits)
    )
    connection = await session.connection()
    hits = (await connection.execute(upsert)).scalar_one()
    # Forget windows that are over (the index on expires_at keeps this a short range scan).
    await connection.execute(delete(table).where(table.c.expires_at < now))
    return hits, max(1, ends - epoch)

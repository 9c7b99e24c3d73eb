"""Per-account lockout: after repeated wrong passwords an account refuses sign-in for a while.

Each wrong password from then on doubles the wait (back-off), up to a ceiling. A locked
account answers exactly like a wrong password, so the lock tells an attacker nothing. It
ends by time, at the next correct sign-in after that, or when a coordinator or admin
unlocks it.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.errors import NotFound
from catalog.models import LoginLockout, Role, User

log = structlog.get_logger()

if TYPE_CHECKING:  # catalog.identity signs in through this module
    from catalog.identity import Identity


@dataclass(frozen=True)
class LockoutPolicy:
    failures: int = 5  # wrong passwords in a row before the account locks
    base_seconds: int = 60  # the first lock; each further wrong password doubles it
    max_seconds: int = 3600

    def lock_for(self, failures: int) -> timedelta | None:
        if failures < self.failures:
            return None
        doublings = min(failures - self.failures, 32)
        return timedelta(seconds=min(self.max_seconds, self.base_seconds * 2**doublings))


async def is_locked(session: AsyncSession, user_id: str, now: datetime) -> bool:
    row = await session.get(LoginLockout, user_id)
    return row is not None and row.locked_until is not None and row.locked_until > now


async def record_failure(
    session: AsyncSession, user_id: str, policy: LockoutPolicy, now: datetime
) -> None:
    """Counts a wrong password with one atomic upsert, so concurrent guesses all count."""
    table = LoginLockout.__table__  # type: ignore[attr-defined]
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    upsert = (
        dialect.insert(table)
        .values(user_id=user_id, failures=1, locked_until=None, last_failure_at=now)
        .on_conflict_do_update(
            index_elements=["user_id"],
            set_={"failures": table.c.failures + 1, "last_failure_at": now},
        )
        .returning(table.c.failures)
    )
    connection = await session.connection()
    failures = (await connection.execute(upsert)).scalar_one()
    lock = policy.lock_for(failures)
    if lock is not None:
        log.warning(
            "account locked", user_id=user_id, failures=failures, seconds=int(lock.total_seconds())
        )
        await connection.execute(
            update(table).where(table.c.user_id == user_id).values(locked_until=now + lock)
        )


async def clear(session: AsyncSession, user_id: str) -> None:
    await session.exec(delete(LoginLockout).where(LoginLockout.user_id == user_id))  # type: ignore[call-overload]


async def locked_users(session: AsyncSession, user_ids: list[str], now: datetime) -> set[str]:
    """Which of `user_ids` are locked now."""
    rows = await session.exec(
        select(LoginLockout.user_id).where(
            LoginLockout.user_id.in_(user_ids),  # type: ignore[attr-defined]
            LoginLockout.locked_until > now,  # type: ignore[operator]
        )
    )
    return set(rows.all())


async def unlock(session: AsyncSession, caller: "Identity", user_id: str) -> User:
    """A coordinator unlocks members of their department; an admin unlocks anyone."""
    user = await session.get(User, user_id)
    visible = user is not None and (
        caller.has(Role.admin)
        or (user.department_id is not None and caller.department_id == user.department_id)
    )
    if user is None or not visible:
        raise NotFound(f"No member {user_id!r}.")
    await clear(session, user_id)
    return user

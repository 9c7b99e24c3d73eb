"""Sign-in lockout per account *and client*, so a stranger's wrong passwords lock out only the
stranger.

The client is a device that signed in to the account successfully before (it carries a signed
device cookie, as in OWASP's "Slow Down Online Guessing Attacks with Device Cookies"), or else
the address the attempt comes from. Wrong passwords in a row from one client lock that client
out of that account, each further one doubling the wait (back-off) up to a ceiling; every other
client is unaffected, and the account's known devices most of all: an attacker on the same
office network as its owner locks that network's address, never the owner's device.

A distributed guesser, a few attempts from each of many addresses, is slowed instead by a soft
limit per account on the attempts from clients the account does not know (`AccountLimit`): past
it they wait for the next window (429 with Retry-After). It delays, it never locks, and the
account's known devices are never counted or slowed.

A locked client answers exactly like a wrong password, so the lock tells an attacker nothing.
A lock ends by time, at the client's next correct sign-in after that, or when a coordinator or
admin unlocks the account (which lifts the locks of every client).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.errors import NotFound
from catalog.models import LoginLockout, Role, User

log = structlog.get_logger()
FORGET_AFTER = timedelta(days=1)

if TYPE_CHECKING:  # catalog.identity signs in through this module
    from catalog.identity import Identity


@dataclass(frozen=True)
class LockoutPolicy:
    failures: int = 5  # wrong passwords in a row from one client before it is locked out
    base_seconds: int = 60  # the first lock; each further wrong password doubles it
    max_seconds: int = 3600
    # Attempts per minute on one account from clients it does not know, over the platform.
    account_attempts_per_minute: int = 10

    def lock_for(self, failures: int) -> timedelta | None:
        if failures < self.failures:
            return None
        doublings = min(failures - self.failures, 32)
        return timedelta(seconds=min(self.max_seconds, self.base_seconds * 2**doublings))


@dataclass(frozen=True)
class Client:
    """Where a sign-in comes from: its address, and the devices it proved it is, by user id
    (from a device cookie whose signature the caller checked)."""

    address: str
    devices: Mapping[str, str] = field(default_factory=dict)  # user id -> device id

    def device_of(self, user_id: str) -> str | None:
        return self.devices.get(user_id)

    def key_for(self, user_id: str) -> str:
        """Whose failures count together: the account's known device, or else the address."""
        device = self.device_of(user_id)
        return f"device:{device}" if device else f"address:{self.address}"


def account_limit_key(username: str) -> str:
    """The soft limit's counter (catalog.throttle): by the name typed, so that unknown names
    are limited alike and the limit tells no one which accounts exist."""
    return f"sign-in-account:{username}"


async def is_locked(session: AsyncSession, user_id: str, client: str, now: datetime) -> bool:
    row = await session.get(LoginLockout, (user_id, client))
    return row is not None and row.locked_until is not None and row.locked_until > now


async def record_failure(
    session: AsyncSession, user_id: str, client: str, policy: LockoutPolicy, now: datetime
) -> None:
    """Counts a wrong password with one atomic upsert, so concurrent guesses all count."""
    table = LoginLockout.__table__  # type: ignore[attr-defined]
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    upsert = (
        dialect.insert(table)
        .values(user_id=user_id, client=client, failures=1, locked_until=None, last_failure_at=now)
        .on_conflict_do_update(
            index_elements=["user_id", "client"],
            set_={"failures": table.c.failures + 1, "last_failure_at": now},
        )
        .returning(table.c.failures)
    )
    connection = await session.connection()
    failures = (await connection.execute(upsert)).scalar_one()
    # Clients that stopped failing a day ago and are not locked are forgotten, so that many
    # addresses guessing once each leave no rows behind for long.
    await connection.execute(
        delete(table).where(
            table.c.user_id == user_id,
            table.c.last_failure_at < now - FORGET_AFTER,
            (table.c.locked_until.is_(None)) | (table.c.locked_until < now),
        )
    )
    lock = policy.lock_for(failures)
    if lock is not None:
        log.warning(
            "sign-in locked for a client",
            user_id=user_id,
            client=client,
            failures=failures,
            seconds=int(lock.total_seconds()),
        )
        await connection.execute(
            update(table)
            .where(table.c.user_id == user_id, table.c.client == client)
            .values(locked_until=now + lock)
        )


async def clear(session: AsyncSession, user_id: str, client: str | None = None) -> None:
    """Forgets the failures of one client of the account, or of every client (None)."""
    query = delete(LoginLockout).where(col(LoginLockout.user_id) == user_id)
    if client is not None:
        query = query.where(col(LoginLockout.client) == client)
    await session.exec(query)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Lock:
    """A client locked out of an account: an address, or one of the account's devices."""

    kind: str  # "address" or "device"
    address: str | None  # None for a device: its id is a secret of its cookie
    failures: int
    locked_until: datetime


async def locks_of(
    session: AsyncSession, user_ids: list[str], now: datetime
) -> dict[str, list[Lock]]:
    """The clients locked out of each of `user_ids` now (users without any are left out)."""
    rows = await session.exec(
        select(LoginLockout)
        .where(
            col(LoginLockout.user_id).in_(user_ids),
            col(LoginLockout.locked_until) > now,
        )
        .order_by(col(LoginLockout.user_id), col(LoginLockout.client))
    )
    found: dict[str, list[Lock]] = {}
    for row in rows:
        kind, _, value = row.client.partition(":")
        assert row.locked_until is not None
        lock = Lock(kind, value if kind == "address" else None, row.failures, row.locked_until)
        found.setdefault(row.user_id, []).append(lock)
    return found


async def unlock(session: AsyncSession, caller: "Identity", user_id: str) -> User:
    """A coordinator unlocks members of their department; an admin unlocks anyone. Every
    client's lock on the account is lifted."""
    user = await session.get(User, user_id)
    visible = user is not None and (
        caller.has(Role.admin)
        or (user.department_id is not None and caller.department_id == user.department_id)
    )
    if user is None or not visible:
        raise NotFound(f"No member {user_id!r}.")
    await clear(session, user_id)
    return user

"""Signing in: the password, checked against the lockout of the client it comes from and the
account's soft limit (catalog/lockout.py says how both work)."""

from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import lockout, throttle
from catalog.errors import InvalidCredentials, SignInThrottled
from catalog.lockout import Client, LockoutPolicy
from catalog.models import User, utcnow
from catalog.passwords import verify_password

ACCOUNT_WINDOW_SECONDS = 60


async def authenticate(
    session_factory: async_sessionmaker[AsyncSession],
    username: str,
    password: str,
    client: Client,
    policy: LockoutPolicy | None = None,
    now: datetime | None = None,
) -> User:
    """The user, if the password is right and neither the client is locked out of the account
    nor the account inactive.

    Every such refusal is the same InvalidCredentials, and a wrong password counts against the
    client. An attempt from a client the account does not know past the account's soft limit
    is SignInThrottled instead, before the password is looked at. The password is verified
    between two short transactions, never inside one: on SQLite a transaction holds the
    database's write lock, and a verification costs a quarter second.
    """
    policy = policy or LockoutPolicy()
    now = now or utcnow()
    limit_key = lockout.account_limit_key(username)
    wait: int | None = None  # seconds, when the soft limit holds this attempt back
    async with session_factory() as session, session.begin():
        user = (await session.exec(select(User).where(User.username == username))).first()
        known = user is not None and client.device_of(user.id) is not None
        if not known:  # counted (committed) whatever the outcome, so concurrent guesses count
            attempts, retry_after = await throttle.hit(
                session, limit_key, ACCOUNT_WINDOW_SECONDS, now
            )
            if attempts > policy.account_attempts_per_minute:
                wait = retry_after
    if wait is not None:
        raise SignInThrottled(wait)
    # Verified even when the account is unknown or locked, so each refusal takes as long.
    matches = await verify_password(user.password_hash if user else None, password)
    if user is None:
        raise InvalidCredentials()
    key = client.key_for(user.id)
    async with session_factory() as session, session.begin():
        if not matches:
            await lockout.record_failure(session, user.id, key, policy, now)
        # Checked after the verification: concurrent wrong guesses may have locked it since.
        elif not await lockout.is_locked(session, user.id, key, now) and user.is_active:
            await lockout.clear(session, user.id, key)
            if not known:  # the soft limit is for guesses: the owner's success is not one
                await throttle.release(session, limit_key)
            return user
    raise InvalidCredentials()

"""Password hashing with argon2id, a memory-hard function, off the event loop.

A hash costs about a quarter of a second of CPU by design; on the event loop that would
stall every other request. argon2-cffi releases the GIL, so a thread pool as wide as the
machine has cores runs hashes in parallel and queues the rest, bounding the CPU they take.
"""

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")

_hasher = PasswordHasher()
_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="argon2")


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Verified against when the username is unknown, so both failures take the same time.
    Made on first use, in the pool: at a quarter of a second it would otherwise be paid by
    every process at import, the commands that never check a password included."""
    return hasher.hash("not a real password")


async def _off_loop(work: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(_pool, work, *args)


async def hash_password(password: str) -> str:
    return await _off_loop(lambda: _hasher.hash(password))


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; an unknown user (None) costs the same time and is False."""

    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _dummy_hash(_hasher), password)
        except (VerificationError, InvalidHashError):
            return False

    return await _off_loop(verify) and password_hash is not None

"""Idempotency keys of retryable writes (drop-offs, orders).

A key is unique per (department, user); the row it created stores a fingerprint of the
request. The same key with the same request returns that row again; with a different
request it is a conflict. Writers of one user are serialized (see `lock_user`), so the
unique index is the last line of defence rather than the usual path.
"""

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import User
from exchange.errors import IdempotencyKeyMissing, IdempotencyKeyReused, InvalidInput

MAX_KEY_LENGTH = 128


def check_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise IdempotencyKeyMissing(
            "Send an Idempotency-Key header (e.g. a random UUID) so that a retry of this "
            "request cannot be applied twice."
        )
    key = key.strip()
    if len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise InvalidInput("Idempotency-Key", f"1-{MAX_KEY_LENGTH} printable ASCII characters")
    return key


def fingerprint(request: dict[str, Any]) -> str:
    """SHA-256 of the request's canonical JSON: equal requests, equal fingerprints."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_replay(key: str, stored_hash: str, request_hash: str) -> None:
    if stored_hash != request_hash:
        raise IdempotencyKeyReused(key)


async def lock_user(session: AsyncSession, user_id: str) -> None:
    """Serialize one user's drop-offs and orders: the daily cap, the key check and the
    balance check each see every earlier write of that user.

    FOR NO KEY UPDATE does not block inserts of rows referencing the user (they take
    KEY SHARE). SQLite has a single writer anyway and ignores the clause.
    """
    await session.exec(
        select(User.id).where(User.id == user_id).with_for_update(key_share=True)  # type: ignore[arg-type]
    )

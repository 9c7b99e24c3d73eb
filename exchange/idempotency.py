"""Idempotency keys of retryable writes (drop-offs, orders).

A key is unique per (department, user); the row it created stores a fingerprint of the
request. The same key with the same request returns that row again (`replay_of`); with a
different request it is a conflict. Where requests with one key can race, a write claims
its key by inserting its row with INSERT ... ON CONFLICT DO NOTHING (`Claim`): the unique
index decides, a concurrent request with the same key waits for the first to commit and
then finds its row, and nothing ever raises mid-transaction, so no savepoint is needed.
"""

import hashlib
import json
from typing import Any

from sqlalchemy import Row, Select, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

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


async def replay_of(
    conn: AsyncConnection, by_key: Select[Any], params: dict[str, Any], key: str, request_hash: str
) -> Row[Any] | None:
    """The row an earlier request with this key created, if any: the same request gets it back
    as its answer; a different request under the same key is refused."""
    row = (await conn.execute(by_key, params)).one_or_none()
    if row is not None:
        check_replay(key, row.request_hash, request_hash)
    return row


class Claim:
    """INSERT INTO `table` the row `rows` selects, unless its key (or id) is taken: one
    statement, compiled once per dialect."""

    def __init__(self, table: Table, rows: Select[Any]) -> None:
        columns = [column.name for column in table.columns]
        self._by_dialect = {
            "postgresql": postgresql.insert(table).from_select(columns, rows),
            "sqlite": sqlite.insert(table).from_select(columns, rows),
        }
        for name, statement in self._by_dialect.items():
            self._by_dialect[name] = statement.on_conflict_do_nothing()

    async def __call__(self, conn: AsyncConnection, params: dict[str, Any]) -> bool:
        """True when the row was inserted; False when the key was taken already."""
        result = await conn.execute(self._by_dialect[conn.dialect.name], params)
        return result.rowcount == 1

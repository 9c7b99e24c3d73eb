"""Witness cosignatures: an outside party, holding its own Ed25519 key, checks that each new
head of a log is consistent with the last head it co-signed, and only then co-signs it. A
log that rewrote its history, or showed one history to some and another to others (a split
view), cannot get both versions co-signed by a witness that saw one of them.

After C2SP's tlog-witness and signed-note cosignature (cosignature/v1,
https://github.com/C2SP/C2SP/blob/main/tlog-cosignature.md): the witness signs the log's
identity, size and root together with its own time, not the log's signature, under a
domain separator of its own. The signature is Ed25519 over (integers big-endian):

    b"cloud-exchange/cosignature/v1" 0x00
    u64 the witness's timestamp, microseconds since 1970-01-01T00:00:00Z
    u16 length of ledger_id in UTF-8 bytes, then those bytes
    u64 tree_size
    32 bytes root hash

The witness's key id is the first 16 hex digits of SHA-256 of its raw public key, as for the
log's own keys (ledger/signing.py). The platform operator registers each witness's public
key; the service then takes a cosignature from anyone, since the signature is the proof.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import bindparam, func, select

from ledger import integration
from ledger.db import Db, connection_of
from ledger.encoding import rfc3339, to_us
from ledger.errors import (
    CosignatureInvalid,
    HeadMismatch,
    TreeSizeOutOfRange,
    UnknownWitness,
    WitnessNameTaken,
)
from ledger.models import LedgerCosignature, LedgerTreeHead, LedgerWitness
from ledger.signing import SigningKey, b64url, key_id
from ledger.transfers import utcnow
from ledger.treehead import TreeHead

DOMAIN = b"cloud-exchange/cosignature/v1\x00"
W = LedgerWitness.__table__
C = LedgerCosignature.__table__
S = LedgerTreeHead.__table__


def cosigned_bytes(ledger_id: str, tree_size: int, root_hash: bytes, timestamp_us: int) -> bytes:
    lid = ledger_id.encode("utf-8")
    return b"".join(
        (
            DOMAIN,
            struct.pack(">Q", timestamp_us),
            struct.pack(">H", len(lid)),
            lid,
            struct.pack(">Q", tree_size),
            root_hash,
        )
    )


@dataclass(frozen=True)
class Cosignature:
    ledger_id: str
    tree_size: int
    root_hash: bytes
    key_id: str
    timestamp_us: int
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "ledger_id": self.ledger_id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "key_id": self.key_id,
            "timestamp": rfc3339(self.timestamp_us),
            "signature": b64url(self.signature),
        }

    def verify(self, public_key: Ed25519PublicKey) -> bool:
        message = cosigned_bytes(self.ledger_id, self.tree_size, self.root_hash, self.timestamp_us)
        try:
            public_key.verify(self.signature, message)
        except InvalidSignature:
            return False
        return True


def cosign(key: SigningKey, head: TreeHead, timestamp_us: int | None = None) -> Cosignature:
    """The witness's side: co-sign ``head`` (after checking it, which is the caller's job)."""
    at = to_us(utcnow()) if timestamp_us is None else timestamp_us
    message = cosigned_bytes(head.ledger_id, head.tree_size, head.root_hash, at)
    return Cosignature(
        head.ledger_id, head.tree_size, head.root_hash, key.kid, at, key.sign(message)
    )


# --- the service's side -------------------------------------------------------------------


async def register_witness(db: Db, name: str, public_key: bytes) -> str:
    """Registers a witness's raw 32-byte Ed25519 public key under ``name``; idempotent for the
    same name and key. Returns the key id."""
    kid = key_id(Ed25519PublicKey.from_public_bytes(public_key))
    conn = await connection_of(db)
    rows = (await conn.execute(select(W).where((W.c.name == name) | (W.c.key_id == kid)))).all()
    if any(r.name == name and r.key_id == kid for r in rows):
        return kid
    if rows:
        raise WitnessNameTaken(f"a witness {name!r} or the key {kid} is registered already")
    await conn.execute(
        W.insert().values(key_id=kid, name=name, public_key=public_key, added_at_us=to_us(utcnow()))
    )
    return kid


async def add_cosignature(db: Db, cosignature: Cosignature) -> str:
    """Keeps a witness's cosignature of one of this log's kept heads; a repeat is a no-op.
    Returns the witness's name."""
    conn = await connection_of(db)
    witness = (await conn.execute(select(W).where(W.c.key_id == cosignature.key_id))).one_or_none()
    if witness is None:
        raise UnknownWitness(cosignature.key_id)
    if not cosignature.verify(Ed25519PublicKey.from_public_bytes(bytes(witness.public_key))):
        raise CosignatureInvalid(
            f"the signature does not verify under witness {witness.name!r}'s key"
        )
    head = await integration.stored_head(conn, cosignature.ledger_id, cosignature.tree_size)
    if head is None:
        raise TreeSizeOutOfRange(f"this log has no signed head of size {cosignature.tree_size}")
    if head.root_hash != cosignature.root_hash:
        raise HeadMismatch(
            f"this log's head of size {head.tree_size} has root {head.root_hash.hex()}, not "
            f"{cosignature.root_hash.hex()}"
        )
    key = {
        "ledger_id": cosignature.ledger_id,
        "tree_size": cosignature.tree_size,
        "key_id": cosignature.key_id,
    }
    found = (await conn.execute(select(C.c.key_id).filter_by(**key))).one_or_none()
    if found is None:
        await conn.execute(
            C.insert().values(
                **key, timestamp_us=cosignature.timestamp_us, signature=cosignature.signature
            )
        )
    return witness.name


@dataclass(frozen=True)
class WitnessedHead:
    head: TreeHead
    cosignatures: list[tuple[str, Cosignature]]  # (witness name, cosignature)


def _cosignature(head: TreeHead, row: Any) -> tuple[str, Cosignature]:
    return row.name, Cosignature(
        head.ledger_id,
        head.tree_size,
        head.root_hash,
        row.key_id,
        row.timestamp_us,
        bytes(row.signature),
    )


_COSIGNATURES = (
    select(C, W.c.name)
    .join(W, W.c.key_id == C.c.key_id)
    .where(C.c.ledger_id == bindparam("ledger_id"), C.c.tree_size == bindparam("size"))
    .order_by(W.c.name)
)


async def cosignatures_of(db: Db, head: TreeHead) -> list[tuple[str, Cosignature]]:
    conn = await connection_of(db)
    rows = await conn.execute(_COSIGNATURES, {"ledger_id": head.ledger_id, "size": head.tree_size})
    return [_cosignature(head, r) for r in rows]


async def newest_heads(db: Db, *, after: str | None, limit: int) -> list[WitnessedHead]:
    """The newest kept head of every ledger, in ledger id order from ``after``, each with its
    cosignatures: two queries, whatever the number of ledgers."""
    conn = await connection_of(db)
    newest = select(S.c.ledger_id, func.max(S.c.tree_size).label("size")).group_by(S.c.ledger_id)
    if after:
        newest = newest.where(S.c.ledger_id > after)
    n = newest.order_by(S.c.ledger_id).limit(limit).subquery()
    on_newest = (n.c.ledger_id == S.c.ledger_id) & (n.c.size == S.c.tree_size)
    rows = await conn.execute(select(S).join(n, on_newest).order_by(S.c.ledger_id))
    heads = {r.ledger_id: integration.head_from_row(r) for r in rows}
    signed = await conn.execute(
        select(C, W.c.name)
        .join(W, W.c.key_id == C.c.key_id)
        .join(n, (n.c.ledger_id == C.c.ledger_id) & (n.c.size == C.c.tree_size))
        .order_by(C.c.ledger_id, W.c.name)
    )
    by_ledger: dict[str, list[tuple[str, Cosignature]]] = {}
    for r in signed:
        by_ledger.setdefault(r.ledger_id, []).append(_cosignature(heads[r.ledger_id], r))
    return [WitnessedHead(h, by_ledger.get(lid, [])) for lid, h in heads.items()]

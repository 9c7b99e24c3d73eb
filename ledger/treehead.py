"""Signed tree heads.

The signature is Ed25519 over these bytes (all integers big-endian):

    b"cloud-exchange/tree-head/v1" 0x00
    u16 length of ledger_id in UTF-8 bytes, then those bytes
    u64 tree_size
    32 bytes root hash
    u64 timestamp, microseconds since 1970-01-01T00:00:00Z

Naming the ledger stops a head of one department being passed off as another's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature

from ledger.encoding import rfc3339, to_us
from ledger.signing import PublicKeySet, SigningKey, b64url, b64url_decode

DOMAIN = b"cloud-exchange/tree-head/v1\x00"


def signature_input(ledger_id: str, tree_size: int, root_hash: bytes, timestamp_us: int) -> bytes:
    lid = ledger_id.encode("utf-8")
    return b"".join(
        (
            DOMAIN,
            struct.pack(">H", len(lid)),
            lid,
            struct.pack(">Q", tree_size),
            root_hash,
            struct.pack(">Q", timestamp_us),
        )
    )


@dataclass(frozen=True)
class TreeHead:
    ledger_id: str
    tree_size: int
    root_hash: bytes
    timestamp_us: int
    key_id: str
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "ledger_id": self.ledger_id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "timestamp": rfc3339(self.timestamp_us),
            "key_id": self.key_id,
            "signature": b64url(self.signature),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TreeHead:
        ts = datetime.fromisoformat(data["timestamp"].replace("Z", "+00:00"))
        return cls(
            ledger_id=data["ledger_id"],
            tree_size=int(data["tree_size"]),
            root_hash=bytes.fromhex(data["root_hash"]),
            timestamp_us=to_us(ts),
            key_id=data["key_id"],
            signature=b64url_decode(data["signature"]),
        )

    def verify(self, keys: PublicKeySet) -> bool:
        """True when the signature holds under the named key; UnknownKey if it is not known."""
        public = keys.public_key(self.key_id)
        message = signature_input(self.ledger_id, self.tree_size, self.root_hash, self.timestamp_us)
        try:
            public.verify(self.signature, message)
        except InvalidSignature:
            return False
        return True


def sign_tree_head(
    key: SigningKey, ledger_id: str, tree_size: int, root_hash: bytes, timestamp_us: int
) -> TreeHead:
    signature = key.sign(signature_input(ledger_id, tree_size, root_hash, timestamp_us))
    return TreeHead(ledger_id, tree_size, root_hash, timestamp_us, key.kid, signature)

"""Receipts: one entry of the log with the proof that the log holds it, for the person whose
account it touches to keep and check without the service (ledger/README.md, "Receipts").

A receipt is the entry's canonical bytes, a signed tree head and the RFC 9162 audit path
from the entry's leaf to that head's root. An entry written since the newest signed head is
*pending*: the receipt says so and carries no head or proof until the integrator signs one
(within about a second, ledger/integration.py). They are made from the database in
ledger/proofs.py; this module holds nothing that needs one, so an offline verifier imports
only it, the Merkle arithmetic and the head's signature.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledger import merkle
from ledger.encoding import Entry, encode_entry
from ledger.errors import UnknownKey
from ledger.signing import PublicKeySet
from ledger.treehead import TreeHead

if TYPE_CHECKING:
    from ledger.proofs import InclusionProof

FORMAT = "cloud-exchange/receipt/v1"


@dataclass(frozen=True)
class Receipt:
    entry: Entry
    head: TreeHead | None  # None: pending, no signed head covers the entry yet
    proof: InclusionProof | None

    def to_json(self, account: str, description: Mapping[str, str]) -> dict[str, Any]:
        """The receipt v1 document; ``account`` is the holder's account, whose side of the
        entry ``description`` tells in words (neither is covered by the signature)."""
        return {
            "format": FORMAT,
            "ledger_id": self.entry.ledger_id,
            "seq": self.entry.seq,
            "account": account,
            "entry": base64.b64encode(encode_entry(self.entry)).decode("ascii"),
            "description": dict(description),
            "pending": self.head is None,
            "tree_head": None if self.head is None else self.head.to_json(),
            "inclusion_proof": None
            if self.proof is None
            else {
                "leaf_index": self.proof.leaf_index,
                "tree_size": self.proof.tree_size,
                "audit_path": [h.hex() for h in self.proof.path],
            },
        }


# --- checking a receipt without the service -----------------------------------------------


@dataclass(frozen=True)
class Check:
    """What checking a receipt found: the entry it holds and the head, and every reason it
    fails (none: it verifies)."""

    entry: dict[str, Any] | None
    head: TreeHead | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_receipt(receipt: Any, keys: PublicKeySet) -> Check:
    """Checks a receipt v1 document against the published keys (the JWKS): the entry's bytes
    hash to a leaf whose audit path leads to the head's root, the head is of the entry's
    ledger and the head's signature holds. Each failure is named in words."""
    if not isinstance(receipt, dict) or receipt.get("format") != FORMAT:
        return Check(None, None, [f"not a receipt: its format is not {FORMAT!r}"])
    try:
        raw = base64.b64decode(receipt["entry"], validate=True)
        entry = json.loads(raw)
        seq, ledger_id = entry["seq"], entry["ledger_id"]
        if not isinstance(seq, int) or not isinstance(ledger_id, str) or seq < 1:
            raise TypeError("seq or ledger_id")
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        return Check(None, None, [f"the entry is not a ledger entry's canonical bytes: {error}"])
    if receipt.get("pending") or receipt.get("tree_head") is None:
        return Check(
            entry,
            None,
            [
                "pending: no signed tree head covers this entry yet; download the receipt "
                "again in a few seconds"
            ],
        )
    try:
        head = TreeHead.from_json(receipt["tree_head"])
        proof = receipt["inclusion_proof"]
        proof_size = int(proof["tree_size"])
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return Check(entry, None, [f"the tree head or the inclusion proof is malformed: {error}"])
    problems = []
    if receipt.get("seq") != seq or receipt.get("ledger_id") != ledger_id:
        problems.append(
            f"the receipt names entry {receipt.get('seq')} of {receipt.get('ledger_id')!r}, "
            f"its bytes are entry {seq} of {ledger_id!r}"
        )
    if head.ledger_id != ledger_id:
        problems.append(
            f"the tree head is of department {head.ledger_id!r}'s log, the entry is in "
            f"department {ledger_id!r}'s: a head from another department proves nothing here"
        )
    if proof_size != head.tree_size:
        problems.append(
            f"the inclusion proof is for a tree of {proof_size} entries, the signed head is of "
            f"{head.tree_size}: the proof is from another tree"
        )
    elif seq > head.tree_size:
        problems.append(f"the signed head covers entries 1–{head.tree_size}, not entry {seq}")
    else:
        try:
            root = merkle.root_from_inclusion_proof(
                seq - 1, head.tree_size, merkle.leaf_hash(raw), path
            )
        except ValueError as error:
            problems.append(f"the inclusion proof does not fit entry {seq}: {error}")
        else:
            if root != head.root_hash:
                problems.append(
                    f"the entry's bytes and the audit path lead to root {root.hex()}, not to "
                    f"the signed root {head.root_hash.hex()}: the entry was changed, or the "
                    "proof is from another tree"
                )
    try:
        if not head.verify(keys):
            problems.append(f"the tree head's signature does not verify under key {head.key_id}")
    except UnknownKey:
        problems.append(
            f"the tree head is signed by key {head.key_id}, which is not among the published "
            "keys given"
        )
    except ValueError as error:
        problems.append(f"the tree head's signature is malformed: {error}")
    return Check(entry, head, problems)

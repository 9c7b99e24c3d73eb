"""`exchange witness run`: a witness, run by an outside party with its own Ed25519 key, that
polls every department's newest signed head over HTTP, checks it extends the last head it
co-signed of that department (a consistency proof, RFC 9162), and only then co-signs it and
submits the cosignature (ledger/witness.py). A head that does not extend it — the log was
rewritten, or is shown differently to different people — is refused and reported with both
heads, in the log and in the state file, and that department is never co-signed again until
someone looks into it (delete its entry under `forks` in the state file).

The state file keeps, per department, the last head co-signed: a witness restarted, or a
server restarted under it, carries on from there.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import merkle
from ledger.errors import UnknownKey
from ledger.signing import KeyRing, PublicKeySet, SigningKey, b64url, key_id, raw_public
from ledger.treehead import TreeHead
from ledger.witness import cosign

log = structlog.get_logger("exchange.witness")

HEAD_FIELDS = ("ledger_id", "tree_size", "root_hash", "timestamp", "key_id", "signature")
COSIGNATURE_FIELDS = ("tree_size", "root_hash", "key_id", "timestamp", "signature")


def load_or_create_key(path: Path) -> SigningKey:
    """The witness's key from a PKCS#8 PEM file, generated (mode 0600) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return SigningKey(key_id(private.public_key()), private)


def public_key_text(key: SigningKey) -> str:
    """What the operator registers: the raw public key, base64url."""
    return b64url(raw_public(key.public_key))


@dataclass
class State:
    """Per department: the last head co-signed, and the forks seen (both heads)."""

    path: Path
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)
    forks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "State":
        if not path.exists():
            return cls(path)
        data = json.loads(path.read_text())
        return cls(path, data.get("heads", {}), data.get("forks", {}))

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"heads": self.heads, "forks": self.forks}, indent=2))
        os.replace(tmp, self.path)  # a crash leaves the old state or the new, never half


@dataclass
class Poll:
    cosigned: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


class Witness:
    def __init__(self, client: httpx.Client, key: SigningKey, state: State) -> None:
        self.client = client
        self.key = key
        self.state = state

    def _get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def _heads(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after = None
        while True:
            page = self._get("/api/witness/heads", limit=500, **({"after": after} if after else {}))
            items += page["items"]
            after = page["next"]
            if after is None:
                return items

    def poll(self) -> Poll:
        """One round over every department's newest head."""
        keys = KeyRing.from_jwks(self._get("/api/keys"))
        done = Poll()
        for shown in self._heads():
            try:
                outcome = self._visit(shown, keys)
            except (KeyError, TypeError, ValueError) as error:  # not what the service sends
                shown_text = str(shown)[:500]
                log.error("malformed head from the service", head=shown_text, error=repr(error))
                outcome = "refused"
            if outcome == "cosigned":
                done.cosigned.append(str(shown.get("ledger_id")))
            elif outcome == "refused":
                done.refused.append(str(shown.get("ledger_id")))
        return done

    def _visit(self, shown: dict[str, Any], keys: PublicKeySet) -> str:
        """ "cosigned", "refused", or "kept" (co-signed before, or older: nothing to do)."""
        ledger_id = shown["ledger_id"]
        if ledger_id in self.state.forks:
            fork = self.state.forks[ledger_id]
            log.error("fork: not co-signing this log", ledger_id=ledger_id, **fork)
            return "refused"
        refusal = self._check(shown, keys)
        if refusal == "stale":
            return "kept"
        if refusal is not None:
            return "refused"
        if any(c["key_id"] == self.key.kid for c in shown["cosignatures"]):
            self._remember(shown)
            return "kept"
        cosignature = cosign(self.key, TreeHead.from_json(shown)).to_json()
        response = self.client.post(
            f"/api/departments/{ledger_id}/ledger/tree-head/cosignatures",
            json={k: cosignature[k] for k in COSIGNATURE_FIELDS},
        )
        if response.status_code != 201:
            log.error(
                "cosignature refused by the service",
                ledger_id=ledger_id,
                status=response.status_code,
                detail=response.text[:500],
            )
            return "refused"
        self._remember(shown)
        log.info("co-signed", ledger_id=ledger_id, tree_size=shown["tree_size"])
        return "cosigned"

    def _remember(self, shown: dict[str, Any]) -> None:
        head = {k: shown[k] for k in HEAD_FIELDS}
        if self.state.heads.get(shown["ledger_id"]) != head:
            self.state.heads[shown["ledger_id"]] = head
            self.state.save()

    def _check(self, shown: dict[str, Any], keys: PublicKeySet) -> str | None:
        """Why ``shown`` must not be co-signed, or None."""
        ledger_id = shown["ledger_id"]
        head = TreeHead.from_json(shown)
        try:
            signed = head.verify(keys)
        except UnknownKey:
            signed = False
        if not signed:
            log.error("head not signed by the log's published keys", ledger_id=ledger_id)
            return "signature"
        last = self.state.heads.get(ledger_id)
        if last is None:
            return None  # the first head seen of this log: nothing to be consistent with
        before = TreeHead.from_json(last)
        if head.tree_size < before.tree_size:
            # An older head (a lagging instance, or a log about to grow again) proves no
            # fork by itself; it is not co-signed, and the next heads are checked as usual.
            log.warning(
                "head older than the one co-signed; waiting",
                ledger_id=ledger_id,
                tree_size=head.tree_size,
                cosigned_size=before.tree_size,
            )
            return "stale"
        if head.tree_size == before.tree_size:
            if head.root_hash == before.root_hash:
                return None
            reason = "two heads of the same size with different roots"
        else:
            proof = self._get(
                f"/api/witness/heads/{ledger_id}/consistency",
                first=before.tree_size,
                second=head.tree_size,
            )
            path = [bytes.fromhex(h) for h in proof["consistency_path"]]
            if merkle.verify_consistency(
                before.tree_size, head.tree_size, before.root_hash, head.root_hash, path
            ):
                return None
            reason = "the new head does not extend the one co-signed before"
        self.state.forks[ledger_id] = {
            "reason": reason,
            "cosigned": last,
            "shown": {k: shown[k] for k in HEAD_FIELDS},
        }
        self.state.save()
        log.error("fork: refusing to co-sign", ledger_id=ledger_id, **self.state.forks[ledger_id])
        return "fork"

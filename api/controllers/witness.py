"""What an outside witness needs (ledger/witness.py): every department's newest signed head
with its cosignatures, consistency proofs between heads, and the route it submits a
cosignature to. Anyone may read them, as a Certificate Transparency log publishes its heads:
a head is only a size, a root and a signature. A cosignature needs no sign-in: only a
registered witness's key makes one that verifies."""

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

import ledger
from api.controllers.ledger import ConsistencyOut, CosignatureOut, WitnessedHeadOut
from api.controllers.refusals import refusals
from api.params import DB, DEFAULT_LIMIT, MAX_INTEGER, After, Limit
from ledger import witness
from ledger.encoding import to_us
from ledger.errors import InvalidRequest
from ledger.signing import b64url_decode

HEX32 = "^[0-9a-f]{64}$"
KID = "^[0-9a-f]{16}$"
B64URL_SIGNATURE = "^[A-Za-z0-9_-]{86}$"  # 64 bytes, base64url without padding


class HeadPage(msgspec.Struct):
    items: list[WitnessedHeadOut]
    next: str | None


class CosignatureIn(msgspec.Struct):
    tree_size: Annotated[int, msgspec.Meta(ge=1, le=MAX_INTEGER)]
    root_hash: Annotated[str, msgspec.Meta(pattern=HEX32, description="the head's root, hex")]
    key_id: Annotated[str, msgspec.Meta(pattern=KID, description="the witness's key id")]
    timestamp: Annotated[datetime, msgspec.Meta(description="the witness's time, RFC 3339")]
    signature: Annotated[
        str,
        msgspec.Meta(pattern=B64URL_SIGNATURE, description="Ed25519, base64url, no padding"),
    ]


class WitnessController(Controller):
    tags = ["Witnesses"]

    @get(
        "/api/witness/heads",
        exclude_from_auth=True,
        summary="Every department's newest signed tree head, with its cosignatures",
        description="In ledger id order, `limit` at a time. What a witness polls "
        "(`exchange witness run`); the cosignature format is in ledger/README.md.",
    )
    async def heads(self, db: DB, limit: Limit = DEFAULT_LIMIT, after: After = None) -> HeadPage:
        found = await witness.newest_heads(db, after=after, limit=limit + 1)
        page = found[:limit]
        nxt = page[-1].head.ledger_id if len(found) > limit else None
        return HeadPage([WitnessedHeadOut.of(w.head, w.cosignatures) for w in page], nxt)

    @get(
        "/api/witness/heads/{ledger_id:str}/consistency",
        exclude_from_auth=True,
        summary="Proof that a log of size `second` extends its log of size `first` (RFC 9162)",
    )
    async def consistency(
        self,
        db: DB,
        ledger_id: FromPath[str],
        first: Annotated[int, QueryParameter(ge=1, le=MAX_INTEGER)],
        second: Annotated[int | None, QueryParameter(ge=1, le=MAX_INTEGER)] = None,
    ) -> ConsistencyOut:
        c = await ledger.consistency_proof(db, ledger_id, first, second)
        return ConsistencyOut(
            first=c.first, second=c.second, consistency_path=[h.hex() for h in c.path]
        )

    @post(
        "/api/departments/{department_id:str}/ledger/tree-head/cosignatures",
        exclude_from_auth=True,
        status_code=201,
        summary="A witness's cosignature of one of the department's signed tree heads",
        description="Ed25519 by a registered witness over the bytes in ledger/README.md "
        '("Witnesses"): kept, and served with the head from then on. Sending it again '
        "changes nothing.",
        responses=refusals(
            _403="Not a registered witness's key, or the signature does not verify",
            _409="The log's head of that size has another root",
            _422="No signed head of that size; a field breaks its pattern",
        ),
    )
    async def cosign(
        self,
        request: Request[Any, Any, Any],
        db: DB,
        department_id: FromPath[str],
        data: JSONBody[CosignatureIn],
    ) -> CosignatureOut:
        timestamp_us = to_us(data.timestamp)
        if not 0 <= timestamp_us <= MAX_INTEGER:
            raise InvalidRequest("timestamp", "must lie between 1970 and 2255")
        cosignature = witness.Cosignature(
            department_id,
            data.tree_size,
            bytes.fromhex(data.root_hash),
            data.key_id,
            timestamp_us,
            b64url_decode(data.signature),
        )
        name = await witness.add_cosignature(db, cosignature)
        j = cosignature.to_json()
        return CosignatureOut(
            witness=name, key_id=data.key_id, timestamp=j["timestamp"], signature=j["signature"]
        )

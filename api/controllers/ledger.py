"""The ledger for auditors (and members, for their own account and the signed tree head):
entries, balances, signed tree heads, Merkle proofs and the streamed export."""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream
from litestar.security.jwt import Token
from sqlmodel.ext.asyncio.session import AsyncSession

import ledger
from api.auth import requires
from api.params import DB, DEFAULT_LIMIT, MAX_INTEGER, After, Limit
from catalog import departments
from catalog.identity import Identity
from catalog.models import Role
from ledger import errors as E
from ledger import merkle
from ledger.encoding import Entry, to_us
from ledger.transfers import utcnow
from ledger.treehead import TreeHead, sign_tree_head
from ledger.witness import Cosignature, cosignatures_of

EXPORT_CHUNK = 5000  # entries per read transaction while streaming an export


class EntryOut(msgspec.Struct):
    seq: int
    kind: str
    time: str
    debit_account: str
    credit_account: str
    amount: int
    ref_seq: int | None
    expires_at: str | None
    reference: str
    actor: str
    idempotency_key: str
    debit_after: list[int]
    credit_after: list[int]

    @classmethod
    def of(cls, e: Entry) -> "EntryOut":
        j = e.to_json()
        return cls(
            seq=e.seq,
            kind=e.kind,
            time=j["time_rfc3339"],
            debit_account=e.debit_account,
            credit_account=e.credit_account,
            amount=e.amount,
            ref_seq=e.ref_seq,
            expires_at=j.get("expires_at_rfc3339"),
            reference=e.reference,
            actor=e.actor,
            idempotency_key=e.idempotency_key,
            debit_after=j["debit_after"],
            credit_after=j["credit_after"],
        )


class EntryPage(msgspec.Struct):
    items: list[EntryOut]
    next: str | None


class AccountOut(msgspec.Struct):
    account: str
    flags: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    posted: int
    available: int
    as_of_seq: int | None


class TreeHeadOut(msgspec.Struct):
    ledger_id: str
    tree_size: int
    root_hash: str
    timestamp: str
    key_id: str
    signature: str


class CosignatureOut(msgspec.Struct):
    witness: str
    key_id: str
    timestamp: str
    signature: str


class WitnessedHeadOut(TreeHeadOut):
    cosignatures: list[CosignatureOut]

    @classmethod
    def of(cls, head: TreeHead, signed: list[tuple[str, Cosignature]]) -> "WitnessedHeadOut":
        return cls(
            **head.to_json(),
            cosignatures=[
                CosignatureOut(
                    witness=name,
                    key_id=c.key_id,
                    timestamp=c.to_json()["timestamp"],
                    signature=c.to_json()["signature"],
                )
                for name, c in signed
            ],
        )


class InclusionOut(msgspec.Struct):
    seq: int
    leaf_index: int
    tree_size: int
    leaf_hash: str
    audit_path: list[str]


class ConsistencyOut(msgspec.Struct):
    first: int
    second: int
    consistency_path: list[str]


async def _visible(db: AsyncSession, caller: Identity, department_id: str) -> None:
    """Another department's ledger is indistinguishable from a missing one."""
    if not caller.may_see_department(department_id):
        raise NotFoundException("No such department.")
    if caller.is_platform:
        await departments.get_department(db, caller, department_id)


def _auditor(caller: Identity) -> bool:
    return caller.has(Role.auditor, Role.admin)


AUDITORS = [requires(Role.auditor, Role.admin)]
MEMBERS = [requires(Role.auditor, Role.admin, Role.employee, Role.coordinator)]
Dept = FromPath[str]


class LedgerController(Controller):
    path = "/api/departments/{department_id:str}/ledger"
    tags = ["Ledger"]

    @get("/entries", guards=AUDITORS, summary="Log entries, filtered, in sequence order")
    async def entries(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: Dept,
        account: Annotated[str | None, QueryParameter(max_length=128)] = None,
        reference: Annotated[str | None, QueryParameter(max_length=256)] = None,
        kind: Annotated[str | None, QueryParameter(max_length=16)] = None,
        since: Annotated[
            datetime | None,
            QueryParameter(name="from", description="inclusive; RFC 3339 with an offset"),
        ] = None,
        until: Annotated[
            datetime | None,
            QueryParameter(name="to", description="exclusive; RFC 3339 with an offset"),
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        after: After = None,
    ) -> EntryPage:
        await _visible(db, request.user, department_id)
        page = await ledger.list_entries(
            db,
            department_id,
            account=account,
            reference=reference,
            kind=kind,
            since=since,
            until=until,
            after=after,
            limit=limit,
        )
        return EntryPage([EntryOut.of(e) for e in page.entries], page.next)

    @get(
        "/accounts/{account:str}",
        guards=MEMBERS,
        summary="An account's balances, now or as of a sequence number or a time",
        description="Auditors see any account of the department; an employee sees their own "
        "(`user:<their id>`).",
    )
    async def account(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: Dept,
        account: FromPath[str],
        as_of_seq: Annotated[int | None, QueryParameter(ge=0, le=MAX_INTEGER)] = None,
        as_of: Annotated[
            datetime | None, QueryParameter(description="RFC 3339 with an offset")
        ] = None,
    ) -> AccountOut:
        caller = request.user
        await _visible(db, caller, department_id)
        if not _auditor(caller) and account != f"user:{caller.user_id}":
            raise NotFoundException("No such account.")
        b = await ledger.balance(db, department_id, account, as_of_seq=as_of_seq, as_of=as_of)
        return AccountOut(
            account=b.account,
            flags=b.flags,
            debits_pending=b.debits_pending,
            debits_posted=b.debits_posted,
            credits_pending=b.credits_pending,
            credits_posted=b.credits_posted,
            posted=b.posted,
            available=b.available,
            as_of_seq=b.as_of_seq,
        )

    @get(
        "/tree-head",
        guards=MEMBERS,
        summary="A freshly signed tree head of the department's log",
        description="Ed25519 signature over the byte string documented in ledger/README.md, "
        "with the key named by `key_id` in /api/keys. `tree_size` asks for an earlier size. "
        "`cosignatures`: the witnesses that co-signed this head (ledger/README.md, Witnesses).",
    )
    async def tree_head(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: Dept,
        tree_size: Annotated[int | None, QueryParameter(ge=0, le=MAX_INTEGER)] = None,
    ) -> WitnessedHeadOut:
        await _visible(db, request.user, department_id)
        keyring = request.app.state.settings.keyring
        try:
            head = await ledger.tree_head(db, department_id, keyring, tree_size=tree_size)
        except E.LedgerNotFound:
            if tree_size:
                raise E.TreeSizeOutOfRange(
                    f"tree_size {tree_size} is not between 0 and 0"
                ) from None
            # A department that has not written yet has an empty log; sign that.
            head = sign_tree_head(
                keyring.active, department_id, 0, merkle.EMPTY_ROOT, to_us(utcnow())
            )
        return WitnessedHeadOut.of(head, await cosignatures_of(db, head))

    @get("/proofs/inclusion", guards=MEMBERS, summary="Audit path of entry `seq` (RFC 9162)")
    async def inclusion(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: Dept,
        seq: Annotated[int, QueryParameter(ge=1, le=MAX_INTEGER)],
        tree_size: Annotated[int | None, QueryParameter(ge=1, le=MAX_INTEGER)] = None,
    ) -> InclusionOut:
        await _visible(db, request.user, department_id)
        p = await ledger.inclusion_proof(db, department_id, seq, tree_size)
        j = p.to_json()
        return InclusionOut(
            seq=p.seq,
            leaf_index=p.leaf_index,
            tree_size=p.tree_size,
            leaf_hash=j["leaf_hash"],
            audit_path=j["audit_path"],
        )

    @get(
        "/proofs/consistency",
        guards=MEMBERS,
        summary="Proof that the log of size `second` extends the log of size `first` (RFC 9162)",
        description="Members too: an employee's browser checks that the head it verified on "
        "an earlier visit is a prefix of today's, so a log rewritten since, or shown "
        "differently to different people, is caught.",
    )
    async def consistency(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: Dept,
        first: Annotated[int, QueryParameter(ge=1, le=MAX_INTEGER)],
        second: Annotated[int | None, QueryParameter(ge=1, le=MAX_INTEGER)] = None,
    ) -> ConsistencyOut:
        await _visible(db, request.user, department_id)
        c = await ledger.consistency_proof(db, department_id, first, second)
        return ConsistencyOut(
            first=c.first, second=c.second, consistency_path=[h.hex() for h in c.path]
        )

    @get(
        "/export",
        guards=AUDITORS,
        summary="The log as JSON Lines, streamed",
        description="Each line is exactly the entry's canonical bytes (its Merkle leaf is "
        "SHA-256(0x00 ‖ line)). `tree_size` stops at that size, to pair the export with a tree "
        "head of the same size; verify offline with `exchange ledger verify`.",
        media_type="application/x-ndjson",
    )
    async def export(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: Dept,
        tree_size: Annotated[int | None, QueryParameter(ge=0, le=MAX_INTEGER)] = None,
    ) -> Stream:
        await _visible(db, request.user, department_id)
        try:
            size = await ledger.ledger_size(db, department_id)
        except E.LedgerNotFound:
            size = 0
        upto = size if tree_size is None else tree_size
        if upto > size:
            raise E.TreeSizeOutOfRange(f"tree_size {upto} is not between 0 and {size}")
        factory = request.app.state.session_factory

        async def lines() -> AsyncIterator[bytes]:
            # A short read transaction per chunk: on SQLite a transaction holds the write
            # lock, and entries never change, so chunks need no common snapshot.
            start = 0
            while start < upto:
                end = min(start + EXPORT_CHUNK, upto)
                async with factory() as session:
                    chunk = [
                        line
                        async for line in ledger.export_lines(
                            session, department_id, start=start, upto=end
                        )
                    ]
                yield b"".join(chunk)
                start = end

        return Stream(
            lines(),
            media_type="application/x-ndjson",
            headers={
                "Content-Disposition": f'attachment; filename="ledger-{department_id}-{upto}.jsonl"'
            },
        )

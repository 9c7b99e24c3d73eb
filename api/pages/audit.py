"""Auditor pages: the ledger explorer, an entry with its inclusion proof (checked again in
the browser), balances as of a time, the signed tree head, export and offline verification.

Read-only. A platform auditor picks a department; a department's auditor sees only theirs.
"""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, Parameter
from litestar.response import Response, Stream, Template
from litestar.security.jwt import Token

from api.auth import requires
from api.pages.quantities import whole_number
from api.pages.rendering import page, translator
from api.pages.templating import SHANGHAI
from api.params import DB, MAX_INTEGER
from catalog import departments, members
from catalog.identity import Identity
from catalog.models import Department, Role
from catalog.paging import MAX_LIMIT
from exchange.points import ISSUANCE, REDEMPTION, user_account
from ledger import merkle, proofs, queries, witness
from ledger.encoding import encode_entry, from_us
from ledger.errors import AccountNotFound, LedgerNotFound

PAGE_SIZE = 50


def parse_local(typed: str | None) -> datetime | None:
    """A datetime-local field's value, read as China time."""
    if not typed:
        return None
    try:
        return datetime.fromisoformat(typed).replace(tzinfo=SHANGHAI)
    except ValueError:
        return None


async def account_names(
    db: DB, department_id: str, request: Request[Any, Any, Any]
) -> dict[str, str]:
    _ = translator(request).gettext
    names = {ISSUANCE: _("Issuance (points issued)"), REDEMPTION: _("Redemption (points spent)")}
    listing = await members.list_members(db, department_id, limit=MAX_LIMIT, after=None)
    for member in listing.items:
        names[user_account(member.user.id)] = f"{member.user.display_name} ({member.user.username})"
    return names


def entry_kinds(request: Request[Any, Any, Any]) -> dict[str, str]:
    _ = translator(request).gettext
    return {
        "direct": _("Direct transfer"),
        "pending": _("Pending (hold or unconfirmed credit)"),
        "post": _("Post of a pending transfer"),
        "void": _("Void of a pending transfer"),
        "reversal": _("Reversal"),
    }


def attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


class AuditPages(Controller):
    path = "/audit"
    guards = [requires(Role.auditor)]
    include_in_schema = False

    async def _department(
        self, request: Request[Identity, Token, Any], db: DB, department_id: str | None
    ) -> tuple[Department | None, list[Department]]:
        """The department being audited, and those the auditor may choose from."""
        visible = await departments.list_departments(db, request.user, limit=MAX_LIMIT, after=None)
        chosen = (
            department_id
            or request.user.department_id
            or (visible.items[0].id if visible.items else None)
        )
        if chosen is None:
            return None, []
        return await departments.get_department(db, request.user, chosen), visible.items

    @get("/ledger")
    async def ledger(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department: FromQuery[str | None] = None,
        account: FromQuery[str | None] = None,
        reference: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        after: FromQuery[str | None] = None,
    ) -> Template:
        chosen, choices = await self._department(request, db, department)
        filters = {
            "account": (account or "").strip(),
            "reference": (reference or "").strip(),
            "kind": (kind or "").strip(),
            "since": since or "",
            "until": until or "",
        }
        entries: list[Any] = []
        next_cursor = None
        names: dict[str, str] = {}
        if chosen is not None:
            names = await account_names(db, chosen.id, request)
            try:
                listing = await queries.list_entries(
                    db,
                    chosen.id,
                    account=filters["account"] or None,
                    reference=filters["reference"] or None,
                    kind=filters["kind"] or None,
                    since=parse_local(filters["since"]),
                    until=parse_local(filters["until"]),
                    # A cursor is a sequence number; anything else starts from the top.
                    after=str(whole_number(after or "") or "") or None,
                    limit=PAGE_SIZE,
                )
                entries, next_cursor = listing.entries, listing.next
            except LedgerNotFound:
                pass  # nothing was ever written: an empty log
        query = {k: v for k, v in filters.items() if v}
        if chosen is not None:
            query["department"] = chosen.id
        return page(
            request,
            "audit/ledger.html",
            title=translator(request).gettext("Ledger"),
            department=chosen,
            departments=choices,
            filters=filters,
            entries=entries,
            names=names,
            next=next_cursor,
            query=query,
            kinds=entry_kinds(request),
            from_us=from_us,
        )

    @get("/ledger/{department_id:str}/entries/{seq:int}")
    async def entry(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        seq: Annotated[int, Parameter(ge=1, le=MAX_INTEGER)],
    ) -> Template:
        department = await departments.get_department(db, request.user, department_id)
        entry = await queries.get_entry(db, department.id, seq)
        keyring = request.app.state.settings.keyring
        head = await proofs.tree_head(db, department.id, keyring)
        proof = await proofs.inclusion_proof(db, department.id, seq, head.tree_size)
        canonical = encode_entry(entry)
        verified = merkle.leaf_hash(canonical) == proof.leaf_hash and merkle.verify_inclusion(
            proof.leaf_index, proof.tree_size, proof.leaf_hash, proof.path, head.root_hash
        )
        return page(
            request,
            "audit/entry.html",
            title=translator(request).gettext("Ledger entry %(seq)d") % {"seq": seq},
            department=department,
            entry=entry,
            names=await account_names(db, department.id, request),
            canonical=canonical.decode("utf-8"),
            proof=proof,
            head=head,
            head_json=head.to_json(),
            server_verified=verified and head.verify(keyring),
            kinds=entry_kinds(request),
            # What the page's script checks again, independently of the server.
            proof_data={
                "canonical_hex": canonical.hex(),
                "leaf_hash": proof.leaf_hash.hex(),
                "leaf_index": proof.leaf_index,
                "tree_size": proof.tree_size,
                "path": [node.hex() for node in proof.path],
                "root_hash": head.root_hash.hex(),
                "head": head.to_json(),
            },
            from_us=from_us,
        )

    @get("/balances")
    async def balances(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department: FromQuery[str | None] = None,
        account: FromQuery[str | None] = None,
        as_of: FromQuery[str | None] = None,
    ) -> Template:
        _ = translator(request).gettext
        chosen, choices = await self._department(request, db, department)
        names = await account_names(db, chosen.id, request) if chosen else {}
        result = error = None
        when = parse_local(as_of)
        if chosen is not None and account:
            if as_of and when is None:
                error = _("Enter a date and time, or leave it empty for now.")
            else:
                try:
                    result = await queries.balance(db, chosen.id, account, as_of=when)
                except (AccountNotFound, LedgerNotFound):
                    error = _("This account has no entries in the ledger.")
        return page(
            request,
            "audit/balances.html",
            title=_("Balances"),
            department=chosen,
            departments=choices,
            names=names,
            account=account or "",
            as_of=as_of or "",
            result=result,
            error=error,
        )

    @get("/tree-head")
    async def tree_head(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department: FromQuery[str | None] = None,
    ) -> Template:
        chosen, choices = await self._department(request, db, department)
        head = None
        if chosen is not None:
            try:
                head = await proofs.tree_head(db, chosen.id, request.app.state.settings.keyring)
            except LedgerNotFound:
                head = None
        # Every department's newest kept head and who co-signed it: one look tells an
        # auditor which logs the witnesses are keeping honest.
        names = {d.id: d.name for d in choices}
        witnessed = [
            w
            for w in await witness.newest_heads(db, after=None, limit=MAX_LIMIT)
            if w.head.ledger_id in names
        ]
        return page(
            request,
            "audit/tree_head.html",
            title=translator(request).gettext("Signed tree head"),
            department=chosen,
            departments=choices,
            department_names=names,
            witnessed=witnessed,
            cosigned_by=[name for name, _ in await witness.cosignatures_of(db, head)]
            if head
            else [],
            head=head,
            head_json=head.to_json() if head else None,
            verified=head.verify(request.app.state.settings.keyring) if head else False,
            from_us=from_us,
        )

    @get("/ledger/{department_id:str}/tree-head.json")
    async def tree_head_file(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        tree_size: Annotated[int | None, Parameter(ge=0, le=MAX_INTEGER)] = None,
    ) -> Response[dict[str, Any]]:
        department = await departments.get_department(db, request.user, department_id)
        head = await proofs.tree_head(
            db, department.id, request.app.state.settings.keyring, tree_size=tree_size
        )
        return Response(
            head.to_json(),
            headers=attachment(f"tree-head-{department.id}-{head.tree_size}.json"),
        )

    @get("/ledger/{department_id:str}/export.jsonl")
    async def export(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        upto: Annotated[int | None, Parameter(ge=0, le=MAX_INTEGER)] = None,
    ) -> Stream:
        department = await departments.get_department(db, request.user, department_id)
        size = await queries.ledger_size(db, department.id)
        if upto is not None and not 0 <= upto <= size:
            raise NotFoundException(f"The log has {size} entries.")
        factory = request.app.state.session_factory

        # The stream outlives the handler's transaction, so it reads in one of its own.
        async def lines() -> AsyncIterator[bytes]:
            async with factory() as session, session.begin():
                async for line in queries.export_lines(session, department.id, upto=upto or size):
                    yield line

        return Stream(
            lines(),
            media_type="application/jsonl",
            headers=attachment(f"ledger-{department.id}-{upto or size}.jsonl"),
        )

"""An employee's receipts: each ledger entry of their account with the signed tree head and
the inclusion proof that let them check it themselves (format: ledger/README.md,
"Receipts")."""

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import Parameter
from litestar.security.jwt import Token

from api.auth import requires
from api.controllers.ledger import TreeHeadOut
from api.controllers.refusals import refusals
from api.i18n import translations
from api.params import DB, DEFAULT_LIMIT, MAX_INTEGER, After, Limit
from catalog.identity import Identity
from catalog.models import Role
from exchange import receipts
from exchange.points import user_account
from exchange.receipt_words import describe
from ledger.encoding import entry_object
from ledger.receipts import Receipt

# The languages a receipt tells its entry in, by BCP 47 tag, and their catalogs' names.
RECEIPT_LANGUAGES = {"zh-CN": "zh", "en": "en"}


class ReceiptProofOut(msgspec.Struct):
    leaf_index: int
    tree_size: int
    audit_path: list[str]


class ReceiptOut(msgspec.Struct):
    format: str
    ledger_id: str
    seq: int
    account: str
    entry: str
    description: dict[str, str]
    pending: bool
    tree_head: TreeHeadOut | None
    inclusion_proof: ReceiptProofOut | None


class ReceiptPage(msgspec.Struct):
    items: list[ReceiptOut]
    next: str | None


def receipt_document(receipt: Receipt, account: str) -> dict[str, Any]:
    """The receipt v1 document, with the entry told in every receipt language."""
    entry = entry_object(receipt.entry)
    words = {
        tag: describe(entry, account, translations(language))
        for tag, language in RECEIPT_LANGUAGES.items()
    }
    return receipt.to_json(account, words)


def _out(receipt: Receipt, caller: Identity) -> ReceiptOut:
    return msgspec.convert(receipt_document(receipt, user_account(caller.user_id)), ReceiptOut)


class ReceiptController(Controller):
    path = "/api/me/receipts"
    tags = ["Receipts"]
    guards = [requires(Role.employee, Role.coordinator)]

    @get(
        summary="My receipts, newest first",
        description="Every ledger entry of the caller's account (drop-offs credited, pending, "
        "rejected; orders held, picked up, released), each as a receipt v1 document: the "
        "entry's canonical bytes (base64), the newest signed tree head and the inclusion proof "
        "to it. An entry written since that head is `pending: true`, without head or proof, "
        "until the next head is signed (about a second); the single receipt route completes "
        "it at once. Verify one offline with `exchange receipt verify FILE --jwks KEYS.json`.",
    )
    async def list_receipts(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        limit: Limit = DEFAULT_LIMIT,
        after: After = None,
    ) -> ReceiptPage:
        found, nxt = await receipts.my_receipts(db, request.user, after=after, limit=limit)
        return ReceiptPage([_out(r, request.user) for r in found], nxt)

    @get(
        "/{seq:int}",
        summary="One of my receipts, by the entry's sequence number",
        description="Never pending: if no signed head covers the entry yet, one is signed "
        "first. An entry of anyone else's account answers 404, as a missing one does.",
        responses=refusals(_404="No entry `seq` of the caller's account"),
    )
    async def receipt(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        seq: Annotated[int, Parameter(ge=1, le=MAX_INTEGER)],
    ) -> ReceiptOut:
        keyring = request.app.state.settings.keyring
        return _out(await receipts.my_receipt(db, request.user, seq, keyring), request.user)

"""我的凭证 / My receipts: each entry of the employee's account in words, checked again by their
own browser (api/static/js/receipts.js), and downloadable as the receipt file that
`exchange receipt verify` checks offline."""

import json
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.params import Parameter
from litestar.response import Template
from litestar.security.jwt import Token

from api.auth import requires
from api.controllers.receipts import receipt_document
from api.pages.rendering import language_of, page, translator
from api.params import DB, MAX_INTEGER, After
from catalog.identity import Identity
from catalog.models import Role
from exchange import receipts
from exchange.points import user_account
from ledger.encoding import from_us

PAGE_SIZE = 20
LANGUAGE_TAGS = {"zh": "zh-CN", "en": "en"}


class ReceiptPages(Controller):
    path = "/me/receipts"
    guards = [requires(Role.employee)]
    include_in_schema = False

    @get()
    async def list_page(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        after: After = None,
    ) -> Template:
        caller = request.user
        found, nxt = await receipts.my_receipts(db, caller, after=after, limit=PAGE_SIZE)
        account = user_account(caller.user_id)
        documents = [receipt_document(r, account) for r in found]
        tag = LANGUAGE_TAGS[language_of(request)]
        return page(
            request,
            "employee/receipts.html",
            title=translator(request).gettext("My receipts"),
            department_id=caller.department_id or "",
            rows=[
                {
                    "seq": r.entry.seq,
                    "time": from_us(r.entry.time_us),
                    "words": d["description"][tag],
                    "pending": d["pending"],
                }
                for r, d in zip(found, documents, strict=True)
            ],
            documents=documents,
            next=nxt,
        )

    @get("/{seq:int}/download")
    async def download(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        seq: Annotated[int, Parameter(ge=1, le=MAX_INTEGER)],
    ) -> Response[bytes]:
        caller = request.user
        keyring = request.app.state.settings.keyring
        found = await receipts.my_receipt(db, caller, seq, keyring)
        document = receipt_document(found, user_account(caller.user_id))
        name = f"receipt-{found.entry.ledger_id}-{seq}.json"
        return Response(
            json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8"),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

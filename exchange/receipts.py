"""An employee's receipts: every ledger entry that touches their account, with the proof the
log holds it (ledger/receipts.py), and what it means in words.

Only the account's owner reads them here: an entry of anyone else's account answers like a
missing one. Auditors read any entry through the ledger's own routes.

The words are English gettext message ids, translated by the service's one catalog
(api/locale); the caller passes the catalog of each language it wants.
"""

import gettext
from collections.abc import Mapping
from typing import Any

from catalog.identity import Identity
from exchange.errors import NotFound
from exchange.expiry import EXPIRY
from exchange.points import user_account
from ledger import queries
from ledger.db import Db
from ledger.errors import LedgerNotFound, TransferNotFound
from ledger.receipts import Receipt, complete_receipt, receipts
from ledger.signing import KeyRing


async def my_receipts(
    db: Db, caller: Identity, *, after: str | None, limit: int
) -> tuple[list[Receipt], str | None]:
    """The caller's receipts, newest first, and the cursor of the next page."""
    if caller.department_id is None:
        return [], None
    try:
        page = await queries.list_entries(
            db,
            caller.department_id,
            account=user_account(caller.user_id),
            after=after,
            limit=limit,
            newest_first=True,
        )
    except LedgerNotFound:
        return [], None
    return await receipts(db, caller.department_id, page.entries), page.next


async def my_receipt(db: Db, caller: Identity, seq: int, keys: KeyRing) -> Receipt:
    """The receipt of entry ``seq``, if it touches the caller's account; completed (signed
    over) on demand if no head covers it yet."""
    account = user_account(caller.user_id)
    try:
        if caller.department_id is None:
            raise LedgerNotFound("")
        entry = await queries.get_entry(db, caller.department_id, seq)
    except (LedgerNotFound, TransferNotFound):
        raise NotFound("No such receipt.") from None
    if account not in (entry.debit_account, entry.credit_account):
        raise NotFound("No such receipt.")
    return await complete_receipt(db, entry, keys)


def describe(entry: Mapping[str, Any], account: str, translations: gettext.NullTranslations) -> str:
    """What ``entry`` (its canonical JSON object) did to ``account``, in plain words."""
    _ = translations.gettext
    kind, reference, points = entry["kind"], entry["reference"], {"points": entry["amount"]}
    credited = entry["credit_account"] == account
    if kind == "reversal":
        return _("Correction of entry %(ref)d: %(points)d points") % {
            "ref": entry["ref_seq"],
            **points,
        }
    if reference.startswith("dropoff:") and credited:
        text = {
            "direct": _("Drop-off credited: %(points)d points"),
            "pending": _("Drop-off recorded, waiting for a coordinator: %(points)d points pending"),
            "post": _("Drop-off confirmed: %(points)d points credited"),
            "void": _("Drop-off rejected: %(points)d pending points withdrawn"),
        }.get(kind)
    elif reference.startswith("order:") and not credited:
        text = {
            "pending": _("Order placed: %(points)d points held"),
            "post": _("Order picked up: %(points)d points spent"),
            "void": _("Order cancelled or expired: %(points)d held points released"),
        }.get(kind)
    elif entry["credit_account"] == EXPIRY and not credited:
        text = _("Points expired: %(points)d points")
    else:
        text = None
    if text is None:
        text = _("%(points)d points credited") if credited else _("%(points)d points debited")
    return text % points

"""An employee's receipts: every ledger entry that touches their account, with the proof the
log holds it (ledger/receipts.py), and what it means in words.

Only the account's owner reads them here: an entry of anyone else's account answers like a
missing one. Auditors read any entry through the ledger's own routes.

What a receipt says happened, in words: exchange/receipt_words.py.
"""

from catalog.identity import Identity
from exchange.errors import NotFound
from exchange.points import user_account
from ledger import queries
from ledger.db import Db
from ledger.errors import LedgerNotFound, TransferNotFound
from ledger.proofs import complete_receipt, receipts
from ledger.receipts import Receipt
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

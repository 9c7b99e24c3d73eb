"""The points ledger: double-entry accounts and transfers on an append-only, Merkle-verified
log per ledger (one per department). See ledger/README.md."""

from ledger.accounts import AccountFlags, Balance, get_account, open_account
from ledger.encoding import Entry
from ledger.proofs import consistency_proof, inclusion_proof, root_hash, tree_head
from ledger.queries import (
    Page,
    balance,
    entry_by_key,
    export_lines,
    get_entry,
    ledger_size,
    list_entries,
    seq_at_time,
)
from ledger.transfers import post_pending, reverse, sweep_expired, transfer, void_pending

__all__ = [
    "AccountFlags",
    "Balance",
    "Entry",
    "Page",
    "balance",
    "consistency_proof",
    "entry_by_key",
    "export_lines",
    "get_account",
    "get_entry",
    "inclusion_proof",
    "ledger_size",
    "list_entries",
    "open_account",
    "post_pending",
    "reverse",
    "root_hash",
    "seq_at_time",
    "sweep_expired",
    "transfer",
    "tree_head",
    "void_pending",
]

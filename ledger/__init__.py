"""The points ledger: double-entry accounts and transfers on an append-only, Merkle-verified
log per ledger (one per department). See ledger/README.md.

The names below load with their modules on first use, so a tool that needs only the pure
parts (merkle, treehead, receipts: an offline verifier) never imports the database layer."""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOME = {
    "AccountFlags": "accounts",
    "Balance": "accounts",
    "get_account": "accounts",
    "open_account": "accounts",
    "Entry": "encoding",
    "consistency_proof": "proofs",
    "inclusion_proof": "proofs",
    "root_hash": "proofs",
    "tree_head": "proofs",
    "Page": "queries",
    "balance": "queries",
    "entry_by_key": "queries",
    "export_lines": "queries",
    "get_entry": "queries",
    "ledger_size": "queries",
    "list_entries": "queries",
    "seq_at_time": "queries",
    "post_pending": "transfers",
    "reverse": "transfers",
    "sweep_expired": "transfers",
    "transfer": "transfers",
    "void_pending": "transfers",
}

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


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"ledger.{_HOME[name]}"), name)
    try:  # a submodule, as `import ledger; ledger.merkle` found it when this imported all
        return importlib.import_module(f"ledger.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module 'ledger' has no attribute {name!r}") from None

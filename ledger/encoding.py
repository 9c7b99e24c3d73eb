"""Canonical bytes of a ledger entry: the exact bytes its Merkle leaf hashes.

An entry is a JSON object with the fields below, serialised per RFC 8785 (JSON
Canonicalization Scheme): keys sorted, no whitespace, strings with only the mandatory
escapes, UTF-8. Every integer in an entry is below 2**53, where JCS number formatting is
plain decimal, so Python's ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` produces exactly the JCS bytes. Each export line *is* these bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

VERSION = 1
MAX_INT = 2**53 - 1  # keeps the encoding equal to RFC 8785 JCS (IEEE-754 safe integers)

KINDS = ("direct", "pending", "post", "void", "reversal")

FIELDS = (
    "actor",
    "amount",
    "credit_account",
    "credit_after",
    "credit_flags",
    "debit_account",
    "debit_after",
    "debit_flags",
    "expires_at",
    "idempotency_key",
    "kind",
    "ledger_id",
    "ref_seq",
    "reference",
    "seq",
    "time",
    "version",
)

_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger entry as the domain sees it (a row of ledger_entries). ``seq`` is also the
    id of the transfer it records; ``dr_*``/``cr_*`` are the debit and credit accounts'
    counters right after it."""

    ledger_id: str
    seq: int
    kind: str
    time_us: int
    debit_account: str
    credit_account: str
    amount: int
    ref_seq: int | None
    expires_at_us: int | None
    reference: str
    actor: str
    idempotency_key: str
    debit_flags: int
    credit_flags: int
    dr_debits_pending: int
    dr_debits_posted: int
    dr_credits_pending: int
    dr_credits_posted: int
    cr_debits_pending: int
    cr_debits_posted: int
    cr_credits_pending: int
    cr_credits_posted: int

    @classmethod
    def from_row(cls, row: Any) -> Entry:
        return cls(**row._mapping)

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]

    @property
    def time(self) -> datetime:
        return from_us(self.time_us)

    def to_json(self) -> dict[str, Any]:
        """The API's view: the canonical fields, with RFC 3339 times beside the integers."""
        obj = entry_object(self)
        obj["time_rfc3339"] = rfc3339(self.time_us)
        if self.expires_at_us is not None:
            obj["expires_at_rfc3339"] = rfc3339(self.expires_at_us)
        return obj


class EntryLike(Protocol):
    ledger_id: str
    seq: int
    kind: str
    time_us: int
    debit_account: str
    credit_account: str
    amount: int
    ref_seq: int | None
    expires_at_us: int | None
    reference: str
    actor: str
    idempotency_key: str
    debit_flags: int
    credit_flags: int
    dr_debits_pending: int
    dr_debits_posted: int
    dr_credits_pending: int
    dr_credits_posted: int
    cr_debits_pending: int
    cr_debits_posted: int
    cr_credits_pending: int
    cr_credits_posted: int


def entry_object(e: EntryLike) -> dict[str, Any]:
    return {
        "actor": e.actor,
        "amount": e.amount,
        "credit_account": e.credit_account,
        "credit_after": [
            e.cr_debits_pending,
            e.cr_debits_posted,
            e.cr_credits_pending,
            e.cr_credits_posted,
        ],
        "credit_flags": e.credit_flags,
        "debit_account": e.debit_account,
        "debit_after": [
            e.dr_debits_pending,
            e.dr_debits_posted,
            e.dr_credits_pending,
            e.dr_credits_posted,
        ],
        "debit_flags": e.debit_flags,
        "expires_at": e.expires_at_us,
        "idempotency_key": e.idempotency_key,
        "kind": e.kind,
        "ledger_id": e.ledger_id,
        "ref_seq": e.ref_seq,
        "reference": e.reference,
        "seq": e.seq,
        "time": e.time_us,
        "version": VERSION,
    }


def canonical_json(obj: dict[str, Any]) -> bytes:
    return _dumps(obj).encode("utf-8")


def encode_entry(e: EntryLike) -> bytes:
    return canonical_json(entry_object(e))


def to_us(t: datetime) -> int:
    """Microseconds since the epoch; naive datetimes are refused rather than guessed at."""
    if t.tzinfo is None:
        raise ValueError("naive datetime: ledger times must be timezone-aware")
    delta = t - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def rfc3339(us: int) -> str:
    return from_us(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

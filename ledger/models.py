"""Ledger tables. The schema itself comes from api/migrations/versions/0002_ledger.py; these
classes must match it column for column and index for index.

Every key and index leads with ``ledger_id`` (the department) so the tables shard by it.
Amounts and balances are BigInteger; times are integer microseconds since the Unix epoch,
UTC, which is also how the canonical encoding carries them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, SmallInteger, String
from sqlmodel import Field, SQLModel

LEDGER_ID_MAX = 64
ACCOUNT_MAX = 128
KIND_MAX = 16
REFERENCE_MAX = 256
ACTOR_MAX = 128
IDEMPOTENCY_KEY_MAX = 128
KEY_ID_MAX = 32
WITNESS_NAME_MAX = 64


class LedgerHead(SQLModel, table=True):
    """One row per ledger: the lock every writer takes first, the last sequence number given
    out and the time of that entry. Sequencing is all a write does to the log; hashing the
    entry into the Merkle tree happens later, in batches (``LedgerTree``)."""

    __tablename__ = "ledger_heads"

    ledger_id: str = Field(sa_column=Column(String(LEDGER_ID_MAX), primary_key=True))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_time_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class LedgerTree(SQLModel, table=True):
    """One row per ledger: how many entries the Merkle tree holds (``size`` <= the head's) and
    its frontier, the right-edge subtree hashes, largest first. The integrator's lock: writers
    never touch it, so integrating never holds up a write."""

    __tablename__ = "ledger_trees"

    ledger_id: str = Field(sa_column=Column(String(LEDGER_ID_MAX), primary_key=True))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    frontier: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LedgerTreeHead(SQLModel, table=True):
    """A signed tree head, kept: each integration that grows a tree signs one. Append-only."""

    __tablename__ = "ledger_tree_heads"

    ledger_id: str = Field(sa_column=Column(String(LEDGER_ID_MAX), primary_key=True))
    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    timestamp_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    key_id: str = Field(sa_column=Column(String(KEY_ID_MAX), nullable=False))
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LedgerWitness(SQLModel, table=True):
    """An outside party whose Ed25519 key may co-sign tree heads (ledger/witness.py), added by
    the platform operator. Platform-wide: a witness watches every department's log."""

    __tablename__ = "ledger_witnesses"

    key_id: str = Field(sa_column=Column(String(KEY_ID_MAX), primary_key=True))
    name: str = Field(sa_column=Column(String(WITNESS_NAME_MAX), nullable=False, unique=True))
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    added_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class LedgerCosignature(SQLModel, table=True):
    """A witness's cosignature of a kept tree head: it checked the head extends every head it
    co-signed before. One per witness and head, never changed once stored."""

    __tablename__ = "ledger_cosignatures"

    ledger_id: str = Field(sa_column=Column(String(LEDGER_ID_MAX), primary_key=True))
    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    key_id: str = Field(sa_column=Column(String(KEY_ID_MAX), primary_key=True))
    timestamp_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LedgerAccount(SQLModel, table=True):
    __tablename__ = "ledger_accounts"

    ledger_id: str = Field(sa_column=Column(String(LEDGER_ID_MAX), primary_key=True))
    code: str = Field(sa_column=Column(String(ACCOUNT_MAX), primary_key=True))
    flags: int = Field(sa_column=Column(Integer, nullable=False))
    debits_pending: int = Field(sa_column=Column(BigInteger, nullable=False))
    debits_posted: int = Field(sa_column=Column(BigInteger, nullable=False))
    credits_pending: int = Field(sa_column=Column(BigInteger, nullable=False))
    credits_posted: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class LedgerEntry(SQLModel, table=True):
    """One state change. Append-only: the database refuses UPDATE and DELETE.

    ``dr_*``/``cr_*`` are the debit and credit accounts' four counters *after* this entry, so
    a balance as of any sequence number is one indexed lookup.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ux_ledger_entries_idempotency", "ledger_id", "idempotency_key", unique=True),
        # One post/void per pending, one reversal per posted transfer: enforced by the database.
        Index("ux_ledger_entries_ref", "ledger_id", "ref_seq", unique=True),
        Index("ix_ledger_entries_debit", "ledger_id", "debit_account", "seq"),
        Index("ix_ledger_entries_credit", "ledger_id", "credit_account", "seq"),
        Index("ix_ledger_entries_reference", "ledger_id", "reference", "seq"),
        Index("ix_ledger_entries_time", "ledger_id", "time_us", "seq"),
    )

    ledger_id: str = Field(sa_column=Column(String(LEDGER_ID_MAX), primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    kind: str = Field(sa_column=Column(String(KIND_MAX), nullable=False))
    time_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    debit_account: str = Field(sa_column=Column(String(ACCOUNT_MAX), nullable=False))
    credit_account: str = Field(sa_column=Column(String(ACCOUNT_MAX), nullable=False))
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    ref_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    expires_at_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    reference: str = Field(sa_column=Column(String(REFERENCE_MAX), nullable=False))
    actor: str = Field(sa_column=Column(String(ACTOR_MAX), nullable=False))
    idempotency_key: str = Field(sa_column=Column(String(IDEMPOTENCY_KEY_MAX), nullable=False))
    debit_flags: int = Field(sa_column=Column(Integer, nullable=False))
    credit_flags: int = Field(sa_column=Column(Integer, nullable=False))
    dr_debits_pending: int = Field(sa_column=Column(BigInteger, nullable=False))
    dr_debits_posted: int = Field(sa_column=Column(BigInteger, nullable=False))
    dr_credits_pending: int = Field(sa_column=Column(BigInteger, nullable=False))
    dr_credits_posted: int = Field(sa_column=Column(BigInteger, nullable=False))
    cr_debits_pending: int = Field(sa_column=Column(BigInteger, nullable=False))
    cr_debits_posted: int = Field(sa_column=Column(BigInteger, nullable=False))
    cr_credits_pending: int = Field(sa_column=Column(BigInteger, nullable=False))
    cr_credits_posted: int = Field(sa_column=Column(BigInteger, nullable=False))


class LedgerMerkleNode(SQLModel, table=True):
    """Perfect subtree ``(level, idx)`` of a ledger's Merkle tree; level 0 holds leaf hashes.
    Append-only like the entries."""

    __tablename__ = "ledger_merkle_nodes"

    ledger_id: str = Field(sa_column=Column(String(LEDGER_ID_MAX), primary_key=True))
    level: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LedgerOpenPending(SQLModel, table=True):
    """Pending transfers not yet posted or voided: keeps the expiry sweep and the open check
    small no matter how long the log grows. Rows are deleted as pendings resolve."""

    __tablename__ = "ledger_open_pendings"
    __table_args__ = (Index("ix_ledger_open_pendings_expiry", "ledger_id", "expires_at_us"),)

    ledger_id: str = Field(sa_column=Column(String(LEDGER_ID_MAX), primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    expires_at_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))

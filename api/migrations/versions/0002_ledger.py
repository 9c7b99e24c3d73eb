"""Ledger: heads, accounts, append-only entries and Merkle nodes, open pendings.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APPEND_ONLY = ("ledger_entries", "ledger_merkle_nodes")


def upgrade() -> None:
    op.create_table(
        "ledger_heads",
        sa.Column("ledger_id", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("last_time_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ledger_id"),
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("ledger_id", sa.String(64), nullable=False),
        sa.Column("code", sa.String(128), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("debits_pending", sa.BigInteger(), nullable=False),
        sa.Column("debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("credits_pending", sa.BigInteger(), nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ledger_id", "code"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("ledger_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("debit_account", sa.String(128), nullable=False),
        sa.Column("credit_account", sa.String(128), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("ref_seq", sa.BigInteger(), nullable=True),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=True),
        sa.Column("reference", sa.String(256), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("debit_flags", sa.Integer(), nullable=False),
        sa.Column("credit_flags", sa.Integer(), nullable=False),
        sa.Column("dr_debits_pending", sa.BigInteger(), nullable=False),
        sa.Column("dr_debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("dr_credits_pending", sa.BigInteger(), nullable=False),
        sa.Column("dr_credits_posted", sa.BigInteger(), nullable=False),
        sa.Column("cr_debits_pending", sa.BigInteger(), nullable=False),
        sa.Column("cr_debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("cr_credits_pending", sa.BigInteger(), nullable=False),
        sa.Column("cr_credits_posted", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ledger_id", "seq"),
    )
    op.create_index(
        "ux_ledger_entries_idempotency",
        "ledger_entries",
        ["ledger_id", "idempotency_key"],
        unique=True,
    )
    op.create_index(
        "ux_ledger_entries_ref", "ledger_entries", ["ledger_id", "ref_seq"], unique=True
    )
    op.create_index(
        "ix_ledger_entries_debit", "ledger_entries", ["ledger_id", "debit_account", "seq"]
    )
    op.create_index(
        "ix_ledger_entries_credit", "ledger_entries", ["ledger_id", "credit_account", "seq"]
    )
    op.create_index(
        "ix_ledger_entries_reference", "ledger_entries", ["ledger_id", "reference", "seq"]
    )
    op.create_index("ix_ledger_entries_time", "ledger_entries", ["ledger_id", "time_us", "seq"])
    op.create_table(
        "ledger_merkle_nodes",
        sa.Column("ledger_id", sa.String(64), nullable=False),
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("ledger_id", "level", "idx"),
    )
    op.create_table(
        "ledger_open_pendings",
        sa.Column("ledger_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("ledger_id", "seq"),
    )
    op.create_index(
        "ix_ledger_open_pendings_expiry", "ledger_open_pendings", ["ledger_id", "expires_at_us"]
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'restrict_violation';
            END
            $$
            """
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
            )
            # TRUNCATE skips row triggers; a statement trigger refuses it too.
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
            )
    else:
        for table in APPEND_ONLY:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'ledger is append-only: {event} on {table} "
                    "refused'); END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS ledger_refuse_change()")
    else:
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    op.drop_index("ix_ledger_open_pendings_expiry", table_name="ledger_open_pendings")
    op.drop_table("ledger_open_pendings")
    op.drop_table("ledger_merkle_nodes")
    for name in (
        "ix_ledger_entries_time",
        "ix_ledger_entries_reference",
        "ix_ledger_entries_credit",
        "ix_ledger_entries_debit",
        "ux_ledger_entries_ref",
        "ux_ledger_entries_idempotency",
    ):
        op.drop_index(name, table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_table("ledger_accounts")
    op.drop_table("ledger_heads")

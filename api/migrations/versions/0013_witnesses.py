"""Witnesses: outside parties' Ed25519 keys, and their cosignatures of the kept tree heads
(ledger/witness.py), one per witness and kept head.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_witnesses",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("added_at_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "ledger_cosignatures",
        sa.Column("ledger_id", sa.String(64), primary_key=True),
        sa.Column("tree_size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("timestamp_us", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_cosignatures")
    op.drop_table("ledger_witnesses")

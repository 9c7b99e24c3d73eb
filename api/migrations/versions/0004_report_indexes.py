"""Reports: indexes for the period filters of exchange/reports.py.

A report selects a department's drop-offs by when they were logged and decided, and its
orders by when they were placed and resolved; each index leads with the department so the
tables still shard by it.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_dropoffs_created", "dropoffs", ["department_id", "created_at"]),
    ("ix_dropoffs_decided", "dropoffs", ["department_id", "decided_at"]),
    ("ix_orders_created", "orders", ["department_id", "created_at"]),
    ("ix_orders_resolved", "orders", ["department_id", "resolved_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)

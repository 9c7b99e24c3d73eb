"""Summaries: a department's edited summary per period, and the activity photos for it.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from catalog.models import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "summaries",
        sa.Column("department_id", sa.String(32), primary_key=True),
        sa.Column("period", sa.String(80), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("pictures", sa.String(400), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(32), nullable=False),
    )
    op.create_table(
        "summary_photos",
        sa.Column("department_id", sa.String(32), primary_key=True),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("period", sa.String(80), nullable=False),
        sa.Column("media_type", sa.String(16), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("caption", sa.String(100), nullable=False),
        sa.Column("uploaded_at", UTCDateTime(), nullable=False),
        sa.Column("uploaded_by", sa.String(32), nullable=False),
    )
    op.create_index("ix_summary_photos_period", "summary_photos", ["department_id", "period", "id"])


def downgrade() -> None:
    op.drop_index("ix_summary_photos_period", table_name="summary_photos")
    op.drop_table("summary_photos")
    op.drop_table("summaries")

"""The offline pickup desk: the hand-overs desks sent with their keys, and the incidents
(a second hand-over of an order, or one after its cancellation or expiry) to settle.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from catalog.models import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "desk_incidents",
        sa.Column(
            "department_id", sa.String(32), sa.ForeignKey("departments.id"), primary_key=True
        ),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("first_desk_id", sa.String(64), nullable=True),
        sa.Column("first_desk_name", sa.String(100), nullable=True),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.Column("first_by", sa.String(32), nullable=True),
        sa.Column("desk_id", sa.String(64), nullable=False),
        sa.Column("desk_name", sa.String(100), nullable=False),
        sa.Column("scanned_at", UTCDateTime(), nullable=False),
        sa.Column("scanned_by", sa.String(32), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("note", sa.String(300), nullable=False),
        sa.Column("stock_taken", sa.Integer(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_id", "order_id"], ["orders.department_id", "orders.id"]
        ),
    )
    op.create_index("ix_desk_incidents_status", "desk_incidents", ["department_id", "status", "id"])
    op.create_table(
        "desk_redemptions",
        sa.Column(
            "department_id", sa.String(32), sa.ForeignKey("departments.id"), primary_key=True
        ),
        sa.Column("idempotency_key", sa.String(128), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("incident_id", sa.String(32), nullable=True),
        sa.Column("desk_id", sa.String(64), nullable=False),
        sa.Column("desk_name", sa.String(100), nullable=False),
        sa.Column("scanned_at", UTCDateTime(), nullable=False),
        sa.Column("scanned_by", sa.String(32), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("submitted_by", sa.String(32), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id", "order_id"], ["orders.department_id", "orders.id"]
        ),
        sa.ForeignKeyConstraint(
            ["department_id", "incident_id"], ["desk_incidents.department_id", "desk_incidents.id"]
        ),
    )
    op.create_index("ix_desk_redemptions_order", "desk_redemptions", ["department_id", "order_id"])


def downgrade() -> None:
    op.drop_index("ix_desk_redemptions_order", "desk_redemptions")
    op.drop_table("desk_redemptions")
    op.drop_index("ix_desk_incidents_status", "desk_incidents")
    op.drop_table("desk_incidents")

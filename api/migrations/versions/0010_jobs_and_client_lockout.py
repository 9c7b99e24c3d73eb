"""Sign-in lockout per account and client (a device or an address), and background jobs.

The lockout rows of 0006 counted an account's failures from anywhere; they are dropped, not
carried over: each lasted an hour at most, and none of them knew which client failed.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from catalog.models import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _lockouts(*client: sa.Column) -> None:  # type: ignore[type-arg]
    op.create_table(
        "login_lockouts",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), primary_key=True),
        *client,
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("last_failure_at", UTCDateTime(), nullable=False),
    )


def upgrade() -> None:
    op.drop_table("login_lockouts")
    _lockouts(sa.Column("client", sa.String(80), primary_key=True))
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("department_id", sa.String(32), sa.ForeignKey("departments.id"), nullable=True),
        sa.Column("owner_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("input", sa.LargeBinary(), nullable=True),
        sa.Column("progress_done", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("secret", sa.LargeBinary(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(80), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_jobs_claimable", "jobs", ["state", "lease_until"])
    op.create_index("ix_jobs_owner", "jobs", ["owner_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_owner", "jobs")
    op.drop_index("ix_jobs_claimable", "jobs")
    op.drop_table("jobs")
    op.drop_table("login_lockouts")
    _lockouts()

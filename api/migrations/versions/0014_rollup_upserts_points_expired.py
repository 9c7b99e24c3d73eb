"""Rollups kept by plain upserts, and points expired in the reports.

- Each trigger adds a written row's contribution with one `INSERT … VALUES … ON CONFLICT DO
  UPDATE` per counter row it changes (none when nothing a rollup counts changed), instead
  of an `INSERT … SELECT … GROUP BY` over the old and new row that PostgreSQL planned
  afresh on every call.
- A participant's month and year rows count the days (months) in which they took part, so
  they change only when a day row turns non-zero or back (one row written per drop-off, not
  three), and the first day with a confirmed drop-off is touched only then; rebuilt.
- `report_days.points_expired`: the points the expiry sweep moved to the department's
  expiry account that day, kept by a trigger on `points_expiries` and backfilled.

The triggers were rendered from exchange/reports/rollups.py; migration 0016 changed those
definitions, so what this one installed is pinned in api/migrations/pinned/0014_rollups_*.sql.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.migrations.pinned import statements as pinned
from exchange.reports import rollups

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _run(statements: list[str]) -> None:
    for statement in statements:
        # exec_driver_sql: the bodies hold ':' that are not bind parameters.
        op.get_bind().exec_driver_sql(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column(
        "report_days",
        sa.Column("points_expired", sa.BigInteger(), nullable=False, server_default="0"),
    )
    _run(rollups.uninstall_statements(dialect) + pinned("0014_rollups_install", dialect))
    _run(rollups.rebuild_statements(dialect, [rollups.DAYS, rollups.PARTICIPANTS]))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _run(rollups.uninstall_statements(dialect))
    # Both databases drop a column in place (SQLite since 3.35), without copying the table.
    op.get_bind().exec_driver_sql("ALTER TABLE report_days DROP COLUMN points_expired")
    _run(pinned("0009_rollups_install", dialect))

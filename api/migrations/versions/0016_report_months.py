"""Reports: month rows, folded by the sweep from the day rollups of every closed month.

- `report_dropoff_months`, `report_station_months`, `report_months`, `report_product_months`:
  the day rollups' columns, one row per key and month (`day` the month's first day);
  `report_folded_months` (which months the sweep has folded) and `report_stale_months` (a
  department's month that a write changed after the month ended: read from day rows until
  folded again). See exchange/reports/months.py.
- The rollup triggers again, now also marking a month stale when a write lands in an ended
  month.
- Every closed month folded from the day rows already there.

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.migrations.pinned import statements as pinned
from exchange.reports import months, rollups

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONTH_TABLES = {
    "report_dropoff_days": "report_dropoff_months",
    "report_station_days": "report_station_months",
    "report_days": "report_months",
    "report_product_days": "report_product_months",
}


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.get_bind().exec_driver_sql(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for days, name in MONTH_TABLES.items():
        found = sa.inspect(op.get_bind())
        key = found.get_pk_constraint(days)["constrained_columns"]
        columns = [
            sa.Column(
                c["name"],
                c["type"],
                nullable=c["nullable"],
                primary_key=c["name"] in key,
            )
            for c in found.get_columns(days)
        ]
        op.create_table(name, *columns)
    op.create_table(
        "report_folded_months",
        sa.Column("month", sa.Date(), primary_key=True),
        sa.Column("folded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "report_stale_months",
        sa.Column("department_id", sa.String(32), primary_key=True),
        sa.Column("month", sa.Date(), primary_key=True),
    )
    _run(rollups.uninstall_statements(dialect) + rollups.install_statements(dialect))
    bind = op.get_bind()
    for month, departments in months.to_fold_sync(bind):
        for statement in months.fold_statements(month, departments):
            bind.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _run(rollups.uninstall_statements(dialect) + pinned("0014_rollups_install", dialect))
    for name in (*MONTH_TABLES.values(), "report_folded_months", "report_stale_months"):
        op.drop_table(name)

"""Ledger: writers sequence, an integrator builds the Merkle tree in batches and keeps its
signed heads; the exchange's hot writes become one server-side call each on PostgreSQL.

- ``ledger_trees`` takes the Merkle frontier (and its size) out of ``ledger_heads``: the
  integrator's row, which writers never lock.
- ``ledger_tree_heads`` keeps every head the integrator signs (append-only).
- PostgreSQL: ``ledger_append`` no longer hashes (and opens missing accounts);
  ``ledger_entry_json`` goes; the exchange's writes (exchange/sql/writes.sql) arrive.

The functions' SQL lives beside the code (ledger/sql/, exchange/sql/) and is loaded from
there; a test checks the installed functions are those files.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ROOT = Path(__file__).resolve().parents[3]
FUNCTIONS = (ROOT / "ledger/sql/ledger_append.sql", ROOT / "exchange/sql/writes.sql")
OLD_APPEND = (
    "ledger_append(varchar, varchar, varchar, varchar, varchar, varchar, bigint, varchar,"
    " bigint, bigint, bigint)"
)
NEW_APPEND = OLD_APPEND.removesuffix(")") + ", integer, integer)"
EXCHANGE_FUNCTIONS = (
    "exchange_log_dropoff(varchar, varchar, varchar, varchar, varchar, varchar, varchar,"
    " varchar, integer, integer, timestamptz, varchar, bigint, integer, varchar, varchar,"
    " integer, integer, varchar, varchar)",
    "exchange_decide_dropoff(varchar, varchar, varchar, varchar, varchar, timestamptz, bigint,"
    " varchar)",
    "exchange_place_order(varchar, varchar, varchar, varchar, varchar, varchar, integer,"
    " varchar, varchar, timestamptz, timestamptz, bigint, varchar, varchar, integer, integer,"
    " varchar, varchar)",
    "exchange_resolve_order(varchar, varchar, varchar, varchar, varchar, varchar, timestamptz,"
    " bigint, varchar)",
    "exchange_decline()",
)


def function_definitions(sql: str) -> list[str]:
    """The CREATE FUNCTION statements of a file, each ending with `$$;` on a line of its own
    (the driver runs one statement at a time)."""
    return [part.strip() + "\n$$" for part in sql.split("\n$$;") if "CREATE" in part]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "ledger_trees",
        sa.Column("ledger_id", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("ledger_id"),
    )
    # Until now every entry was hashed as it was written: the trees are complete.
    op.execute(
        "INSERT INTO ledger_trees (ledger_id, size, frontier)"
        " SELECT ledger_id, size, frontier FROM ledger_heads"
    )
    with op.batch_alter_table("ledger_heads") as heads:
        heads.drop_column("frontier")
    op.create_table(
        "ledger_tree_heads",
        sa.Column("ledger_id", sa.String(64), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("timestamp_us", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("ledger_id", "tree_size"),
    )
    table = "ledger_tree_heads"
    if postgres:
        # ledger_refuse_change() is migration 0002's.
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(f"DROP FUNCTION {OLD_APPEND}")
        op.execute("DROP FUNCTION ledger_entry_json(ledger_entries)")
        for path in FUNCTIONS:
            for statement in function_definitions(path.read_text()):
                # exec_driver_sql: the bodies hold ':' and '%' that are not bind parameters.
                op.get_bind().exec_driver_sql(statement)
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'ledger is append-only: {event} on {table} "
                "refused'); END"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    behind = op.get_bind().execute(
        sa.text(
            "SELECT count(*) FROM ledger_heads h JOIN ledger_trees t USING (ledger_id)"
            " WHERE h.size <> t.size"
        )
    )
    if behind.scalar_one():
        raise RuntimeError("some Merkle trees are behind their logs: integrate them first")
    if postgres:
        for signature in (*EXCHANGE_FUNCTIONS, NEW_APPEND):
            op.execute(f"DROP FUNCTION IF EXISTS {signature}")
        previous = _revision_0007()
        op.get_bind().exec_driver_sql(previous.ENTRY_JSON)
        op.get_bind().exec_driver_sql(previous.APPEND)
    op.drop_table("ledger_tree_heads")
    with op.batch_alter_table("ledger_heads") as heads:
        heads.add_column(sa.Column("frontier", sa.LargeBinary(), nullable=False, server_default=""))
    op.execute(
        "UPDATE ledger_heads SET frontier = (SELECT t.frontier FROM ledger_trees t"
        " WHERE t.ledger_id = ledger_heads.ledger_id)"
    )
    with op.batch_alter_table("ledger_heads") as heads:
        heads.alter_column("frontier", server_default=None)
    op.drop_table("ledger_trees")


def _revision_0007():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "revision_0007", Path(__file__).with_name("0007_ledger_append.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
